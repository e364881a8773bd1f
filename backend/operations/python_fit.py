"""Packages made for another Python than their environment's, as pip judges it (it refuses to install them).

uv installs a wheel from a folder of wheels (a cluster's wheelhouse, --find-links) whatever Python its
Requires-Python states (astral-sh/uv#5475), so after a change the environment's details are read for it and the
user is told, with what to do; packaging's specifiers judge it as pip does.
"""
from __future__ import annotations

from ..inventory import Environment, Package
from ..validate import canonical_name


def python_misfits(env: Environment) -> list[Package]:
    """The packages whose stated Requires-Python excludes the environment's Python (none when either is unknown,
    or when only its X.Y is known: pip judges the full version)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
    try:
        python = Version(env.python or "")
    except InvalidVersion:
        return []
    if len(python.release) < 3:
        return []
    misfits = []
    for package in env.packages:
        if not package.requires_python:
            continue
        try:
            fits = SpecifierSet(package.requires_python).contains(python, prereleases=True)
        except InvalidSpecifier:
            continue  # pip ignores a Requires-Python it cannot read, and so do we
        if not fits:
            misfits.append(package)
    return misfits


def misfit_notes(env: Environment, *, before: Environment | None = None, snapshot: str | None = None) -> list[str]:
    """What the user reads after a change that brought such packages into the environment (those already there
    `before` it are not said again); `snapshot`: the one kept before the change, which undoes it."""
    had = {(canonical_name(p.name), p.version) for p in python_misfits(before)} if before is not None else set()
    undo = f", or go back to snapshot {snapshot} (from before this change)" if snapshot else ""
    return [f"{package.name} {package.version} states that it needs Python {package.requires_python}, but "
            f"{env.name} has Python {env.python}, so it may fail when imported. pip refuses to install such a "
            "package; uv does not check it for wheels from a folder of wheels (astral-sh/uv#5475). Ask for a "
            f"version made for Python {env.python} (for example --add '{package.name}!={package.version}')"
            f"{undo}." for package in python_misfits(env)
            if (canonical_name(package.name), package.version) not in had]
