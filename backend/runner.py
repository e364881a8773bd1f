"""The one seam through which every command runs, on a cluster or on this computer."""
from __future__ import annotations

import logging
import re
import shlex
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from .errors import Cancelled, CommandFailed, ConnectionFailed, EnvDeskError

if TYPE_CHECKING:  # only for annotations: the runner layer imports neither paramiko nor the probe
    from .capabilities import Capabilities
    from .config import ClusterProfile
    from .hostkeys import ServerIdentity

log = logging.getLogger(__name__)

LineCallback = Callable[[str, str], None]
TrustDecision = Callable[["ServerIdentity", "EnvDeskError"], bool]
"""Asked with a server's identity and why it is not trusted yet (unknown, or changed with --replace)."""
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

    def check(self, what: str, hint: str = "") -> CommandResult:
        """Return self on success; otherwise raise CommandFailed saying what failed."""
        if self.ok:
            return self
        raise command_failed(f"{what} failed", self, hint)


OWN_INSTALLS = {"PIP_USER": "0", "PIP_REQUIRE_VIRTUALENV": "0"}
"""Set for every command EnvDesk runs: its installs always go into the environment named, whatever a login file
sets (T17: `export PIP_USER=1` in a .bashrc made every create fail with pip's "Can not perform a '--user'
install"; PIP_REQUIRE_VIRTUALENV refuses a conda environment, which is no virtualenv)."""
OWN_INSTALLS_EXPORT = "export " + " ".join(f"{name}={value}" for name, value in OWN_INSTALLS.items())
"""OWN_INSTALLS as shell text, for a login shell's script: its login files run before it and may set them."""

UTF8_CHARACTERS = (
    "envdesk_u=$'\\xc3\\xbc'; if [ ${#envdesk_u} != 1 ]; then "
    "envdesk_l=$(locale -a 2>/dev/null | grep -i -m 1 -x -E '(c|en_us)[.]utf-?8') || envdesk_l=; "
    'if [ -n "$envdesk_l" ]; then if [ -n "${LC_ALL:-}" ]; then export LANG="$LC_ALL"; unset LC_ALL; fi; '
    'export LC_CTYPE="$envdesk_l"; fi; fi')
"""Bash text that gives what runs after it UTF-8 characters where the session has none (T26): an SSH session
from paramiko carries no LANG, so it is in the POSIX locale, where Python 3.6 names files in ASCII and its venv
and pip fail on a folder with 'ü' (Python 3.7+ take UTF-8 there by themselves, PEP 538; this does what they do).
Bash counts 'ü' as one character only in a UTF-8 locale; otherwise the first UTF-8 locale the system has (C.UTF-8,
else en_US.UTF-8) becomes the character set (LC_CTYPE), and only that: messages, numbers and sorting stay as they
were (an LC_ALL, which would override it, becomes LANG, which does not)."""


MESSAGE_LINE = "^ *([a-z]*error|cause|caused by): "
"""The lines of uv's, pip's and conda's output that say what went wrong, the last the most precise ('error:
Unsupported editable requirement ...', then 'cause: Git sources cannot be editable'; conda's 'PackagesNotFoundError:
...'); not the requirement it echoes, nor the caret under it, nor pip's closing notice of a newer release, nor the
channels conda lists after its error (a regular expression, for grep -E -i too)."""


def command_failed(what: str, result: CommandResult, hint: str = "",
                   error: type[CommandFailed] = CommandFailed) -> CommandFailed:
    """The one wording of a failed command: "<what>: <what went wrong>" ("<what>." without a word of it): the
    last line of stderr that says so (MESSAGE_LINE), else its last line with a letter or digit in it.

    `what` already says it failed (e.g. "Installing packages failed on alpha"); the output goes to the log.
    """
    import re
    lines = [line.strip() for line in result.stderr.splitlines() if any(c.isalnum() for c in line)]
    said = [line for line in lines if re.match(MESSAGE_LINE, line, re.IGNORECASE)]
    last = (said or lines or [""])[-1]
    from .remote_python import NO_PYTHON_STATUS, THEN_AGAIN, no_python_said
    no_python = no_python_said(last) if result.exit_status == NO_PYTHON_STATUS else None
    if no_python:
        last, hint = no_python, hint or THEN_AGAIN  # the message says what to do: not "run it again with -v"
    return error(f"{what}: {last}" if last else f"{what}.", hint, exit_status=result.exit_status,
                 log=f"$ {result.command}\n{result.stdout}{result.stderr}")


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


