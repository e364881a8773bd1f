"""This computer's settings: the folders its environments are looked for in, and the pip arguments its installs get
(a wheelhouse for working offline, say), which were only to be had by editing clusters.yaml (a user trial)."""
from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QFormLayout, QLabel, QPlainTextEdit, QVBoxLayout,
                               QWidget)

from envdesk.backend.config import DEFAULT_ENV_ROOTS, LocalSettings
from envdesk.backend.errors import EnvDeskError

from .common import error_label, lines_of

if TYPE_CHECKING:
    from ..controller import AppController


class LocalSettingsDialog(QDialog):
    """Edit where This computer's environments are looked for and what pip arguments its installs get."""

    def __init__(self, controller: AppController, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.setWindowTitle("This computer's settings")
        self.setAccessibleName("This computer's settings")
        self.setMinimumWidth(520)
        settings = controller.local_settings()
        layout = QVBoxLayout(self)
        intro = QLabel("Where EnvDesk looks for environments on this computer, and what it tells pip and uv when it "
                       "installs here. One per line.")
        intro.setWordWrap(True)
        layout.addWidget(intro)
        form = QFormLayout()
        self.roots = QPlainTextEdit("\n".join(settings.env_roots))
        self.roots.setPlaceholderText("Left empty, EnvDesk looks in:\n" + "\n".join(DEFAULT_ENV_ROOTS))
        self.roots.setAccessibleName("Environment folders")
        self.pip_args = QPlainTextEdit("\n".join(settings.pip_args))
        self.pip_args.setPlaceholderText("For example, to install only from a folder of wheels:\n--no-index\n"
                                         "--find-links\n/path/to/the/folder")
        self.pip_args.setAccessibleName("Extra pip arguments")
        for edit in (self.roots, self.pip_args):
            edit.setTabChangesFocus(True)
            edit.setMaximumHeight(110)
        form.addRow("Environment folders:", self.roots)
        form.addRow("Extra pip arguments:", self.pip_args)
        layout.addLayout(form)
        self.error = error_label()
        layout.addWidget(self.error)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        for edit in (self.roots, self.pip_args):
            edit.textChanged.connect(self._check)
        self._check()

    def _check(self) -> bool:
        """Judge what is typed as saving would (a folder outside the home, a line break in an argument...)."""
        try:
            LocalSettings(lines_of(self.roots), lines_of(self.pip_args))
        except EnvDeskError as exc:
            self.error.setText(exc.message)
            self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(False)
            return False
        self.error.setText("")
        self.buttons.button(QDialogButtonBox.StandardButton.Save).setEnabled(True)
        return True

    def accept(self) -> None:
        if not self._check():
            return
        try:
            self.controller.save_local_settings(lines_of(self.roots), lines_of(self.pip_args))
        except EnvDeskError as exc:
            self.error.setText(str(exc))
            return
        super().accept()
