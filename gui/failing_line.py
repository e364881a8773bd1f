"""After a failed create or update, what failed is where the user starts: the package its error names,
selected where it was typed, with the focus there (User trial T9: Edit and try again reopened the dialog with
the focus on its first field, and the user hunted for the line)."""
from __future__ import annotations

import re

from PySide6.QtGui import QTextCursor
from PySide6.QtWidgets import QLineEdit, QPlainTextEdit

from envdesk.backend.spec import requirement_name


def named_span(typed: str, failure: str) -> tuple[int, int] | None:
    """(start, end) in `typed` (packages apart by spaces or lines) of the first package `failure` names, by its
    normalised name, as installers write it ('Tiny_Thing' and 'tiny-thing' are one); None if it names none."""
    said = re.sub(r"[-_.]+", "-", failure.lower())
    for word in re.finditer(r"\S+", typed):
        name = requirement_name(word.group())
        if name and re.search(rf"(?<![a-z0-9-]){re.escape(name)}(?![a-z0-9-])", said):
            return word.start(), word.end()
    return None


def select_failing(editor: QPlainTextEdit | QLineEdit, failure: str) -> bool:
    """Select in `editor` the package `failure` names and give it the focus; False (nothing changed) when the
    failure names none of what it holds."""
    typed = editor.toPlainText() if isinstance(editor, QPlainTextEdit) else editor.text()
    span = named_span(typed, failure)
    if span is None:
        return False
    if isinstance(editor, QPlainTextEdit):
        cursor = editor.textCursor()
        cursor.setPosition(span[0])
        cursor.setPosition(span[1], QTextCursor.MoveMode.KeepAnchor)
        editor.setTextCursor(cursor)
    else:
        editor.setSelection(span[0], span[1] - span[0])
    editor.setFocus()
    return True
