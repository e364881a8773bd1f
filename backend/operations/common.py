"""Shared by the operations: progress reporting, running steps, finding environments, locks."""
from __future__ import annotations

import json
import logging
import os
import re
import secrets
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

from .. import agent_store
from ..agent_client import _HINTS, _REFUSALS, ACTION_TIMEOUT, STORE_PART, agent_part, agent_script, call_action
from ..capabilities import Capabilities
from ..errors import CommandFailed, ConnectionFailed, EnvDeskError
from ..inventory import Environment, read_inventory
from ..probe import probe
from ..protocol import ANSWER_MARKER, ENVDESK_DIR, STATE_OK
from ..recipes import Step
from ..runner import CancelToken, CommandResult, LineCallback, command_failed, timed_out
from ..spec import redact
from ..targets import Session, Target


log = logging.getLogger(__name__)


def _ignore(_: str) -> None:
    pass


@dataclass
class Progress:
    """Where an operation reports what it does, streams output, and learns that it was cancelled."""

    on_step: Callable[[str], None] = _ignore
    on_line: LineCallback | None = None
    cancel: CancelToken = field(default_factory=CancelToken)

    def step(self, text: str) -> None:
        self.cancel.raise_if_cancelled()
        self.on_step(text)


_NOT_FOUND = (r"no matching distribution found for (?P<name>[^\s,;]+)|because (?P<name2>[^\s,;]+) was not found in "
              r"the (?:package registry|provided package locations)|no solution found")
_PLAIN_ERRORS: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"no space left on device", re.I),
     "The disk is full (no space left on it). Delete old environments or files, or use another folder "
     "(project or scratch space)."),
    (re.compile(r"disk quota exceeded", re.I),
     "Your disk quota is used up. Delete old environments or files, or use project space."),
    (re.compile(r"failed to build `?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)|could not build wheels for "
                r"(?P<name2>[A-Za-z0-9][A-Za-z0-9._-]*)|failed building wheel for "
                r"(?P<name3>[A-Za-z0-9][A-Za-z0-9._-]*)", re.I),
     "{name} had to be built from its source code here, and that build failed (the log shows why; often a "
     "compiler or library module must be loaded first, or a version with a ready-made wheel exists)."),
    (re.compile(_NOT_FOUND, re.I),
     "{name} could not be found in this target's package index or wheel store."),
    (re.compile(r"(\S+): command not found|No such file or directory: '?(\S+?)'?$", re.I),
     "A program EnvDesk needs is not installed there."),
    (re.compile(r"the following module\(s\) are unknown|unable to locate a modulefile", re.I),
     "A module could not be loaded: this target does not have it."),
    (re.compile(r"hash mismatch|do not match the hashes|hashes are required|hash-checking mode", re.I),
     "A downloaded file does not match the hash the imported file records: the file was changed, or the "
     "target's package store holds a different build. Nothing was installed from it."),
]


def explain(result: CommandResult) -> str:
    """A plain sentence for the most common ways a command fails, naming the package where it can."""
    text = result.stdout + "\n" + result.stderr
    for pattern, sentence in _PLAIN_ERRORS:
        match = pattern.search(text)
        if match:
            named = next((value for key, value in match.groupdict().items() if key.startswith("name") and value), None)
            return sentence.format(name=named.strip("`'\"") if named else "A package")
    return ""


def _redacting(on_line: LineCallback | None) -> LineCallback | None:
    """`on_line` shown each line without credentials (installers print the URLs they fetch)."""
    if on_line is None:
        return None
    shown = on_line
    return lambda stream, line: shown(stream, redact(line))


def run_step(target: Target, step: Step, progress: Progress, *, check: bool = True,
             failure: type[CommandFailed] = CommandFailed) -> CommandResult:
    """Run one step, streaming its output; raise `failure` (a CommandFailed) in plain words when it fails.

    The step's credentials reach it through its environment and standard input, never its arguments;
    its output, shown and kept in the error's log, is without them.
    """
    progress.step(step.what)
    result = target.runner.run(step.argv, modules=step.modules, on_line=_redacting(progress.on_line),
                               cancel=progress.cancel, env=dict(step.env),
                               stdin=step.input.encode("utf-8") if step.input is not None else None)
    result = CommandResult(result.command, result.exit_status, redact(result.stdout), redact(result.stderr))
    if check and not result.ok:
        raise command_failed(f"{step.what} failed on {target.label}", result, explain(result), failure)
    return result


