"""Runs commands on this computer, for the built-in "This computer" target."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import IO, Sequence

from .errors import Cancelled, CommandFailed, InvalidInput
from .runner import CancelToken, CommandResult, LineCallback, LineSplitter, Runner, join_command, timed_out


def _pump(pipe: IO[bytes], splitter: LineSplitter) -> None:
    for chunk in iter(lambda: pipe.read1(65536), b""):
        splitter.feed(chunk)


def _signal_group(process: subprocess.Popen, force: bool = False) -> None:
    """Ask the process and its children to stop (their own process group on POSIX); never waits."""
    if process.poll() is not None:
        return
    try:
        if hasattr(os, "killpg"):
            os.killpg(process.pid, signal.SIGKILL if force else signal.SIGTERM)
        elif force:
            process.kill()
        else:
            process.terminate()
    except OSError:
        pass


def _kill_leftovers(process: subprocess.Popen) -> None:
    """Kill what is left of a stopped command's process group (POSIX), leader or not."""
    if process.poll() is None:
        process.kill()
    if hasattr(os, "killpg"):
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except OSError:
            pass


KILL_AFTER = 3.0  # seconds between asking a cancelled command to stop and forcing it


class LocalRunner(Runner):
    """Runs argument lists as subprocesses, never through a shell unless modules are asked for."""

    name = "local"
    is_remote = False

    @staticmethod
    def _bash(script: str, modules: Sequence[str]) -> list[str]:
        bash = shutil.which("bash")
        if os.name != "posix" or bash is None:
            raise InvalidInput("This needs a bash shell, which this computer does not have.",
                               "Use a cluster for this, or leave the module list empty.")
        if modules:
            return [bash, "-lc", f"module load {join_command(modules)} && {script}"]
        return [bash, "-c", script]

    def _with_modules(self, argv: Sequence[str], modules: Sequence[str]) -> list[str]:
        if not modules:
            return list(argv)
        return self._bash(f"exec {join_command(argv)}", modules)

    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None) -> CommandResult:
        return self._spawn(self._with_modules(argv, modules), join_command(argv), stdin, on_line, cancel, timeout)

    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "") -> CommandResult:
        return self._spawn(self._bash(body, modules), label or body, stdin, on_line, cancel, timeout)

    def write_file(self, path: str, data: bytes) -> None:
        target = os.path.expanduser(path)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with open(target, "wb") as handle:
            handle.write(data)

    def _spawn(self, command: list[str], label: str, stdin: bytes | None, on_line: LineCallback | None,
               cancel: CancelToken | None, timeout: float | None) -> CommandResult:
        extra = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        try:
            process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, **extra)
        except OSError as exc:
            raise CommandFailed(f"Could not start {label}: {exc.strerror or exc}.",
                                exit_status=127) from exc
        out, err = LineSplitter("stdout", on_line), LineSplitter("stderr", on_line)
        pumps = [threading.Thread(target=_pump, args=(process.stdout, out), daemon=True),
                 threading.Thread(target=_pump, args=(process.stderr, err), daemon=True)]
        for pump in pumps:
            pump.start()
        unregister = cancel.on_cancel(lambda: _signal_group(process)) if cancel else (lambda: None)
        try:
            self._feed(process, stdin)
            deadline = None if timeout is None else time.monotonic() + timeout
            stopping_since = 0.0
            while process.poll() is None:
                if deadline is not None and time.monotonic() > deadline and not stopping_since:
                    _signal_group(process)
                    stopping_since = time.monotonic()
                if cancel is not None and cancel.cancelled and not stopping_since:
                    stopping_since = time.monotonic()
                if stopping_since and time.monotonic() - stopping_since > KILL_AFTER:
                    _signal_group(process, force=True)
                try:
                    process.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    pass
            for pump in pumps:
                pump.join(KILL_AFTER if stopping_since else None)
                if pump.is_alive():  # a child still holds the output open after a stop: force the group
                    _kill_leftovers(process)
                    pump.join()
        finally:
            unregister()
        if deadline is not None and stopping_since and not (cancel is not None and cancel.cancelled):
            raise timed_out(label, timeout or 0)
        if cancel is not None and cancel.cancelled:
            raise Cancelled()
        return CommandResult(label, process.returncode, out.finish(), err.finish())

    @staticmethod
    def _feed(process: subprocess.Popen, stdin: bytes | None) -> None:
        try:
            if stdin:
                process.stdin.write(stdin)
            process.stdin.close()
        except (BrokenPipeError, OSError):
            pass

    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None) -> CommandResult:
        return self.run([sys.executable, "-", *args], stdin=source.encode("utf-8"),
                        timeout=timeout, cancel=cancel)
