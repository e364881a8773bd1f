"""Icons and other files shipped in envdesk.resources."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtGui import QIcon

if TYPE_CHECKING:
    from importlib.resources.abc import Traversable

# envdesk.resources sits beside this package, in an install as in the source tree (see pyproject's package-dir)
_BESIDE = Path(__file__).resolve().parent.parent / "resources" / "icons"


@lru_cache(maxsize=None)
def _icons() -> Traversable | None:
    """resources/icons, looked up once: the folder beside this package, else found through importlib.resources
    (a zip install), whose import and lookup the window's start otherwise waits for."""
    if _BESIDE.is_dir():
        return _BESIDE
    from importlib import resources
    try:
        return resources.files("envdesk.resources").joinpath("icons")
    except ModuleNotFoundError:
        return None


@lru_cache(maxsize=None)
def icon(name: str) -> QIcon:
    """An icon from resources/icons (an empty icon if it is missing, never an error); where a NAME-selected.svg
    is beside it, that is how the icon is drawn on a selected row (a blue icon vanished on the blue highlight)."""
    folder = _icons()
    if folder is None:
        return QIcon()
    try:
        path, selected = folder.joinpath(f"{name}.svg"), folder.joinpath(f"{name}-selected.svg")
        if not path.is_file():
            return QIcon()
        made = QIcon(str(path))
        if selected.is_file():
            made.addFile(str(selected), mode=QIcon.Mode.Selected)
        return made
    except FileNotFoundError:
        return QIcon()
