"""Packages made for another Python than their environment's, as pip judges it (it refuses to install them).

uv installs a wheel from a folder of wheels (a cluster's wheelhouse, --find-links) whatever Python its
Requires-Python states (astral-sh/uv#5475), so after a change the environment's details are read for it and the
user is told, with what to do; packaging's specifiers judge it as pip does.
"""
from __future__ import annotations

from ..inventory import Environment, Package


def python_misfits(env: Environment) -> list[Package]:
    """The packages whose stated Requires-Python excludes the environment's Python (none when either is unknown)."""
    from packaging.specifiers import InvalidSpecifier, SpecifierSet
    from packaging.version import InvalidVersion, Version
    try:
        python = Version(env.python or "")
    except InvalidVersion:
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


def misfit_notes(env: Environment) -> list[str]:
    """What the user reads after a change that left such packages in the environment (nothing when none)."""
    return [f"{package.name} {package.version} states that it needs Python {package.requires_python}, but "
            f"{env.name} has Python {env.python}, so it may fail when imported. pip refuses to install it; uv "
            "installs it when it comes from a folder of wheels (astral-sh/uv#5475). Ask for a version made for "
            f"Python {env.python} (for example {package.name}!={package.version}), or go back to the snapshot "
            "from before." for package in python_misfits(env)]
