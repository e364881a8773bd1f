"""The colours EnvDesk marks words with (a problem, a good sign), chosen for the palette in force.

One pair for light windows and one for dark, each at least WCAG AA's 4.5:1 against the window and the lists' base
colour of both EnvDesk schemes: the red and green used before were 2.6-3.8:1 on the dark palette (user trial T25).
Every widget asks here, so none keeps a colour that is readable on white only.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import QApplication

if TYPE_CHECKING:  # QPalette's type is made only once a coloured word is shown (see theme.py)
    from PySide6.QtGui import QPalette

PROBLEM = {"light": "#b3261e", "dark": "#ff8a80"}
GOOD = {"light": "#17692c", "dark": "#6fdc8c"}


def tone(palette: QPalette | None = None) -> str:
    """'dark' when the palette's window is dark (EnvDesk's dark scheme, or a dark desktop's), else 'light'."""
    from PySide6.QtGui import QPalette
    window = (palette or QApplication.palette()).color(QPalette.ColorRole.Window)
    return "dark" if window.lightness() < 128 else "light"


def problem_colour(palette: QPalette | None = None) -> str:
    """The colour of a problem's words (an error, a failed row), as '#rrggbb', for `palette` (the app's if None)."""
    return PROBLEM[tone(palette)]


def good_colour(palette: QPalette | None = None) -> str:
    """The colour of a good sign (a fingerprint that matches), as '#rrggbb'."""
    return GOOD[tone(palette)]