def capabilities(session: Session, target: Target, progress: Progress) -> Capabilities:
    """What the target offers, probed once per session."""
    cached = session.capabilities.get(target.name)
    if cached is None:
        progress.step(f"Looking at what {target.label} offers")
        cached = probe(target, progress.cancel)
        session.capabilities[target.name] = cached
    return cached


def is_path(ref: str) -> bool:
    return ref.startswith(("/", "~"))


def find_environment(target: Target, ref: str, progress: Progress, *, settled: bool = True) -> Environment:
    """The environment named `ref` (or at that absolute path) on the target, read fresh (`settled`: see
    read_inventory)."""
    progress.step(f"Reading {ref} on {target.label}")
    inventory = read_inventory(target.runner, target.roots, paths=[ref] if is_path(ref) else (),
                               names=() if is_path(ref) else [ref], cancel=progress.cancel, settled=settled)
    if is_path(ref) and len(inventory.environments) == 1:
        return inventory.environments[0]
    return inventory.find(ref)


READY_MARKER = "ENVDESK-BUILD-READY "
"""What a build's agent prints, then JSON, when it is ready for the client's next instruction (see action_build)."""


def full_path(path: str, home: str) -> str:
    """`path` with a leading ~ replaced by the target's home folder (as the agent expands it), so that the
    commands of a build, which no shell reads, name the folder itself."""
    if path != "~" and not path.startswith(("~/", "~\\")):
        return path
    if not home:
        raise CommandFailed(f"EnvDesk could not tell the home folder that {path} is in.",
                            "Give the environment folder in full (starting with /).")
    return home.rstrip("/\\") + path[1:]


