"""Live checks for text fields: a red note under the field, and OK disabled until it is right."""
from __future__ import annotations

from typing import Callable

from PySide6.QtWidgets import QLabel

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
    """Packages typed one per line (or separated by commas between specs)."""
    return [part.strip() for line in text.splitlines() for part in line.split(", ") if part.strip()]
