"""Icons and other files shipped in envdesk.resources."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

from PySide6.QtGui import QIcon


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """An icon from resources/icons (an empty icon if it is missing, never an error)."""
    try:
        path = resources.files("envdesk.resources").joinpath("icons", f"{name}.svg")
        return QIcon(str(path)) if path.is_file() else QIcon()
    except (ModuleNotFoundError, FileNotFoundError):
        return QIcon()