@dataclass
class Reservation:
    """The lock an operation holds on one environment folder (the agent's `begin`), until finish or release.

    Only the holder's token can finish or release it, so a failed operation can never undo
    another laptop's work on the same environment. A lock whose client stopped (killed, crashed, its
    connection gone) is taken over by the next operation at once on the same login node, within
    about two minutes from another one (the agent decides; `answer["took_over"]` says so).

    A new environment is reserved without a command (`reserve`, with a token chosen here), then `start`ed:
    one agent takes the lock, makes the folder and stays, to finish, reset or undo it when told, while the
    commands that make the environment run. `held` is whether the lock may be this reservation's.
    """

    target: Target
    path: str
    roots: list[str]
    token: str
    answer: dict
    begin: dict[str, Any] | None = None
    held: bool = True
    agent: _BuildAgent | None = None

    @classmethod
    def reserve(cls, target: Target, path: str, roots: list[str], home: str, **settings: Any) -> "Reservation":
        """A new environment folder `path` (~ expanded with `home`, as the agent does) to be `start`ed; nothing
        runs yet. `settings` are begin's (create, operation)."""
        return cls(target, full_path(path, home), list(roots), secrets.token_hex(12), {}, settings, held=False)

    @classmethod
    def take(cls, target: Target, path: str, roots: list[str], **settings: object) -> "Reservation":
        # client_pid: on "This computer" the agent is this process's child, and the lock lives as long as
        # this process (on a cluster, as long as the SSH connection); heartbeat: keep the lock visibly
        # alive for other login nodes while the operation runs (see the agent's take_lock).
        answer = call_action(target.runner, "begin", path, roots, client_pid=os.getpid(), heartbeat=True,
                             **settings)
        if answer.get("took_over"):
            log.warning("%s on %s: %s", answer["path"], target.name, answer["took_over"])
        return cls(target, answer["path"], list(roots), answer["token"], answer)

    def start(self, python: str) -> None:
        """Take the lock of the reserved folder and make it, with the agent's begin (one command; finish, reset
        and release are commands of their own).

        The single agent that waits for instructions (start_waiting_agent) is not used: a connection killed
        right after it took the lock once left a half-made environment listed as healthy (tests/test_faults).
        """
        answer = call_action(self.target.runner, "begin", self.path, self.roots, client_pid=os.getpid(),
                             heartbeat=True, token=self.token, **(self.begin or {}))
        self.held = True
        self.answer = answer
        if answer.get("took_over"):
            log.warning("%s on %s: %s", answer["path"], self.target.name, answer["took_over"])

    def start_waiting_agent(self, python: str) -> None:
        """Take the lock of the reserved folder and make it, with an agent (run by `python`) that then waits
        for finish, reset or release (see the agent's action_build); returns once it is ready."""
        config = {"action": "build", "path": self.path, "roots": self.roots, "token": self.token,
                  "announce": READY_MARKER, **(self.begin or {}), "client_pid": os.getpid(), "heartbeat": True}
        self.held = True  # from here on, until the agent says otherwise
        self.agent = _BuildAgent(self.target, config, python)  # set at once: release stops it, however this ends
        if not self.agent.wait_ready(0):
            self.held, error = self.agent.failure(f"Making {self.path}")
            raise error
        if self.agent.info.get("took_over"):
            log.warning("%s on %s: %s", self.path, self.target.name, self.agent.info["took_over"])

    def finish(self, meta: dict | None = None, *, snapshot_if_changed: str | None = None) -> Environment:
        """Record `meta`, clear the being-built mark, release the lock; the environment as it is now.

        `snapshot_if_changed`: the snapshot taken before the change, forgotten when the packages are the same
        as in it (a change that changed nothing leaves no snapshot); `answer["dropped_snapshot"]` then says so.
        """
        try:
            answer = self._tell("finish", meta=meta) if not snapshot_if_changed else None
            if answer is None:
                answer = call_action(self.target.runner, "finish", self.path, self.roots, token=self.token,
                                     **({"meta": meta} if meta else {}),
                                     **({"snapshot_if_changed": snapshot_if_changed} if snapshot_if_changed
                                        else {}))
        except ConnectionFailed:
            finished = self._finished_after_all()
            if finished is None:
                raise
            self.held = False
            return finished
        self.held = False
        self.answer["dropped_snapshot"] = answer.get("dropped_snapshot")
        return Environment.from_agent(answer["env"])

    def _finished_after_all(self) -> Environment | None:
        """After the connection dropped during `finish`: the environment if the finish ran all the same (built,
        no change under way), so a finished operation is not reported, or undone, as a failed one."""
        try:
            found = read_inventory(self.target.runner, self.roots, paths=[self.path]).environments
        except EnvDeskError:
            return None
        env = found[0] if len(found) == 1 else None
        return env if env is not None and env.state == STATE_OK and env.changing is None else None

    def reset(self) -> None:
        """Empty the half-built environment to build it again, still holding the lock."""
        if self._tell("reset") is None:
            call_action(self.target.runner, "reset", self.path, self.roots, token=self.token)

    def _tell(self, todo: str, **extra: Any) -> dict | None:
        """Have the build's agent, when it waits, do `todo` (see _BuildAgent.instruct); None when there is none
        waiting, or it could not be told (it is then stopped): the caller asks with a command of its own."""
        if self.agent is None:
            return None
        if not self.agent.waiting:
            self.agent.stop_now()
            return None
        return self.agent.instruct(todo, **extra)

    def release(self, *, remove_unfinished: bool = False, drop_snapshot: str | None = None) -> None:
        """Give the lock back (removing a half-built environment if asked, forgetting the snapshot of a change
        that was rolled back); never hides the error at hand. Nothing to do when the lock is not held."""
        if not self.held:
            return
        if remove_unfinished and not drop_snapshot:
            try:
                if self._tell("abort") is not None:
                    self.held = False
                    return
            except EnvDeskError as exc:
                log.info("the agent making %s could not undo it (%s); asking again", self.path, exc.message)
        try:
            if self.agent is not None:
                self.agent.stop_now()  # the lock is given back below, with the token
            call_action(self.target.runner, "abort", self.path, self.roots, token=self.token,
                        created=remove_unfinished, **({"drop_snapshot": drop_snapshot} if drop_snapshot else {}))
            self.held = False
        except EnvDeskError as exc:
            log.warning("could not clean up %s on %s: %s", self.path, self.target.name, exc.message)


def _refusal(answer: dict) -> EnvDeskError:
    """The error for an agent's refusal (as call_action words it)."""
    code = answer.get("code", "")
    error = answer.get("error") or "unknown problem"
    return _REFUSALS.get(code, CommandFailed)(error, _HINTS.get(code, ""))


