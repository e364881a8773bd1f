"""Light or dark: the app follows the system's colour scheme unless the person picked one.

Qt's own dark palettes draw disabled buttons in nearly the same colours as enabled ones, and
Fusion draws a checkbox's frame a shade darker than the window, which is invisible on a dark
window. So the dark scheme is ours: Fusion with a palette whose Disabled group is clearly
dimmer, and a style that outlines check boxes and radio buttons in a visible colour
(indicator_style.py, loaded only for the dark scheme).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication, QStyleFactory

if TYPE_CHECKING:  # QPalette's type (~2.5 M instructions) is made once the dark scheme is used
    from PySide6.QtGui import QPalette

CHOICES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}


def system_prefers_dark() -> bool:
    """True when the desktop says it is in dark mode (Qt 6.5+ knows; unknown counts as light)."""
    hints = QGuiApplication.styleHints()
    return hasattr(hints, "colorScheme") and hints.colorScheme() == Qt.ColorScheme.Dark


def effective_scheme(choice: str) -> str:
    """'light' or 'dark' for a setting of 'system', 'light' or 'dark' (anything else counts as 'system')."""
    if choice in ("light", "dark"):
        return choice
    return "dark" if system_prefers_dark() else "light"


def dark_palette() -> QPalette:
    """A dark palette in which disabled text, buttons and fields are visibly dimmer than enabled ones."""
    from PySide6.QtGui import QColor, QPalette
    Role, Group = QPalette.ColorRole, QPalette.ColorGroup
    palette = QPalette()
    colors = {Role.Window: "#2b2b2b", Role.WindowText: "#e8e8e8", Role.Base: "#1e1e1e",
              Role.AlternateBase: "#262626", Role.ToolTipBase: "#3a3a3a", Role.ToolTipText: "#f0f0f0",
              Role.PlaceholderText: "#9a9a9a", Role.Text: "#e8e8e8", Role.Button: "#3c3c3c",
              Role.ButtonText: "#f0f0f0", Role.BrightText: "#ff6b6b", Role.Light: "#5a5a5a",
              Role.Midlight: "#4a4a4a", Role.Mid: "#8a8a8a", Role.Dark: "#1a1a1a", Role.Shadow: "#0a0a0a",
              Role.Highlight: "#3d7bd9", Role.HighlightedText: "#ffffff", Role.Link: "#7fb0ff",
              Role.LinkVisited: "#c59bff"}
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    disabled = {Role.WindowText: "#6e6e6e", Role.Text: "#6e6e6e", Role.ButtonText: "#6e6e6e",
                Role.Button: "#2f2f2f", Role.Base: "#252525", Role.Highlight: "#4a4a4a",
                Role.HighlightedText: "#8a8a8a", Role.PlaceholderText: "#5a5a5a", Role.Light: "#333333",
                Role.Mid: "#555555"}
    for role, color in disabled.items():
        palette.setColor(Group.Disabled, role, QColor(color))
    return palette


def apply_scheme(choice: str, app: QApplication | None = None) -> str:
    """Colour the whole application for `choice` ('system', 'light' or 'dark'); returns 'light' or 'dark'.

    Light keeps the platform's own style and palette; dark is Fusion with `dark_palette()`.
    """
    app = app or QApplication.instance()  # type: ignore[assignment]
    if not isinstance(app, QApplication):
        return "light"
    scheme = effective_scheme(choice)
    if scheme == app.property("envdesk_scheme") or (scheme == "light" and app.property("envdesk_scheme") is None):
        return scheme  # already so: leave the style alone (and QStyle unloaded, ~5 ms of the start)
    native = app.property("envdesk_native_style")
    if not native:  # the style in use before the first change is the platform's own
        native = app.style().name()
        app.setProperty("envdesk_native_style", native)
    if scheme == "dark":
        from .indicator_style import VisibleIndicators
        app.setStyle(VisibleIndicators(QStyleFactory.create("Fusion")))
        app.setPalette(dark_palette())
    else:
        style = QStyleFactory.create(str(native)) or QStyleFactory.create("Fusion")
        app.setStyle(style)
        app.setPalette(style.standardPalette())
    app.setProperty("envdesk_scheme", scheme)
    return scheme
