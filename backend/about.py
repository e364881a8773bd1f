"""What EnvDesk is, as installed: its name and version, read from the package metadata."""
from __future__ import annotations

from functools import lru_cache
from importlib import metadata

DISTRIBUTION = "envdesk"


@lru_cache(maxsize=1)
def version() -> str:
    """The installed version (a wheel's or an editable install's), so records name the real release."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:  # running from an unpacked tree that was never installed
        return "0+unknown"


def created_with() -> str:
    """How an environment's metadata names the tool that made it."""
    return f"EnvDesk {version()}"
