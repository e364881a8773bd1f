"""The login question: one password, passphrase or one-time code, worded as the server asked it."""
from __future__ import annotations

from PySide6.QtWidgets import QCheckBox, QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout, QWidget

from envdesk.backend.prompts import SecretAnswer, SecretRequest

_KIND_TITLES = {"password": "Password", "passphrase": "Key passphrase", "code": "One-time code",
                "prompt": "Login question"}


class LoginDialog(QDialog):
    """Asks for one password, passphrase or one-time code, exactly as the server worded it."""

    def __init__(self, request: SecretRequest, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle(f"{_KIND_TITLES.get(request.kind, 'Login')} for {request.cluster}")
        self.setAccessibleName("Login prompt")
        layout = QVBoxLayout(self)
        if request.instructions:
            info = QLabel(request.instructions)
            info.setWordWrap(True)
            layout.addWidget(info)
        if request.kind == "code":
            hint = QLabel("Enter the code from your authenticator app, or approve the push on your phone "
                          "and leave this empty.")
            hint.setWordWrap(True)
            layout.addWidget(hint)
        label = QLabel(request.prompt)
        layout.addWidget(label)
        self.field = QLineEdit()
        self.field.setAccessibleName(request.prompt)
        self.field.setEchoMode(QLineEdit.EchoMode.Normal if request.echo else QLineEdit.EchoMode.Password)
        label.setBuddy(self.field)
        layout.addWidget(self.field)
        self.remember = QCheckBox("Remember in the system keyring")
        self.remember.setAccessibleName("Remember in the system keyring")
        self.remember.setToolTip("Keep it in your system's keyring, so EnvDesk does not ask again")
        self.remember.setVisible(request.can_remember)
        layout.addWidget(self.remember)
        problem = request.keyring_note if request.rememberable else None  # found by the worker that asked
        if problem:
            self.no_keyring = QLabel(problem)
            self.no_keyring.setWordWrap(True)
            layout.addWidget(self.no_keyring)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        buttons.button(QDialogButtonBox.StandardButton.Ok).setToolTip(f"Send this answer to {request.cluster}")
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setToolTip(
            f"Do not log in to {request.cluster} now (you can connect again later)")
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.field.setFocus()

    def answer(self) -> SecretAnswer:
        return SecretAnswer(self.field.text(), self.remember.isChecked() and self.remember.isVisible())
