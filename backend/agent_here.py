"""This computer's short write actions run by the agent inside this process: no Python started for them.

On a cluster each agent call is a command. On This computer it was a Python of its own too, and a create's
begin and finish (about 30 ms each) were most of what EnvDesk added to uv's own time there. The agent is the
same code as everywhere (agent_client.agent_script), compiled once per version and kept in the app's cache
folder (CODE_FOLDER, checked by its sha256 before use), then loaded once per process.

Only the actions that lock one environment and write its notes run here (HERE): the ones that walk a whole
environment (measure, delete, reset, abort) keep a Python of their own, so that the window's thread never
waits on them for Python's interpreter lock (a begin over an unfinished environment a stopped client left, which
it empties first, is the exception). Each call runs on a thread of its own, which the caller waits for with the
call's time limit and cancel, as it would wait for a command: a file system that stops answering (a network
folder gone) costs the caller the time limit, not its thread for ever. Nothing can stop that thread, so it is
left to end when the file system answers; a lock its begin took by then is given back (AgentCall).

The agent takes this process for the lock's owner (the client_pid it is sent is its own) and keeps the lock's
heartbeat from a thread where it forks a beater elsewhere: the heartbeat ends with this process, which a client
on another login node sharing the folder notices LOCK_SILENT_SECONDS later (on the same computer, the programs
still at work in the environment keep the lock, as before).
"""
from __future__ import annotations

import hashlib
import json
import marshal
import os
import stat
import sys
import threading
import time
from pathlib import Path
from types import CodeType
from typing import Any

from . import agent_store
from .errors import Cancelled, CommandFailed, EnvDeskError
from .fileio import write_atomically
from .runner import KILL_AFTER, CancelToken

HERE = frozenset({"begin", "finish", "history", "snapshot"})
CODE_FOLDER = "agent-code"  # in the app's cache folder: <agent's sha256>.<cache tag>-<Python's hexversion>
AGENT_NAME = "envdesk_agent"  # the agent's __name__ here: not "__main__", so it defines and does not run
CALL_THREAD = "envdesk-action-here"
CANCEL_POLL = 0.05  # seconds between looks at the cancel token while a call runs

_loaded: dict[str, dict[str, Any]] = {}
_loading = threading.Lock()


def runs_here(runner: Any, config: dict[str, Any]) -> bool:
    """Whether this agent call is one of this computer's actions run in this process."""
    return bool(getattr(runner, "runs_actions_here", False)) and config.get("action") in HERE


def run_here(agent: str, config: dict[str, Any], cache: Path | None, *, cancel: CancelToken | None = None,
             timeout: float | None = None, label: str = "EnvDesk's helper") -> dict[str, Any]:
    """The agent's answer to `config`, run in this process: what the same settings would get from the agent as a
    command (both go through JSON, so the answer holds the same types). Past `timeout` seconds, or once `cancel`
    is cancelled, the caller gets the error a command would give, and the call is abandoned (see AgentCall)."""
    if cancel is not None:
        cancel.raise_if_cancelled()
    call = AgentCall(_namespace(agent, cache)["answer_for"], json.loads(json.dumps(config)))
    thread = threading.Thread(target=call.run, name=CALL_THREAD, daemon=True)
    thread.start()
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while not call.done.wait(CANCEL_POLL if cancel is not None or deadline is not None else None):
            cancelled = cancel is not None and cancel.cancelled
            if (cancelled or (deadline is not None and time.monotonic() > deadline)) and call.abandon():
                raise Cancelled() if cancelled else CommandFailed(
                    f"{label} did not finish within {timeout:g} seconds.",
                    "A folder it works in may be on a file system that stopped answering (a network folder whose "
                    "connection dropped, say): check that folder, then try again.", exit_status=-1)
    except KeyboardInterrupt:  # a Ctrl-C: the call is left, and undone once it ends (waited for a little)
        call.leave()
        thread.join(KILL_AFTER)
        raise
    if call.error is not None:
        raise call.error
    return json.loads(json.dumps(call.answer))


