"""Keyboard conventions for every window and dialog: Tab always moves on to the next control.

Qt's tables and lists move between their cells on Tab, and its text boxes insert a tab
character, so a keyboard user is trapped in them (and a package list gets 'requests\\t...').
One application-wide filter gives Tab back to focus navigation wherever such a widget appears.
"""
from __future__ import annotations

from PySide6.QtCore import QEvent, QObject
from PySide6.QtWidgets import QAbstractItemView, QApplication, QPlainTextEdit, QTextEdit


class _TabGivesFocusOn(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Polish:
            if isinstance(watched, QAbstractItemView):
                watched.setTabKeyNavigation(False)
            elif isinstance(watched, (QPlainTextEdit, QTextEdit)):
                watched.setTabChangesFocus(True)
        return False


def install_keyboard_conventions() -> None:
    """Apply the conventions to every widget the application shows from now on (once per application)."""
    app = QApplication.instance()
    if app is None or app.property("envdesk_keyboard") is True:
        return
    conventions = _TabGivesFocusOn(app)
    app.installEventFilter(conventions)
    app.setProperty("envdesk_keyboard", True)
