"""Light or dark: the app follows the system's colour scheme unless the person picked one.

Qt's own dark palettes draw disabled buttons in nearly the same colours as enabled ones, and
Fusion draws a checkbox's frame a shade darker than the window, which is invisible on a dark
window. So the dark scheme is ours: Fusion with a palette whose Disabled group is clearly
dimmer, and a style that outlines check boxes and radio buttons in a visible colour
(indicator_style.py, loaded only for the dark scheme).
"""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication, QStyleFactory

CHOICES = {"system": "Follow the system", "light": "Light", "dark": "Dark"}
_Role = QPalette.ColorRole
_Group = QPalette.ColorGroup


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
    palette = QPalette()
    colors = {_Role.Window: "#2b2b2b", _Role.WindowText: "#e8e8e8", _Role.Base: "#1e1e1e",
              _Role.AlternateBase: "#262626", _Role.ToolTipBase: "#3a3a3a", _Role.ToolTipText: "#f0f0f0",
              _Role.PlaceholderText: "#9a9a9a", _Role.Text: "#e8e8e8", _Role.Button: "#3c3c3c",
              _Role.ButtonText: "#f0f0f0", _Role.BrightText: "#ff6b6b", _Role.Light: "#5a5a5a",
              _Role.Midlight: "#4a4a4a", _Role.Mid: "#8a8a8a", _Role.Dark: "#1a1a1a", _Role.Shadow: "#0a0a0a",
              _Role.Highlight: "#3d7bd9", _Role.HighlightedText: "#ffffff", _Role.Link: "#7fb0ff",
              _Role.LinkVisited: "#c59bff"}
    for role, color in colors.items():
        palette.setColor(role, QColor(color))
    disabled = {_Role.WindowText: "#6e6e6e", _Role.Text: "#6e6e6e", _Role.ButtonText: "#6e6e6e",
                _Role.Button: "#2f2f2f", _Role.Base: "#252525", _Role.Highlight: "#4a4a4a",
                _Role.HighlightedText: "#8a8a8a", _Role.PlaceholderText: "#5a5a5a", _Role.Light: "#333333",
                _Role.Mid: "#555555"}
    for role, color in disabled.items():
        palette.setColor(_Group.Disabled, role, QColor(color))
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
