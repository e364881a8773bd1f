"""A label whose words can be selected and copied, by mouse and by keyboard (an error for a support ticket: user
trial T25 could not copy one); links in it are still followed. It is a Tab stop only while it says something."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QWidget

SELECTABLE = Qt.TextInteractionFlag.TextSelectableByMouse | Qt.TextInteractionFlag.TextSelectableByKeyboard


class SelectableLabel(QLabel):
    """A QLabel with selectable text (added to what it allows already, link activation say)."""

    def __init__(self, text: str = "", parent: QWidget | None = None) -> None:
        super().__init__(text, parent)
        self.setTextInteractionFlags(self.textInteractionFlags() | SELECTABLE)
        self._follow_text()

    def setTextInteractionFlags(self, flags: Qt.TextInteractionFlag) -> None:  # noqa: N802 (Qt's name)
        """Qt's, keeping the text selectable (a caller adding link activation keeps selection too)."""
        super().setTextInteractionFlags(flags | SELECTABLE)
        self._follow_text()

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        super().setText(text)
        self._follow_text()

    def _follow_text(self) -> None:
        """Tab reaches it while it has words to select; empty, it is skipped (Qt makes it a Tab stop always)."""
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus if self.text() else Qt.FocusPolicy.NoFocus)
