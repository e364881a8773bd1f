"""What the health check found on one cluster: each finding with what to do, and a Fix button where EnvDesk
can safely do it for you."""
from __future__ import annotations

from html import escape
from typing import Callable

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFrame, QLabel, QPushButton, QScrollArea, QVBoxLayout,
                               QWidget)

from ..controller import Finding, Health
from ..tasks import while_alive


_CHECKED = ("What was looked at, in each environment: that its Python is still there, that the modules it was made "
            "with still load, that every package has the packages it needs (as pip check judges), that none is "
            "made for another Python, that no packages in your home's .local folder change what runs in it, and "
            "whether it sits on a scratch space that is cleaned or, made by uv, has uv's cache on another file "
            "system; and for your account, whether conda's base is "
            "switched on at every login. All is well.")


class HealthDialog(QDialog):
    """The findings of one health check, newest check shown; a fix runs as a normal operation, then the check
    runs again so the list shows what is left."""

    def __init__(self, controller, target: str, health: Health, *,
                 on_checked: Callable[[Health], None] | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.on_checked = on_checked
        self.controller = controller
        self.target = target
        self.setWindowTitle(f"Health of {controller.label(target)}")
        self.setAccessibleName("Health check")
        self.setMinimumSize(640, 460)
        layout = QVBoxLayout(self)
        self.summary = QLabel()
        self.summary.setWordWrap(True)
        layout.addWidget(self.summary)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        self.list = QWidget()
        self.list_layout = QVBoxLayout(self.list)
        scroll.setWidget(self.list)
        layout.addWidget(scroll, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.fix_buttons: dict[str, QPushButton] = {}
        self.show_health(health)

    def show_health(self, health: Health) -> None:
        """Show the findings of `health` (replacing what was shown)."""
        while self.list_layout.count():
            item = self.list_layout.takeAt(0)
            if item.widget() is not None:
                item.widget().deleteLater()
        self.fix_buttons = {}
        count = len(health.checked)
        self.summary.setText(f"Checked {count} environment{'s' if count != 1 else ''}: "
                             + (f"{len(health.findings)} thing(s) to look at." if health.findings
                                else "nothing wrong found."))
        for finding in health.findings:
            self.list_layout.addWidget(self._finding_box(finding))
        if not health.findings:  # an empty box said nothing of what was looked at (a user trial)
            checked = QLabel(_CHECKED)
            checked.setWordWrap(True)
            checked.setAccessibleName("What was checked")
            self.list_layout.addWidget(checked)
        self.list_layout.addStretch(1)

    def _finding_box(self, finding: Finding) -> QFrame:
        box = QFrame()
        box.setFrameShape(QFrame.Shape.StyledPanel)
        column = QVBoxLayout(box)
        where = f" <i>({escape(finding.env)})</i>" if finding.env else " <i>(your account)</i>"
        text = QLabel(f"<b>⚠ {escape(finding.title)}</b>{where}<p>{escape(finding.detail)}</p>"
                      f"<p><b>What to do:</b> {escape(finding.advice)}</p>")
        text.setWordWrap(True)
        column.addWidget(text)
        if finding.fix and finding.fix not in self.fix_buttons:
            button = QPushButton("Do it for me")
            button.setToolTip("EnvDesk makes this change for you (nothing is deleted)")
            button.setAccessibleName(f"Fix: {finding.title}")
            button.clicked.connect(lambda _=False, fix=finding.fix: self._fix(fix))
            self.fix_buttons[finding.fix] = button
            column.addWidget(button)
        return box

    def _fix(self, fix: str) -> None:
        self.fix_buttons[fix].setEnabled(False)
        self.controller.fix_health(self.target, fix, while_alive(
            lambda _: self.controller.check_health(self.target, self._checked), self))

    def _checked(self, health: Health) -> None:
        self.show_health(health)
        if self.on_checked is not None:
            self.on_checked(health)
