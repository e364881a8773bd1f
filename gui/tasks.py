"""Running backend calls off the GUI thread: every remote call is a Task whose results come back by signal.

A task's answers travel to the GUI thread as one queued relay, re-emitted there as its public signals unless the
task was left (see Task.leave): closing the window leaves the tasks still running, which then end on their own
threads and answer nobody, however late, instead of the window waiting for them (T19)."""
from __future__ import annotations

import itertools
import logging
import sys
import threading
import traceback
from typing import TYPE_CHECKING, Any, Callable

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot

from envdesk.backend.errors import Cancelled, EnvDeskError

from .gui_thread_collector import collect_on_gui_thread

if TYPE_CHECKING:  # loaded with the first task (the operations' common module), not with the window
    from envdesk.backend.operations.common import Progress

log = logging.getLogger(__name__)
_ids = itertools.count(1)


class TaskSignals(QObject):
    """Signals of one task; they live on the GUI thread, so slots run there."""

    step = Signal(str)
    line = Signal(str, str)
    succeeded = Signal(object)
    failed = Signal(object)  # an EnvDeskError (unexpected exceptions are wrapped into one)
    cancelled = Signal()
    finished = Signal()
    relay = Signal(str, object)  # from the pool thread: which of the above to emit, and with what (see deliver)

    def __init__(self) -> None:
        super().__init__()
        self.left = False  # set on the GUI thread: nothing more is emitted (the window that listened is going)
        self.answered = False  # `finished` was emitted (or the task was left): nothing of it is queued any more
        self.relay.connect(self.deliver)

    @Slot(str, object)
    def deliver(self, name: str, args: tuple) -> None:
        """On the GUI thread: emit the signal `name`, unless the task was left meanwhile (an answer queued before
        the window closed, delivered after: it must reach no deleted window or controller)."""
        if self.left:
            return
        getattr(self, name).emit(*args)
        self.answered = name == "finished"


class Task(QRunnable):
    """One backend call with a Progress wired to signals; cancel() reaches the backend's CancelToken."""

    def __init__(self, title: str, target: str, work: Callable[[Progress], Any], *, changes: bool = False,
                 read_only: bool = False) -> None:
        from envdesk.backend.operations.common import Progress
        super().__init__()
        self.setAutoDelete(False)
        self.id = next(_ids)
        self.title = title
        self.target = target
        self.work = work
        self.signals = TaskSignals()
        self.progress = Progress(on_step=lambda text: self._relay("step", text),
                                 on_line=lambda stream, text: self._relay("line", stream, text))
        self.done = threading.Event()
        self.state = "waiting"
        self.error: EnvDeskError | None = None
        self.changes = changes  # it changes environments (see AppController.start): its finishing is worth saying
        self.read_only = read_only  # it only reads: closing the window drops it without a question
        self._leaving = threading.Lock()  # between ending (on the pool thread) and being left (on the GUI thread)

    def cancel(self) -> None:
        self.progress.cancel.cancel()

    def leave(self) -> None:
        """On the GUI thread (the window is closing): cancel it, and from now on emit nothing; when it ends, what
        it ended as is said on stderr and in the log instead (a change rolled back, or a command on a cluster that
        stopped answering that may still finish there)."""
        with self._leaving:
            self.signals.left = self.signals.answered = True
        self.cancel()

    def _relay(self, name: str, *args: Any) -> None:
        try:
            self.signals.relay.emit(name, args)
        except RuntimeError:
            pass  # the signals' object is gone (Qt's side deleted at exit)

    def run(self) -> None:  # runs on a pool thread
        self.state = "running"
        try:
            answer: tuple = (self.work(self.progress),)
            self.state = "succeeded"
        except Cancelled as exc:  # kept: its words say what a stopped change left (a delete moved aside, say)
            self.state, self.error, answer = "cancelled", exc, ()
        except EnvDeskError as exc:
            self.state, self.error, answer = "failed", exc, (exc,)
        except Exception as exc:  # a bug must reach the user as a message, never kill the thread silently
            error = EnvDeskError(f"Unexpected error: {exc.__class__.__name__}: {exc}", log=traceback.format_exc())
            self.state, self.error, answer = "failed", error, (error,)
        with self._leaving:
            self.done.set()
            left = self.signals.left
            if not left:  # queued under the lock: one left meanwhile drops them when they arrive (see deliver)
                self._relay(self.state, *answer)  # the signal named as the state: succeeded, cancelled, failed
                self._relay("finished")
        if left:
            self.say_how_it_ended()

    def say_how_it_ended(self) -> None:
        """Where a left task's end is said: nobody listens to its signals any more, and nothing it did may go
        unsaid (a command that could not be stopped may still run on the cluster)."""
        words = self.error.message if self.error is not None else "it finished"
        # info, not warning: with no handler of the window's own, Python prints warnings on stderr (twice, then)
        log.info("%s (%s), left running when the window closed, ended: %s", self.title, self.target, words)
        if (self.state == "cancelled" and words == Cancelled().message) or (self.error is None and not self.changes):
            return  # stopped with nothing left to say, or a read that finished (a refresh, a measure): logged only
        print(f"EnvDesk: {self.title} ({self.target}), still running when the window closed, has ended: {words}",
              file=sys.stderr)


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
    """Starts tasks on a pool and keeps them until their answers were delivered (not longer), so closing the
    window can leave them (see leave_all)."""

    started = Signal(object)

    def __init__(self, parent: QObject | None = None, max_threads: int = 8) -> None:
        super().__init__(parent)
        collect_on_gui_thread()  # before any worker runs: no collection may happen on a pool thread
        self.pool = QThreadPool(self)
        self.pool.setMaxThreadCount(max_threads)
        self.tasks: list[Task] = []

    def start(self, task: Task) -> Task:
        self.tasks = [t for t in self.tasks if not t.signals.answered]  # keep what may still run or answer
        self.tasks.append(task)
        self.started.emit(task)
        self.pool.start(task)
        return task

    def running(self) -> list[Task]:
        return [t for t in self.tasks if not t.done.is_set()]

    def leave_all(self) -> list[Task]:
        """Leave every task (see Task.leave) without waiting for any (T19: a window closing on a stuck connection
        blocked the GUI thread 10 s waiting for them): those still running, which end on their pool threads."""
        running = self.running()
        for task in self.tasks:
            unsaid = task.done.is_set() and not task.signals.answered  # ended, its answer queued, not delivered
            task.leave()
            if unsaid:  # R18: its end (a failed rollback, say) would otherwise be said nowhere
                task.say_how_it_ended()
        self.tasks = []
        return running