class _BuildAgent:
    """The agent of a new environment's build (the agent's action_build), its command running in a thread of
    its own while the build's commands run: it took the lock, made the folder and waits for an instruction,
    which reaches it as a file in the folder (instruction_file there) since nothing reaches a running command."""

    def __init__(self, target: Target, config: dict[str, Any], python: str) -> None:
        self.target, self.path = target, config["path"]
        self.info: dict[str, Any] = {}
        self._stop = CancelToken()
        self._changed = threading.Condition()
        self._ready = -1      # the last instruction number it said it is ready for, minus one
        self._sent = 0        # instructions written
        self._ended = False
        self._answer: dict | None = None   # its answer line, read as soon as it comes (before the command ends)
        self._result: CommandResult | None = None
        self._error: BaseException | None = None
        settings = json.dumps(config, separators=(",", ":"))

        def send(script: str) -> CommandResult:
            # -E -S: the agent needs nothing from the Python's settings or site-packages
            return target.runner.run([python, "-E", "-S", "-"], stdin=script.encode("utf-8"), on_line=self._line,
                                     cancel=self._stop)

        thread = threading.Thread(target=self._run, args=(settings, send), name="envdesk-build-agent", daemon=True)
        thread.start()

    def _run(self, settings: str, send: Callable[[str], CommandResult]) -> None:
        try:
            result = agent_store.run_stored(self.target.runner, agent_script(write=True), settings,
                                            agent_part(STORE_PART), send)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            with self._changed:
                self._error = exc
        else:
            with self._changed:
                self._result = result
        with self._changed:
            self._ended = True
            self._changed.notify_all()

    def _line(self, stream: str, line: str) -> None:
        if stream != "stdout":
            return
        if line.startswith(ANSWER_MARKER):
            answer = _last_answer(line)
            if answer is not None and "ok" in answer:  # not the agent store's request for the agent itself
                with self._changed:
                    self._answer = answer
                    self._changed.notify_all()
        elif line.startswith(READY_MARKER):
            try:
                info = json.loads(line[len(READY_MARKER):])
            except json.JSONDecodeError:
                return
            with self._changed:
                self._ready, self.info = int(info.pop("ready")), info
                self._changed.notify_all()

    @property
    def waiting(self) -> bool:
        """Whether it waits for an instruction now (it said it is ready for the next one, and is running)."""
        with self._changed:
            return self._answer is None and not self._ended and self._ready == self._sent

    def wait_ready(self, number: int) -> bool:
        """Wait until it is ready for the instruction after `number` (True), or has answered or ended (False)."""
        self._wait(lambda: self._ready >= number)
        return self.waiting

    def _wait(self, done: Callable[[], bool] = lambda: False, seconds: float = ACTION_TIMEOUT) -> None:
        """Wait until `done()`, its answer or its end; one that comes to none of them within `seconds` is
        stopped (timed_out)."""
        with self._changed:
            if self._changed.wait_for(lambda: self._answer is not None or self._ended or done(), seconds):
                return
        self.stop_now()
        raise timed_out(f"EnvDesk's helper making {self.path}", seconds)

    def instruct(self, todo: str, **extra: Any) -> dict | None:
        """Tell it to "finish", "abort" or "reset"; the answer of a finish or abort (its last words), {} once a
        reset is done and it is ready again. Raises its refusal, or why it failed. None when the instruction
        could not be written (no SFTP there, a full disk ...): it is then stopped."""
        self._sent += 1
        data = json.dumps({"do": todo, **extra}, separators=(",", ":")).encode("utf-8")
        try:
            self.target.runner.write_file(f"{self.path}/{ENVDESK_DIR}/go-{self._sent}", data)  # its instruction_file
        except (EnvDeskError, OSError) as exc:
            log.info("could not tell the agent making %s to %s: %s", self.path, todo, exc)
            self.stop_now()
            return None
        if todo == "reset" and self.wait_ready(self._sent):
            return {}
        self._wait()
        answer = self.answer()
        if answer is not None and answer.get("ok"):
            return answer
        raise self.failure(f"Telling EnvDesk's helper to {todo} {self.path}")[1]

    def answer(self) -> dict | None:
        """Its answer, once it gave one (None: none, or not yet)."""
        with self._changed:
            answer, result = self._answer, self._result
        return answer if answer is not None or result is None else _last_answer(result.stdout)

    def failure(self, what: str) -> tuple[bool, BaseException]:
        """After it ended without doing what it was asked: whether the lock may still be held, and the error."""
        answer = self.answer()
        if answer is not None:
            return answer.get("held") is not False, _refusal(answer)
        with self._changed:
            result, error = self._result, self._error
        if error is not None:
            return True, error
        return True, command_failed(f"{what} failed on {self.target.label}", result or CommandResult(what, -1, "", ""))

    def stop_now(self) -> None:
        """End its command, whatever it does (the caller then gives the lock back itself, with the token)."""
        self._stop.cancel()
        with self._changed:
            self._changed.wait_for(lambda: self._ended)


def _last_answer(stdout: str) -> dict | None:
    """The agent's answer in a command's output (its last answer line), or None."""
    answers = [line for line in stdout.splitlines() if line.startswith(ANSWER_MARKER)]
    try:
        answer = json.loads(answers[-1][len(ANSWER_MARKER):]) if answers else None
    except json.JSONDecodeError:
        return None
    return answer if isinstance(answer, dict) else None