# a terminal's colours and character sets (SGR: ESC [ ... m; fish's ESC ( B), which login scripts print: in a log or
# the progress they are noise ("\x1b[1;32mWelcome"), not words. Other controls stay, for the display to write out.
_TERMINAL_STYLE = re.compile(r"\x1b\[[0-9;:]*m|\x1b[()][0-9A-Za-z]")


def _line(raw: bytes) -> str:
    text = raw.decode("utf-8", "replace")
    return _TERMINAL_STYLE.sub("", text) if "\x1b" in text else text


class LineSplitter:
    """Turns chunks of bytes into whole decoded lines for a callback, without a terminal's colour codes."""

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
            self.callback(self.stream, _line(line).rstrip("\r"))

    def finish(self) -> str:
        if self.callback is not None and self._pending:
            self.callback(self.stream, _line(self._pending))
            self._pending = b""
        return b"".join(self._chunks).decode("utf-8", "replace")


def join_command(argv: Sequence[str]) -> str:
    """One shell word per argument, each quoted: the only way argument lists become shell text."""
    return " ".join(shlex.quote(str(arg)) for arg in argv)


def loaded_check(modules: Sequence[str]) -> str:
    """Shell text that fails unless each of `modules` shows in $LOADEDMODULES (Lmod and Environment Modules keep
    it): a name without a version stands for any version of it (python: python/3.11.5)."""
    return " && ".join(f'case ":$LOADEDMODULES:" in *:{shlex.quote(module)}[:/.]*) ;; *) false ;; esac'
                       for module in modules)  # '.': python/3.11 loads python/3.11.5 (Lmod's extended default, R15)


def module_load(modules: Sequence[str]) -> str:
    """Shell text that loads `modules` and fails unless they loaded: Lmod's success is taken as it says; else what
    loaded decides. Lmod ends a load that printed a warning (a module's LmodWarning, "...is deprecated") with status
    1, the modules loaded all the same, as a user who goes on by hand sees; Environment Modules 3.2 ends one that
    found no such module with status 0 (R15)."""
    return (f'{{ module load {join_command(modules)}; envdesk_loaded=$?; '
            f'[ -n "${{LMOD_CMD:-}}" ] && [ "$envdesk_loaded" = 0 ] || {{ {loaded_check(modules)}; }}; }}')


def shown_command(argv: Sequence[str]) -> str:
    """join_command for logs and messages: a program given with -c that runs to several lines (EnvDesk's own,
    see pip_settings) is named, not printed."""
    return join_command(["<EnvDesk program>" if index and argv[index - 1] == "-c" and "\n" in str(arg)
                         else arg for index, arg in enumerate(argv)])


KILL_AFTER = 3.0  # seconds between asking a stopped command to end and forcing it


class Job(ABC):
    """One started command, as the wait loop in Runner sees it: the primitives each runner provides.

    A runner makes one per command (commands of one runner may run at once, from several threads).
    """

    stops_at_once = False
    """Whether stop() returns at once (a signal here), where a remote stop may wait on the network."""
    unreached = False
    """Whether its stop could not reach the command (the cluster stopped answering): it may still run there."""

    def __init__(self, label: str, on_line: LineCallback | None) -> None:
        self.label = label
        self.out = LineSplitter("stdout", on_line)
        self.err = LineSplitter("stderr", on_line)

    @abstractmethod
    def start(self) -> None:
        """Start the command (raising CommandFailed or ConnectionFailed when it cannot be)."""

    @abstractmethod
    def send_input(self, data: bytes | None, stop: Callable[[], bool] | None = None) -> None:
        """Give the command its standard input, then close it; `stop()` true (a cancel, a timeout) ends the sending
        early, for the caller to stop the command."""

    @abstractmethod
    def read(self) -> bool:
        """Feed the output available now to out and err, waiting briefly for some; True once it is all read
        and the command has ended (or was given up after stop)."""

    @abstractmethod
    def stop(self, force: bool = False) -> bool:
        """Ask the command and its children to stop (`force`: kill them); False when that cannot be sent yet."""

    @abstractmethod
    def exit_status(self) -> int:
        """The exit status of the ended command."""

    def result(self) -> CommandResult:
        """What the ended command left."""
        return CommandResult(self.label, self.exit_status(), self.out.finish(), self.err.finish())

    def close(self) -> None:
        """Release what the command held (called once, however it ended)."""


