"""Packages made for another Python than their environment's, as pip judges it (it refuses to install them).

uv installs a wheel from a folder of wheels (a cluster's wheelhouse, --find-links) whatever Python its
Requires-Python states (astral-sh/uv#5475), so after a change the user is told which packages the environment's
details show made for another Python (Environment.made_for_another_python), with what to do.
"""
from __future__ import annotations

from ..inventory import Environment
from ..validate import canonical_name


def misfit_notes(env: Environment, *, before: Environment | None = None, snapshot: str | None = None) -> list[str]:
    """What the user reads after a change that brought such packages into the environment (those already there
    `before` it are not said again); `snapshot`: the one kept before the change, which undoes it."""
    had = {(canonical_name(p.name), p.version) for p in (before.made_for_another_python() if before else [])}
    undo = (f", or go back to snapshot {snapshot} (from before this change; the Snapshots tab, or envdesk env "
            "revert)" if snapshot else "")
    return [f"{package.name} {package.version} states that it needs Python {package.requires_python}, but "
            f"{env.name} has Python {env.python}, so it may fail when imported. pip refuses to install such a "
            "package; uv does not check it for wheels from a folder of wheels (astral-sh/uv#5475). Ask for a "
            f"version made for Python {env.python} (for example --add '{package.name}!={package.version}')"
            f"{undo}." for package in env.made_for_another_python()
            if (canonical_name(package.name), package.version) not in had]
