"""Pieces the dialogs share: live checks with a red note under the field, and folded advanced options."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QFormLayout, QGroupBox, QLabel, QVBoxLayout, QWidget

from envdesk.backend import validate
from envdesk.backend.errors import InvalidInput


def error_label() -> QLabel:
    label = QLabel()
    label.setWordWrap(True)
    label.setStyleSheet("color: #d64541")
    label.setAccessibleName("Problem")
    return label


def check(label: QLabel, test: Callable[[], object]) -> bool:
    """Run a validator; show its plain message on `label`. True when the value is fine."""
    try:
        test()
    except InvalidInput as exc:
        label.setText(exc.message)
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


def folded_options(title: str = "Advanced options") -> tuple[QGroupBox, QFormLayout]:
    """A checkable group whose form is hidden until the user ticks it: advanced settings out of the way."""
    group = QGroupBox(title)
    group.setCheckable(True)
    group.setChecked(False)
    group.setFlat(True)
    inner = QWidget()
    form = QFormLayout(inner)
    QVBoxLayout(group).addWidget(inner)
    group.toggled.connect(inner.setVisible)
    inner.setVisible(False)
    return group, form
