"""Keyboard conventions for every window and dialog: Tab always moves on to the next control,
and F6 / Shift+F6 move between a window's panels.

Qt's tables and lists move between their cells on Tab, and its text boxes insert a tab
character, so a keyboard user is trapped in them (and a package list gets 'requests\\t...').
One application-wide filter gives Tab back to focus navigation wherever such a widget appears.
"""
from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QPlainTextEdit, QTextEdit, QWidget


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


def next_panel(panels: Sequence[tuple[QWidget, QWidget]], focus: QWidget | None, step: int) -> QWidget | None:
    """The widget to focus for F6 (step 1) or Shift+F6 (step -1): the next (panel, its main control)
    pair after the panel holding `focus`, skipping panels hidden or disabled now; None if there is none."""
    current = next((number for number, (panel, _) in enumerate(panels)
                    if focus is not None and (focus is panel or panel.isAncestorOf(focus))), None)
    if current is None:
        current = -1 if step > 0 else 0
    for distance in range(1, len(panels) + 1):
        _, control = panels[(current + step * distance) % len(panels)]
        if control.isVisible() and control.isEnabled() and control.focusPolicy() != Qt.FocusPolicy.NoFocus:
            return control
    return None
