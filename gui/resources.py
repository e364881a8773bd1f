"""Icons and other files shipped in envdesk.resources."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING

from PySide6.QtGui import QIcon

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable


@lru_cache(maxsize=None)
def _icons() -> Traversable | None:
    """resources/icons, looked up once (each lookup is ~0.2 M instructions; the window's start takes 13 icons)."""
    try:
        return resources.files("envdesk.resources").joinpath("icons")
    except ModuleNotFoundError:
        return None


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """An icon from resources/icons (an empty icon if it is missing, never an error)."""
    folder = _icons()
    if folder is None:
        return QIcon()
    try:
        path = folder.joinpath(f"{name}.svg")
        return QIcon(str(path)) if path.is_file() else QIcon()
    except FileNotFoundError:
        return QIcon()
