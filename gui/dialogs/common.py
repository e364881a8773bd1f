"""Pieces the dialogs share: live checks with a red note under the field, and folded advanced options."""
from __future__ import annotations

import re
from typing import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QCheckBox, QFormLayout, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from envdesk.backend import validate
from envdesk.backend.errors import InvalidInput

from ..selectable_label import SelectableLabel
from ..status_colours import problem_colour


_LONG_RUN = re.compile(r"\S{31,}")
_UNBROKEN = re.compile(r"[^\s\u200b]{30}(?=[^\s\u200b])")


def breakable(text: str) -> str:
    """`text` with zero-width spaces where a wrapped label may break a long run without spaces (a path after each
    '/', else every 30 characters), instead of running past the dialog's edge: Qt wraps at spaces only."""
    def marked(run: str) -> str:
        return _UNBROKEN.sub(lambda part: part.group() + "\u200b", run.replace("/", "/\u200b"))
    return _LONG_RUN.sub(lambda run: marked(run.group()), text)


class ProblemLabel(SelectableLabel):
    """The red note under a field or a dialog's form: plain words that wrap, long names too (see breakable), in the
    problem colour of the palette in force (status_colours), selectable to copy. A screen reader names it "Problem"
    and reads its words as its description (a name of its own hides the text from the label's accessible
    interface), without the breaks breakable put in."""

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        colour = f"color: {problem_colour()}"  # the palette may have changed since the last words
        if self.styleSheet() != colour:
            self.setStyleSheet(colour)
        super().setText(text)
        self.setAccessibleDescription(text.replace("\u200b", ""))


def lines_of(edit: QPlainTextEdit) -> list[str]:
    """The non-blank lines of a box that takes one item a line (a folder, say, whose name may hold spaces)."""
    return [line.strip() for line in edit.toPlainText().splitlines() if line.strip()]


def error_label() -> QLabel:
    """A ProblemLabel, empty until there is a problem."""
    label = ProblemLabel()
    label.setWordWrap(True)
    label.setTextFormat(Qt.TextFormat.PlainText)  # an error's words, never markup ('tinyalpha<0.0.1 …')
    label.setAccessibleName("Problem")
    return label


def check(label: QLabel, test: Callable[[], object]) -> bool:
    """Run a validator; show its plain message and its hint (what is allowed, what to do) on `label`. True when
    the value is fine."""
    try:
        test()
    except InvalidInput as exc:
        label.setText(breakable(str(exc)))  # the hint too: "'my env' cannot be a name." alone left people guessing
        return False
    label.setText("")
    return True


def split_specs(text: str) -> list[str]:
    """Packages typed one per line, or several on a line apart by spaces or ', ' (`numpy pandas>=2`); a line that
    is one requirement with spaces in it (`numpy >= 1.26`) stays whole. Lines pasted from a requirements file read
    as pip reads them there (comments dropped, continued lines joined). The New and Update dialogs read alike."""
    from envdesk.backend.spec import logical_lines

    found: list[str] = []
    for line in logical_lines(text):
        for part in (part.strip() for part in line.split(", ")):
            if not part:
                continue
            try:
                found.append(validate.package_spec(part) if " " in part else part)
            except InvalidInput:  # several packages apart by spaces (each checked by the caller)
                found += part.split()
    return found


class FoldedOptions(QWidget):
    """A tick box that unfolds a form of advanced settings under it; folded, it takes its own line only (a group
    box left an empty grey bar there). Ticked and read as the group box it replaces was."""

    def __init__(self, title: str) -> None:
        super().__init__()
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        self.box = QCheckBox(title)
        self.box.setAccessibleName(title)
        self.inner = QWidget()
        self.inner.setVisible(False)
        layout.addWidget(self.box)
        layout.addWidget(self.inner)
        self.box.toggled.connect(self.inner.setVisible)
        self.toggled = self.box.toggled

    def isChecked(self) -> bool:  # noqa: N802 (the group box's name)
        return self.box.isChecked()

    def setChecked(self, checked: bool) -> None:  # noqa: N802
        self.box.setChecked(checked)


def folded_options(title: str = "Advanced options") -> tuple[FoldedOptions, QFormLayout]:
    """Advanced settings out of the way until the user ticks them: the fold, and the form to fill."""
    folded = FoldedOptions(title)
    return folded, QFormLayout(folded.inner)