class Runner(ABC):
    """Runs commands for one target; operations never care whether it is remote or local.

    Whatever differs between a cluster and this computer is answered here, so callers never ask which one it is.
    """

    name: str
    has_module_system: bool = False
    """Whether module lists are loaded by the target's module system (Lmod), so they are worth checking first."""
    may_lack_packages: bool = False
    """Whether the target's package index may lack packages (a cluster's wheel store), so imports check pins first."""
    local_cache: Path | None = None
    """A folder on this computer for notes about the target kept between runs (which agents it stores); None: none."""
    keep_agent: bool = False
    """Whether listings may go to an agent kept running on the target (see agent_session); the app sets it."""
    runs_actions_here: bool = False
    """Whether the agent's short write actions run in this process (see agent_here): the target is this computer."""

    @abstractmethod
    def run(self, argv: Sequence[str], *, modules: Sequence[str] = (), stdin: bytes | None = None,
            on_line: LineCallback | None = None, cancel: CancelToken | None = None,
            timeout: float | None = None, env: Mapping[str, str] | None = None) -> CommandResult:
        """Run one command (after loading `modules`, where the target has them) and wait for it; `env` is
        added to its environment (never to its arguments, which other users of the target can read)."""

    @abstractmethod
    def run_python(self, source: str, args: Sequence[str], *, timeout: float | None = None,
                   cancel: CancelToken | None = None, utf8: bool = False) -> CommandResult:
        """Run a stdlib-only Python script, sent on stdin, with the target's own Python; `utf8`: with UTF-8
        characters where the session has none (see UTF8_CHARACTERS), for a script that does not turn file names
        itself as the agent does (its calls stay small without)."""

    @abstractmethod
    def run_shell(self, body: str, *, modules: Sequence[str] = (), stdin: bytes | None = None,
                  on_line: LineCallback | None = None, cancel: CancelToken | None = None,
                  timeout: float | None = None, label: str = "") -> CommandResult:
        """Run bash text built only from quoted pieces (see join_command), modules loaded first."""

    def python_in_shell(self) -> str | None:
        """bash text, for a run_shell body, that runs a stdlib-only Python program given on its standard input
        (piped to it by that body) as run_python does; None where a body may not carry a program (its
        settings), because others can read that body (this computer's: a process argument). The default
        serves a login shell whose body travels on standard input (a cluster's)."""
        from .remote_python import FROM_STDIN, python_finder
        return f"( {python_finder(FROM_STDIN)} )"

    @abstractmethod
    def probe(self, cancel: CancelToken | None = None) -> Capabilities:
        """What the target offers (Pythons, tools, modules, space), asked in at most one command."""

    @abstractmethod
    def python_command(self, caps: Capabilities) -> str:
        """The Python program new environments are made with (after their modules are loaded)."""

    def env_python(self, path: str) -> str:
        """The python program inside the environment folder `path` on this target."""
        return f"{path}/bin/python"

    @abstractmethod
    def marker_environment(self, python: str | None, cancel: CancelToken | None = None) -> dict[str, str]:
        """The values environment markers are judged by on this target, for Python version `python`."""

    def client_life(self) -> dict[str, int]:
        """Settings that tie an agent's lock to this client's life where the agent cannot find it alone (see
        SSHRunner.client_life); none by default."""
        return {}

    def matches(self, profile: ClusterProfile | None) -> bool:
        """Whether this runner still serves `profile` (None: this computer); if not, the session replaces it."""
        return profile is None

    def route(self) -> list[str]:
        """The hops a command takes to reach the target, jump hosts first; empty for this computer."""
        return []

    def route_notes(self) -> list[str]:
        """What of the user's SSH configuration the route does not follow, in plain words; none for this computer."""
        return []

    def agent_notes_key(self) -> str:
        """The name this computer notes the agents the target keeps under (see agent_store): its route; ""
        where none are noted (the agent then goes with each call)."""
        return " > ".join(self.route())

    def trust_route(self, decide: TrustDecision, *, replace: bool = False) -> list[tuple[ServerIdentity, str]]:
        """Check every server on the way (jump hosts, then the login node), in order, recording each key
        `decide` accepts; returns (identity, what happened) per hop. Nothing to trust here: []."""
        return []

    def connect(self, cancel: CancelToken | None = None) -> None:
        """Open the connection now (a no-op where there is none to open); `cancel` abandons it."""

    def connect_early(self) -> None:
        """Start opening the connection in the background without asking anyone anything; the next
        connect() (every command's first step) waits for it. A no-op where there is none to open."""

    def close(self) -> None:
        """Release the connection; the runner reconnects on next use."""

    def _execute(self, job: Job, stdin: bytes | None, cancel: CancelToken | None,
                 timeout: float | None) -> CommandResult:
        """The one wait loop of every runner: start, feed stdin, stream output until the command ends.

        On cancel or timeout the command is asked to stop, and forced KILL_AFTER seconds later if still there;
        then Cancelled or the timed_out error is raised. When the connection breaks while it runs, what it
        started there is stopped too (see _abandon) before ConnectionFailed goes on.
        """
        stopping_since = 0.0
        signalled = forced = started = False
        try:
            if cancel is not None:
                cancel.raise_if_cancelled()
            job.start()
            started = True
            deadline = None if timeout is None else time.monotonic() + timeout
            job.send_input(stdin, lambda: (cancel is not None and cancel.cancelled)
                           or (deadline is not None and time.monotonic() > deadline))
            while not job.read():
                now = time.monotonic()
                if not stopping_since and ((cancel is not None and cancel.cancelled)
                                           or (deadline is not None and now > deadline)):
                    stopping_since = now
                if stopping_since and not signalled:
                    signalled = job.stop()
                elif signalled and not forced and now - stopping_since > KILL_AFTER:
                    forced = job.stop(force=True)
        except ConnectionFailed as exc:
            if started:
                _abandon(job)
                self._note_unreached(exc, job)
            raise
        except BaseException as exc:  # a Ctrl-C (KeyboardInterrupt) at the terminal, which never reaches the command
            if started:
                try:
                    _stop_before_leaving(job)
                except BaseException as again:  # a second Ctrl-C
                    self._note_unreached(again, job)
                    raise
                self._note_unreached(exc, job)
            raise
        finally:
            job.close()
        if cancel is not None and cancel.cancelled:
            cancelled = Cancelled()
            if self._note_unreached(cancelled, job):
                cancelled.message = f"Cancelled, but {left_running(cancelled)}"
            raise cancelled
        if stopping_since:
            raise timed_out(job.label, timeout or 0)
        return job.result()


    def _note_unreached(self, error: BaseException, job: Job) -> bool:
        """Say on `error` (see left_running) that `job` may still run, when its stop could not reach it."""
        if job.unreached:
            setattr(error, LEFT_RUNNING, f"EnvDesk could not reach {self.name} to stop the command running there "
                                         f"({job.label}): it may still finish there. Check the list once {self.name} "
                                         "answers again.")
        return job.unreached


