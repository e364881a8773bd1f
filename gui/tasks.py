"""Running backend calls off the GUI thread: every remote call is a Task whose results come back by signal."""
from __future__ import annotations

import itertools
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from envdesk.backend.errors import Cancelled, EnvDeskError

from .gui_thread_collector import collect_on_gui_thread

if TYPE_CHECKING:  # loaded with the first task (the operations' common module), not with the window
    from envdesk.backend.operations.common import Progress

_ids = itertools.count(1)


class TaskSignals(QObject):
    """Signals of one task; they live on the GUI thread, so slots run there."""

    step = Signal(str)
    line = Signal(str, str)
    succeeded = Signal(object)
    failed = Signal(object)  # an EnvDeskError (unexpected exceptions are wrapped into one)
    cancelled = Signal()
    finished = Signal()


class Task(QRunnable):
    """One backend call with a Progress wired to signals; cancel() reaches the backend's CancelToken."""

    def __init__(self, title: str, target: str, work: Callable[[Progress], Any]) -> None:
        from envdesk.backend.operations.common import Progress
        super().__init__()
        self.setAutoDelete(False)
        self.id = next(_ids)
        self.title = title
        self.target = target
        self.work = work
        self.signals = TaskSignals()
        self.progress = Progress(on_step=self.signals.step.emit, on_line=self.signals.line.emit)
        self.done = threading.Event()
        self.state = "waiting"
        self.error: EnvDeskError | None = None

    def cancel(self) -> None:
        self.progress.cancel.cancel()

    def run(self) -> None:  # runs on a pool thread
        self.state = "running"
        try:
            outcome: tuple[Signal, tuple] = (self.signals.succeeded, (self.work(self.progress),))
            self.state = "succeeded"
        except Cancelled as exc:  # kept: its words say what a stopped change left (a delete moved aside, say)
            self.state, self.error, outcome = "cancelled", exc, (self.signals.cancelled, ())
        except EnvDeskError as exc:
            self.state, self.error, outcome = "failed", exc, (self.signals.failed, (exc,))
        except Exception as exc:  # a bug must reach the user as a message, never kill the thread silently
            error = EnvDeskError(f"Unexpected error: {exc.__class__.__name__}: {exc}", log=traceback.format_exc())
            self.state, self.error, outcome = "failed", error, (self.signals.failed, (error,))
        self.done.set()
        try:
            outcome[0].emit(*outcome[1])
            self.signals.finished.emit()
        except RuntimeError:
            pass  # the window that wanted the answer is gone


def while_alive(callback: Callable[..., Any], owner: QObject | None = None) -> Callable[..., Any]:
    """`callback`, which does nothing once `owner` (by default the Qt object whose method it is) was deleted: a
    dialog closed (and deleted) before the answer it asked for came back."""
    owner = owner if owner is not None else getattr(callback, "__self__", None)
    if not isinstance(owner, QObject):
        return callback
    from shiboken6 import isValid

    def call(*args: Any) -> None:
        if isValid(owner):
            callback(*args)
    return call


class TaskRunner(QObject):
    """Starts tasks on a pool and keeps them until they end (not longer), so closing the window can wait for them."""

    started = Signal(object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 8) -> None:
        super().__init__(parent)
        collect_on_gui_thread()  # before any worker runs: no collection may happen on a pool thread
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.tasks: list[Task] = []

    def start(self, task: Task) -> Task:
        self.tasks = [t for t in self.tasks if not t.done.is_set()]  # keep only what may still run
        self.tasks.append(task)
        self.started.emit(task)
        self.pool.start(task)
        return task

    def running(self) -> list[Task]:
        return [t for t in self.tasks if not t.done.is_set()]

    def shutdown(self, timeout_ms: int = 10000) -> bool:
        """Cancel what is running and wait for it; True when every task ended."""
        for task in self.running():
            task.cancel()
        return self.pool.waitForDone(timeout_ms)
