"""Keyboard conventions for every window and dialog: Tab always moves on to the next control,
and F6 / Shift+F6 move between a window's panels.

Qt's tables and lists move between their cells on Tab, and its text boxes insert a tab
character, so a keyboard user is trapped in them (and a package list gets 'requests\\t...').
One application-wide filter gives Tab back to focus navigation wherever such a widget appears.

The main window sets the widgets it opens with at once (`give_tab_to_focus`) and installs the filter
once it has painted: a Python filter on the whole application makes PySide build a Python type for every
object it is handed, and for an object of a private Qt class (a rich-text label's text control)
every type of QtCore, QtGui and QtWidgets with all their enumerations, ~40 ms of the start.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Sequence

from PySide6.QtCore import QEvent, QObject, Qt
from PySide6.QtWidgets import QAbstractItemView, QApplication, QPlainTextEdit, QWidget


@lru_cache(maxsize=None)
def _rich_text_edit() -> type:
    """QTextEdit, whose type PySide makes when it is first named (~1.6 M instructions): the main window has none,
    so its first paint does without it."""
    from PySide6.QtWidgets import QTextEdit
    return QTextEdit


def _give_tab_to_focus(widget: QObject) -> None:
    if isinstance(widget, QAbstractItemView):
        widget.setTabKeyNavigation(False)
    elif isinstance(widget, QPlainTextEdit) or isinstance(widget, _rich_text_edit()):
        widget.setTabChangesFocus(True)


_KEYBOARD_REASONS = (Qt.FocusReason.TabFocusReason, Qt.FocusReason.BacktabFocusReason,
                     Qt.FocusReason.ShortcutFocusReason)


def _outlined(widget: QObject) -> bool:
    """Whether `widget` is a panel's main control that the keyboard's outline marks: a list, a table or a tab bar
    (asked of Qt by class name: naming QTabBar here would make its Python type before the window's first paint)."""
    return isinstance(widget, QAbstractItemView) or widget.inherits("QTabBar")


_AWAY_AND_BACK = (Qt.FocusReason.ActiveWindowFocusReason, Qt.FocusReason.PopupFocusReason)
_RING = "keyboard_focus_ring"


def _show_focus_ring(view: QWidget, shown: bool) -> None:
    """Outline a list or table that the keyboard moved to (Tab, F6): Fusion marks no focus on a view whose
    selection is a whole row, so a keyboard user could not see which panel Delete or Enter would act on (a user
    trial). The mouse gives no ring, as GTK and the web do. A view styled otherwise is left alone."""
    if view.property(_RING) is None and view.styleSheet():
        return
    view.setProperty(_RING, shown)  # the selector: a sheet's bare rules would outline its headers and scroll bars
    view.setStyleSheet(f'*[{_RING}="true"] {{ border: 2px solid palette(highlight); }}' if shown else "")


class _TabGivesFocusOn(QObject):
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        kind = event.type()
        if kind == QEvent.Type.Polish:
            _give_tab_to_focus(watched)
        elif kind in (QEvent.Type.FocusIn, QEvent.Type.FocusOut) and _outlined(watched):
            reason = event.reason()  # type: ignore[attr-defined]
            if reason in _AWAY_AND_BACK:
                pass  # a question, menu or other window came and went: the ring stays as it was (R14)
            elif kind == QEvent.Type.FocusIn:
                _show_focus_ring(watched, reason in _KEYBOARD_REASONS)
            elif watched.property(_RING):
                _show_focus_ring(watched, False)
        return False


def give_tab_to_focus(*widgets: QWidget) -> None:
    """Apply the conventions to these widgets now: those a window shows before the application-wide filter
    is installed (they are named: finding them with findChildren costs PySide types too, ~5 ms)."""
    for widget in widgets:
        _give_tab_to_focus(widget)


def install_keyboard_conventions() -> None:
    """Apply the conventions to every widget of every window there is, and to every widget shown from now on
    (once per application)."""
    app = QApplication.instance()
    if not isinstance(app, QApplication) or app.property("envdesk_keyboard") is True:
        return
    for window in app.topLevelWidgets():
        for kind in (QAbstractItemView, QPlainTextEdit, _rich_text_edit()):
            give_tab_to_focus(*window.findChildren(kind))
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
