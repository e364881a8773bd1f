"""The one seam through which every command runs, on a cluster or on this computer."""
from __future__ import annotations

import shlex
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Sequence

from .errors import Cancelled, CommandFailed

LineCallback = Callable[[str, str], None]
"""Called with (stream, line) for each line of output; stream is "stdout" or "stderr"."""


@dataclass
class CommandResult:
    """What a finished command left: its exit status and everything it printed."""

    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def check(self, what: str, hint: str = "") -> "CommandResult":
        """Return self on success; otherwise raise CommandFailed saying what failed."""
        if self.ok:
            return self
        last = next((line for line in reversed(self.stderr.splitlines()) if line.strip()), "")
        detail = f": {last.strip()}" if last else ""
        raise CommandFailed(f"{what} failed{detail}", hint, exit_status=self.exit_status,
                            log=f"$ {self.command}\n{self.stdout}{self.stderr}")


class CancelToken:
    """Shared by an operation and whoever may cancel it; cancelling runs the registered stoppers."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self._lock = threading.Lock()
        self._stoppers: list[Callable[[], None]] = []

    @property
    def cancelled(self) -> bool:
        return self._event.is_set()

    def cancel(self) -> None:
        """Ask the operation to stop; safe to call from any thread, more than once."""
        with self._lock:
            if self._event.is_set():
                return
            self._event.set()
            stoppers = list(self._stoppers)
        for stop in stoppers:
            stop()

    def on_cancel(self, stop: Callable[[], None]) -> Callable[[], None]:
        """Register `stop` to run on cancel (at once if already cancelled); returns an unregister function."""
        with self._lock:
            already = self._event.is_set()
            if not already:
                self._stoppers.append(stop)
        if already:
            stop()

        def unregister() -> None:
            with self._lock:
                if stop in self._stoppers:
                    self._stoppers.remove(stop)
        return unregister

    def raise_if_cancelled(self) -> None:
        if self.cancelled:
            raise Cancelled()

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking early on cancel; True if cancelled."""
        return self._event.wait(seconds)


class LineSplitter:
    """Turns chunks of bytes into whole decoded lines for a callback."""

    def __init__(self, stream: str, callback: LineCallback | None) -> None:
        self.stream = stream
        self.callback = callback
        self._pending = b""
        self._chunks: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self._chunks.append(data)
        if self.callback is None:
            return
        self._pending += data
        *lines, self._pending = self._pending.split(b"\n")
        for line in lines:
            self.callback(self.stream, line.decode("utf-8", "replace").rstrip("\r"))

    def finish(self) -> str:
        if self.callback is not None and self._pending:
            self.callback(self.stream, self._pending.decode("utf-8", "replace"))
            self._pending = b""
        return b"".join(self._chunks).decode("utf-8", "replace")


def join_command(argv: Sequence[str]) -> str:
    """One shell word per argument, each quoted: the only way argument lists become shell text."""
    return " ".join(shlex.quote(str(arg)) for arg in argv)


class Runner(ABC):
    """Runs commands for one target; operations never care whether it is remote or local."""

    name: str
    is_remote: bool

    @abstractmethod
    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None) -> CommandResult:
        """Run one command (after loading `modules`, where the target has them) and wait for it."""

    @abstractmethod
    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None) -> CommandResult:
        """Run a stdlib-only Python script, sent on stdin, with the target's own Python."""

    @abstractmethod
    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "") -> CommandResult:
        """Run bash text built only from quoted pieces (see join_command), modules loaded first."""

    @abstractmethod
    def write_file(self, path: str, data: bytes) -> None:
        """Create or replace a file (absolute path) on the target."""

    def connect(self) -> None:
        """Open the connection now (a no-op where there is none to open)."""

    def close(self) -> None:
        """Release the connection; the runner reconnects on next use."""


def timed_out(what: str, seconds: float) -> CommandFailed:
    """The error for a command that ran past its time limit."""
    return CommandFailed(f"{what} did not finish within {seconds:g} seconds and was stopped.",
                         "The cluster may be busy; try again later.", exit_status=-1)
