"""How long the window's dialogs live: each is made for one use and deleted after it.

A used dialog left as a child of the window keeps its Python wrappers in reference cycles, and the garbage
collector freeing them while Qt still held the dialog crashed the app after a few uses (a user trial: the New
environment dialog, two or three times). Qt deletes each dialog once control is back in its event loop.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:  # the dialogs' Qt types are made on first use, not at the window's start
    from PySide6.QtWidgets import QDialog

Used = TypeVar("Used", bound="QDialog")


def run_once(dialog: Used) -> Used | None:
    """Show a modal dialog until it closes: the dialog if it was accepted (to read what it holds, before control
    is back in the event loop), else None. Either way Qt deletes it then."""
    try:
        return dialog if dialog.exec() else None
    finally:
        dialog.deleteLater()


def show_instead(previous: QDialog | None, dialog: Used) -> Used:
    """Show a dialog that stays open beside the window, in place of the one it replaces, which is deleted."""
    if previous is not None:
        previous.close()
        previous.deleteLater()
    dialog.show()
    return dialog