class AgentCall:
    """One call of the agent on a thread of its own, which its caller may stop waiting for (abandon, leave). A
    begin whose answer its caller does not take gives its lock back, and removes the folder it made for a new
    environment: no one is left to finish it."""

    def __init__(self, answer_for: Any, settings: dict[str, Any]) -> None:
        self.answer_for, self.settings = answer_for, settings
        self.done = threading.Event()
        self.answer: dict[str, Any] = {}
        self.error: BaseException | None = None
        self._state = threading.Lock()
        self._abandoned = False

    def run(self) -> None:
        try:
            self.answer = self.answer_for(self.settings)[0]
        except BaseException as exc:  # handed to the caller's thread
            self.error = exc
        with self._state:
            self.done.set()
            abandoned = self._abandoned
        if abandoned:
            self._undo()

    def abandon(self) -> bool:
        """Stop waiting: False when the answer came first (the caller takes it after all)."""
        with self._state:
            if not self.done.is_set():
                self._abandoned = True
            return self._abandoned

    def leave(self) -> None:
        """Stop waiting, the answer not taken even if it came: undone now, or once it comes."""
        with self._state:
            answered, self._abandoned = self.done.is_set(), True
        if answered:
            self._undo()

    def _undo(self) -> None:
        answer, settings = self.answer, self.settings
        if settings.get("action") == "begin" and answer.get("ok") and answer.get("token"):
            self.answer_for({"action": "abort", "path": answer["path"], "roots": settings.get("roots", []),
                             "token": answer["token"], "created": bool(settings.get("create"))})


def _namespace(agent: str, cache: Path | None) -> dict[str, Any]:
    """The agent's globals, its code run once in this process."""
    digest = agent_store.agent_digest(agent)
    with _loading:
        namespace = _loaded.get(digest)
        if namespace is None:
            namespace = {"__name__": AGENT_NAME}
            exec(_code(agent, digest, cache), namespace)
            _loaded[digest] = namespace
        return namespace


def code_file(cache: Path, digest: str) -> Path:
    """Where the code compiled from the agent `digest` is kept for this very Python (its version to the release:
    the format of compiled code may change with any)."""
    return cache / CODE_FOLDER / f"{digest}.{_python_tag()}"


def _python_tag() -> str:
    return f"{sys.implementation.cache_tag}-{sys.hexversion:x}"


def _code(agent: str, digest: str, cache: Path | None) -> Any:
    """The agent's code: the kept one when it is the user's own, writable by no one else, and its sha256 (its first
    line) is right; else compiled and kept."""
    kept = code_file(cache, digest) if cache is not None else None
    if kept is not None:
        try:
            if not _own_file(kept):
                raise ValueError(f"{kept} is not the user's own file")
            check, _, data = kept.read_bytes().partition(b"\n")
            if check.decode("ascii") == hashlib.sha256(data).hexdigest():
                code = marshal.loads(data)
                if isinstance(code, CodeType):
                    return code
        except (OSError, ValueError, EOFError, TypeError):
            pass
    code = compile(agent, f"<EnvDesk agent {digest[:12]}>", "exec")
    if kept is not None:
        data = marshal.dumps(code)
        try:
            write_atomically(kept, hashlib.sha256(data).hexdigest().encode("ascii") + b"\n" + data)
        except EnvDeskError:
            pass  # kept for the next process only: this one runs what it compiled
        _forget_others(kept)
    return code


def _own_file(path: Path) -> bool:
    """Whether `path` is a regular file of this user that no other user may write, with the folder holding it
    (POSIX; elsewhere, the folder the app made for its cache is the user's)."""
    if not hasattr(os, "getuid"):
        return path.is_file()
    folder, file = path.parent.lstat(), path.lstat()
    return stat.S_ISREG(file.st_mode) and all(found.st_uid == os.getuid() and not found.st_mode & 0o022
                                               for found in (folder, file))


def _forget_others(kept: Path) -> None:
    """Remove what this Python kept from other versions of the agent: an upgrade leaves its old code behind."""
    tag = "." + _python_tag()
    try:
        for other in kept.parent.iterdir():
            if other.name != kept.name and other.name.endswith(tag) and not other.name.startswith("."):
                other.unlink()
    except OSError:
        pass
