"""Login questions from worker threads, answered in dialogs on the GUI thread without blocking it.

The trust question's dialog lives in dialogs/trust_dialog.py; it loads with the first trust question (or when
`TrustDialog` is named here), not with the window."""
from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout,
                               QWidget)

from envdesk.backend.prompts import SecretAnswer, SecretRequest

if TYPE_CHECKING:  # hostkeys loads paramiko, which the window needs only once a cluster is reached
    from envdesk.backend.hostkeys import ServerIdentity

    from .dialogs.trust_dialog import TrustDialog

__all__ = ["LoginDialog", "QtPrompter", "TrustDialog"]


def __getattr__(name: str) -> Any:
    """`TrustDialog`, from its module (loaded now if it was not: it judges host keys with the presets)."""
    if name != "TrustDialog":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .dialogs.trust_dialog import TrustDialog
    return TrustDialog

_KIND_TITLES = {"password": "Password", "passphrase": "Key passphrase", "code": "One-time code",
                "prompt": "Login question"}


@dataclass
class _Pending:
    """A question waiting for the GUI thread's answer."""

    kind: str
    payload: Any
    event: threading.Event = field(default_factory=threading.Event)
    answer: Any = None


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


class QtPrompter(QObject):
    """The backend's Prompter for the app: any thread may ask; dialogs open on the GUI thread, one at a time.

    Clusters connecting side by side (Refresh all, Connect all) ask in turn: the next question's dialog
    opens when the one before it is answered, so a person never faces two code prompts at once.
    """

    _ask = Signal(object)
    asked = Signal(object)  # the dialog that was opened (for tests and accessibility tools)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._parent = parent
        self._ask.connect(self._show, Qt.ConnectionType.QueuedConnection)
        self._pending: list[_Pending] = []
        self._queue: deque[_Pending] = deque()  # asked, not shown yet
        self._showing: _Pending | None = None
        self._closed = False

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        return self._wait(_Pending("secret", request))

    def confirm_host_key(self, cluster: str, identity: ServerIdentity) -> bool:
        return bool(self._wait(_Pending("trust", (cluster, identity))))

    def waiting(self) -> int:
        """How many questions are waiting for an answer (shown or queued)."""
        return len(self._pending)

    def close(self) -> None:
        """Release every waiting worker (the window is closing)."""
        self._closed = True
        for pending in self._pending:
            pending.event.set()

    def _wait(self, pending: _Pending) -> Any:
        if self._closed:
            return None
        self._pending.append(pending)
        self._ask.emit(pending)
        pending.event.wait()
        self._pending.remove(pending)
        return pending.answer

    @Slot(object)
    def _show(self, pending: _Pending) -> None:
        self._queue.append(pending)
        self._show_next()

    def _show_next(self) -> None:
        """Open the oldest waiting question's dialog unless one is open already."""
        if self._showing is not None or not self._queue:
            return
        pending = self._showing = self._queue.popleft()
        if self._closed:
            self._showing = None
            pending.event.set()
            self._show_next()
            return
        if pending.kind == "secret":
            dialog: QDialog = LoginDialog(pending.payload, self._parent)
        else:
            from .dialogs.trust_dialog import TrustDialog
            dialog = TrustDialog(*pending.payload, self._parent)

        def done(result: int) -> None:
            if result == QDialog.DialogCode.Accepted:
                pending.answer = dialog.answer() if isinstance(dialog, LoginDialog) else True
            pending.event.set()
            dialog.deleteLater()
            self._showing = None
            self._show_next()

        dialog.finished.connect(done)
        dialog.setWindowModality(Qt.WindowModality.WindowModal)
        dialog.open()
        self.asked.emit(dialog)
