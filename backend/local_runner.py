"""Runs commands on this computer, for the built-in "This computer" target."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, TYPE_CHECKING, Callable, Mapping, Sequence

from .errors import CommandFailed, InvalidInput
from .probe import probe_this_computer
from .runner import (OWN_INSTALLS, OWN_INSTALLS_EXPORT, CancelToken, CommandResult, Job, LineCallback, LineSplitter,
                     Runner, join_command, module_load, shown_command)

if TYPE_CHECKING:
    from .capabilities import Capabilities

POLL = 0.05  # seconds the wait loop waits for the process to end between its checks
THIS_COMPUTER = "this computer"  # the name its stored agents are noted under (see agent_store)


def _pump(pipe: IO[bytes], splitter: LineSplitter) -> None:
    read = getattr(pipe, "read1", pipe.read)  # a BufferedReader's read1 returns what is there, not 64 KiB
    for chunk in iter(lambda: read(65536), b""):
        splitter.feed(chunk)


def _write_all(stdin: IO[bytes], data: bytes | None) -> None:
    """Give a process its whole input, then close it; a process that ended without reading it all is no error."""
    try:
        if data:
            stdin.write(data)
        stdin.close()
    except (BrokenPipeError, OSError, ValueError):
        pass


class _ProcessJob(Job):
    """A subprocess in a process group (session) of its own, so stopping it stops its children too."""

    stops_at_once = True

    def __init__(self, command: list[str], label: str, on_line: LineCallback | None,
                 env: Mapping[str, str] | None = None) -> None:
        super().__init__(label, on_line)
        self.command = command
        self.env = {**os.environ, **OWN_INSTALLS, **(env or {})}
        self.process: subprocess.Popen  # set by start(), before any other primitive is used
        self.pumps: list[threading.Thread] = []

    def start(self) -> None:
        extra = {"start_new_session": True} if os.name == "posix" else {
            "creationflags": getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0)}
        try:
            self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=subprocess.PIPE, env=self.env, **extra)
        except OSError as exc:
            raise CommandFailed(f"Could not start {self.label}: {exc.strerror or exc}.",
                                exit_status=127) from exc
        self.pumps = [threading.Thread(target=_pump, args=(self.process.stdout, self.out), daemon=True),
                      threading.Thread(target=_pump, args=(self.process.stderr, self.err), daemon=True)]
        for pump in self.pumps:
            pump.start()

    def send_input(self, data: bytes | None, stop: Callable[[], bool] | None = None) -> None:
        """Written by a thread of its own, as the output is read: a command that does not read it then cannot hold
        the wait loop, which a cancel or a time limit stops it from (the write ends with the process)."""
        stdin = self.process.stdin
        if stdin is None:
            return
        writer = threading.Thread(target=_write_all, args=(stdin, data), daemon=True)
        writer.start()
        self.pumps.append(writer)  # read() waits for it as for the output

    def read(self) -> bool:
        """The pumps feed the output; done when they have read all of it and the process has ended.

        Waits on the pumps first: they end at once when the output closes, as the process ends (a child may
        still hold it open after that), where waiting on the process itself sleeps in steps of up to POLL."""
        for pump in self.pumps:
            pump.join(POLL)
            if pump.is_alive():
                return False
        try:
            self.process.wait(timeout=POLL)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self, force: bool = False) -> bool:
        """Terminate (forced: kill) the process group, leader or not: a child may outlive the leader."""
        process = self.process
        if hasattr(os, "killpg"):  # POSIX: the whole group, which has the leader's id
            try:
                os.killpg(process.pid, signal.SIGKILL if force else signal.SIGTERM)
            except OSError:  # nothing left of the group
                pass
        elif process.poll() is None:  # Windows: the process and its children (an installer's build
            try:                       # processes keep the environment's files open, and its undo fails)
                subprocess.run(["taskkill", "/T", "/F", "/PID", str(process.pid)], capture_output=True, timeout=30)
            except (OSError, subprocess.SubprocessError):
                pass
            if process.poll() is None:
                try:
                    process.kill() if force else process.terminate()
                except OSError:
                    pass
        return True

    def exit_status(self) -> int:
        return self.process.returncode


class LocalRunner(Runner):
    """Runs argument lists as subprocesses, never through a shell unless modules are asked for."""

    name = "local"
    runs_actions_here = True

    def __init__(self, local_cache: Path | None = None) -> None:
        """`local_cache`: the app's cache folder, where the agents this computer keeps are noted between runs
        (see agent_store); without it, each call sends the agent as is."""
        self.local_cache = local_cache

    def agent_notes_key(self) -> str:
        """This computer's name in agent_store's notes, where they can be kept between runs (local_cache): each
        call, in a new process too (each command line call), then runs the code compiled from the stored agent,
        sparing the compile of its source, most of an agent call's time here. "" without local_cache (a runner
        made on its own, by a tool or a test): the agent goes with each call, as is. A route, where a subclass
        has one, comes first."""
        return super().agent_notes_key() or (THIS_COMPUTER if self.local_cache is not None else "")

    @staticmethod
    def _bash(script: str, modules: Sequence[str]) -> list[str]:
        bash = shutil.which("bash")
        if os.name != "posix" or bash is None:
            raise InvalidInput("This needs a bash shell, which this computer does not have.",
                               "Use a cluster for this, or leave the module list empty.")
        if modules:
            return [bash, "-lc", f"{OWN_INSTALLS_EXPORT}; {module_load(modules)} && {script}"]  # after the login
            # files, which may set them again (R15)
        return [bash, "-c", script]

    def _with_modules(self, argv: Sequence[str], modules: Sequence[str]) -> list[str]:
        if not modules:
            return list(argv)
        return self._bash(f"exec {join_command(argv)}", modules)

    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run one command; `env` is added to its environment (never to its arguments, which others see)."""
        job = _ProcessJob(self._with_modules(argv, modules), shown_command(argv), on_line, env)
        return self._execute(job, stdin, cancel, timeout)

    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "") -> CommandResult:
        return self._execute(_ProcessJob(self._bash(body, modules), label or body, on_line), stdin, cancel, timeout)

    def python_in_shell(self) -> str | None:
        """None: a body here is an argument of bash, which other users of this computer can read."""
        return None

    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None, utf8: bool = False) -> CommandResult:
        # -I -S: these scripts use the standard library only, so Python's start skips site-packages (a third
        # of a listing's time here). A standalone app's executable is not a Python and takes "-" alone.
        isolated = [] if getattr(sys, "frozen", False) else ["-I", "-S"]
        return self.run([sys.executable, *isolated, "-", *args], stdin=source.encode("utf-8"),
                        timeout=timeout, cancel=cancel)

    def probe(self, cancel: CancelToken | None = None) -> Capabilities:
        """Looked up here directly: no command needed."""
        return probe_this_computer()

    def python_command(self, caps: Capabilities) -> str:
        """The Python this computer's probe found (the one EnvDesk runs on)."""
        return caps.tools.get("python3", "python3")

    def env_python(self, path: str) -> str:
        """The environment's Python; on Windows a venv's is in Scripts, a conda environment's at its root (R13:
        conda environments there were given Scripts\\python.exe, which they do not have)."""
        if os.name == "nt":
            return windows_env_python(path)
        return f"{path}/bin/python"

    def marker_environment(self, python: str | None, cancel: CancelToken | None = None) -> dict[str, str]:
        """This computer's own markers (only the Python version replaced)."""
        from . import uvproject  # packaging's markers: loaded only for a uv project
        return uvproject.marker_environment(python, local=True)


def windows_env_python(path: str) -> str:
    """A Windows environment's python.exe: at its root in a conda environment, else in Scripts (venv)."""
    conda = Path(path, "python.exe").is_file() and Path(path, "conda-meta").is_dir()
    return f"{path}\\python.exe" if conda else f"{path}\\Scripts\\python.exe"
