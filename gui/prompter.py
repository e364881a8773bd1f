"""Login questions from worker threads, answered in dialogs on the GUI thread without blocking it.

The questions' dialogs live in dialogs/login_dialog.py and dialogs/trust_dialog.py; each loads with the first
question of its kind (or when `LoginDialog` or `TrustDialog` is named here), not with the window."""
from __future__ import annotations

import threading
from collections import deque
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, Qt, Signal, Slot
from PySide6.QtWidgets import QWidget

if TYPE_CHECKING:  # hostkeys loads paramiko, which the window needs only once a cluster is reached
    from envdesk.backend.hostkeys import ServerIdentity
    from envdesk.backend.prompts import SecretAnswer, SecretRequest  # loaded once a secret is asked for
    from PySide6.QtWidgets import QDialog

    from .dialogs.login_dialog import LoginDialog
    from .dialogs.trust_dialog import TrustDialog

__all__ = ["LoginDialog", "QtPrompter", "TrustDialog"]


def __getattr__(name: str) -> Any:
    """`LoginDialog` and `TrustDialog`, from their modules (loaded now if they were not: the trust dialog
    judges host keys with the presets, and a dialog's Qt types cost the window's start ~10 ms)."""
    if name == "LoginDialog":
        from .dialogs.login_dialog import LoginDialog
        return LoginDialog
    if name != "TrustDialog":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from .dialogs.trust_dialog import TrustDialog
    return TrustDialog


class _Pending:
    """A question waiting for the GUI thread's answer (a plain class: see models.TargetItem)."""

    def __init__(self, kind: str, payload: Any) -> None:
        self.kind = kind
        self.payload = payload
        self.event = threading.Event()
        self.answer: Any = None


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
        from PySide6.QtWidgets import QDialog

        from .dialogs.login_dialog import LoginDialog
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
