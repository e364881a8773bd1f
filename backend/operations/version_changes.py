"""What an import that let the installer choose versions (--top-level, 'Allow newer versions') installed in place of
the exact versions it was given: which went up, which went down, which are no longer there.

Only the top-level requirements get a lower bound (importing.allow_newer); their dependencies are whatever the target's
installer resolves, which may be older than the source's (user trial T20: the note said "newer versions allowed" while
tqdm went from 4.66.4 down to 4.66.1). So the note compares, package by package, with PEP 440's order.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

from ..inventory import Package
from ..spec import Pin
from ..validate import canonical_name


def _moved(name: str, was: str, now: str) -> str | None:
    """How one package's version changed, in words; None where it did not."""
    from packaging.version import InvalidVersion, Version
    try:
        before, after = Version(was), Version(now)
    except InvalidVersion:
        return None if was == now else f"{name} {was} is {now} here"
    if before == after:
        return None
    if before.public == after.public:
        return f"{name} {was} is {now} here (the same release, another build)"
    return f"{name} {'up' if after > before else 'down'} from {was} to {now}"


def version_changes(pins: Iterable[Pin], installed: Sequence[Package]) -> list[str]:
    """Each exact pin (of pip's) whose package is at another version in the new environment, or not in it."""
    versions = {canonical_name(package.name): package.version for package in installed}
    said = []
    for pin in pins:
        if pin.source == "conda" or not pin.version or pin.url:
            continue
        now = versions.get(canonical_name(pin.name))
        change = f"{pin.name} {pin.version} is not installed (nothing here requires it now)" if now is None else \
            _moved(pin.name, pin.version, now)
        if change:
            said.append(change)
    return said


def fallback_note(listing: str, relaxed: Sequence[str], changes: Sequence[str]) -> str:
    """The note after such an import: what was missing, what was installed instead, and how versions moved."""
    moved = "; ".join(changes) if changes else "every other package is at the version it was given"
    return (f"Exact versions unavailable here: {listing}. Installed {', '.join(relaxed)} instead, with the versions "
            f"this target's installer chose: {moved}.")