LEFT_RUNNING = "envdesk_left_running"


def left_running(error: BaseException | None) -> str:
    """What an operation must say, and must not undo, when the command it was running could not be stopped (the
    cluster stopped answering, so nothing could be sent to it): the words, or "" when it was stopped or ended.
    Set on any exception (a Cancelled, a ConnectionFailed, a Ctrl-C's KeyboardInterrupt) by the wait loop. Nothing
    of what the command was changing may be rolled back or removed meanwhile: it may still be writing there."""
    return str(getattr(error, LEFT_RUNNING, "") or "") if error is not None else ""


def _abandon(job: Job) -> None:
    """Stop a command whose connection broke (on a new connection, where the runner has one to open).

    A remote command does not end with its connection: an installer would go on changing an environment
    that the caller is about to roll back, or remove. Best effort: an unreachable target keeps it running.
    """
    try:
        job.stop(force=True)
    except Exception as exc:  # the target may be unreachable in any way; the broken connection is the error
        log.info("could not stop %s after its connection broke: %s", job.label, exc)


def _stop_before_leaving(job: Job) -> None:
    """Stop a command its caller is leaving (a Ctrl-C in the terminal: the command runs in a process group of its
    own, which the terminal's signal does not reach), and wait for it to end: the caller goes on to roll back or
    remove what the command was changing. Asked to end (again until that can be sent), forced KILL_AFTER seconds
    later, given up after as long again. A second Ctrl-C leaves at once, forcing what can be forced at once (a
    command here; a remote stop may wait on the network)."""
    since, signalled, forced = time.monotonic(), False, False
    try:
        signalled = job.stop()
        while not job.read():
            waited = time.monotonic() - since
            if not signalled:
                signalled = job.stop()
            elif not forced and waited > KILL_AFTER:
                forced = job.stop(force=True)
            elif forced and waited > 2 * KILL_AFTER:
                log.warning("%s did not end after it was stopped", job.label)
                return
    except KeyboardInterrupt:
        if job.stops_at_once and not forced:
            job.stop(force=True)
        raise
    except Exception as exc:  # the error at hand goes on; this one is only logged
        log.info("could not stop %s: %s", job.label, exc)


def timed_out(what: str, seconds: float) -> CommandFailed:
    """The error for a command that ran past its time limit."""
    return CommandFailed(f"{what} did not finish within {seconds:g} seconds and was stopped.",
                         "The cluster may be busy; try again later.", exit_status=-1)
