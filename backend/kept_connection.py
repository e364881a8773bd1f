"""Connections kept open between commands (`envdesk cluster connect`): where each one is recorded, how a command
reaches it, and how one is started and stopped.

A kept connection is a background process (see keeper) that logged in to one cluster once, two-factor code and
all, and serves this user's later commands over SSH on this computer's loopback until it has been idle for a
while, as OpenSSH's ControlMaster/ControlPersist does. Its record (port, the key it shows and the one-off token
that lets a command in) lives in a folder only the user can read, as OpenSSH's control socket does, and is
removed when it ends. A command that finds no live one logs in itself, as before.
"""
from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import os
import secrets
import select
import socket
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from . import errors
from .errors import ConnectionFailed, EnvDeskError

if TYPE_CHECKING:
    from .config import ClusterProfile
    from .hostkeys import ServerIdentity
    from .paths import AppPaths
    from .prompts import Prompter, SecretAnswer, SecretRequest
    from .runner import CancelToken, CommandResult
    from .ssh_lib import paramiko

PROTOCOL = 1
DEFAULT_IDLE_MINUTES = 30.0
LOCAL_USER = "envdesk"
# channel types of our own (RFC 4250's name@domain form): a listing, and the keeper's end (needs no cluster session)
LISTING_CHANNEL = "envdesk-listing@envdesk.local"
ANCHOR_CHANNEL = "envdesk-anchor@envdesk.local"
STREAM_VARIABLE = "ENVDESK_KEPT_STREAM"  # set (for the keeper only) on the channel of a program kept running
STOP_CHANNEL = "envdesk-stop@envdesk.local"
_STOP_WAIT = 10.0
_LOCK_WAIT = 15.0
_DIAL_TIMEOUT = 5.0
_LOGIN_FIELDS = ("name", "host", "port", "user", "identity_file", "jump", "auth")


@dataclass(frozen=True)
class KeptRecord:
    """What a command needs to use a kept connection, and what it was made for."""

    cluster: str
    port: int
    token: str
    host_key: str  # "type base64", the key the keeper shows on loopback
    pid: int
    profile: str  # profile_digest of the cluster's settings when it logged in
    idle_minutes: float
    protocol: int = PROTOCOL
    nonce: str = ""  # the one its starter gave it (a process id may be a launcher's, as a venv's on Windows)

    @staticmethod
    def profile_digest(profile: ClusterProfile | None) -> str:
        """A digest of how the cluster is logged in to: a record made before that was edited is not used (its
        Slurm and environment settings do not matter to the connection)."""
        data = {name: getattr(profile, name) for name in _LOGIN_FIELDS} if profile is not None else {}
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()


class KeeperGone(ConnectionFailed):
    """The keeper of a record is not there (nothing on its port, or something else): its record can go."""


def _file_name(text: str) -> str:
    """Any text as one plain file name, distinct from any other text's on a file system that ignores case
    (macOS, Windows): hexadecimal (R13: base64 named clusters 'aaa' and 'aaG' YWFh and YWFH, one file there)."""
    return text.encode("utf-8", "surrogateescape").hex()


def record_path(paths: AppPaths, cluster: str) -> Path:
    """Where the record of `cluster`'s kept connection lives (its keeper's log beside it): in a folder of this
    computer's own, as a home folder may be shared by several (a cluster's login nodes), each with its loopback.
    A record an earlier EnvDesk wrote under its base64 names is moved here first (R14: a keeper started before
    the upgrade, still logged in, was not found, and the next command logged in again, a second code asked)."""
    host = socket.gethostname()
    path = paths.cache_dir / "kept" / _file_name(host) / f"{_file_name(cluster)}.json"
    if not path.exists():
        legacy = paths.cache_dir / "kept" / _base64_name(host) / f"{_base64_name(cluster)}.json"
        with contextlib.suppress(OSError):
            if legacy.is_file():
                path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                os.replace(legacy, path)
    return path


def _base64_name(text: str) -> str:
    """The file name earlier versions gave `text` (before 2026-11-24), read to move their records."""
    return base64.urlsafe_b64encode(text.encode("utf-8", "surrogateescape")).decode().rstrip("=")


def claim(paths: AppPaths, record: KeptRecord) -> KeptRecord:
    """Write `record` unless a live keeper made for the same login settings already serves the cluster (two
    `cluster connect` at once: each logs in, one serves); the record that serves."""
    with _record_lock(paths, record.cluster):
        current = read_record(paths, record.cluster)
        if current is not None and current.nonce != record.nonce and current.profile == record.profile:
            try:
                dial(current).close()
                return current
            except ConnectionFailed:
                pass
        write_record(paths, record)
        return record


def _record_lock(paths: AppPaths, cluster: str) -> contextlib.AbstractContextManager[None]:
    """Only one process at a time between reading the record and writing it (the system's lock, see fileio.locked:
    one a process that died held is free at once)."""
    from .fileio import locked

    def busy() -> ConnectionFailed:
        return ConnectionFailed(f"Another EnvDesk command is starting a kept connection to {cluster}.",
                                "Try again in a moment.")

    return locked(record_path(paths, cluster).with_suffix(".lock"), _LOCK_WAIT, busy)


def write_record(paths: AppPaths, record: KeptRecord) -> None:
    """Write the record, readable by the user only."""
    from .fileio import write_atomically

    write_atomically(record_path(paths, record.cluster), json.dumps(asdict(record)))


def read_record(paths: AppPaths, cluster: str) -> KeptRecord | None:
    """The record of `cluster`'s kept connection, if there is a readable one of this version."""
    try:
        data = json.loads(record_path(paths, cluster).read_text(encoding="utf-8"))
        record = KeptRecord(**data)
    except (OSError, ValueError, TypeError):
        return None
    if record.protocol != PROTOCOL or record.cluster != cluster or not isinstance(record.port, int):
        return None
    return record


def forget(paths: AppPaths, cluster: str, *, pid: int | None = None) -> None:
    """Remove the record (only the one process `pid` wrote, when given: a newer keeper's stays)."""
    path = record_path(paths, cluster)
    if pid is not None:
        record = read_record(paths, cluster)
        if record is not None and record.pid != pid:
            return
    with contextlib.suppress(OSError):
        path.unlink()


def dial(record: KeptRecord) -> paramiko.Transport:
    """A logged-in SSH connection to the keeper of `record`; ConnectionFailed when it is not there (gone, or
    something else answers on its port: its key is not the recorded one, and the token is never sent to it)."""
    from .ssh_lib import paramiko

    try:
        sock = socket.create_connection(("127.0.0.1", record.port), timeout=_DIAL_TIMEOUT)
    except ConnectionRefusedError as exc:
        raise KeeperGone(f"The kept connection to {record.cluster} is gone ({exc}).") from exc
    except OSError as exc:
        raise ConnectionFailed(f"The kept connection to {record.cluster} did not answer ({exc}).") from exc
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    transport = paramiko.Transport(sock)
    try:
        transport.auth_timeout = _DIAL_TIMEOUT
        transport.start_client(timeout=_DIAL_TIMEOUT)
        key = transport.get_remote_server_key()
        if f"{key.get_name()} {key.get_base64()}" != record.host_key:
            raise KeeperGone(f"Something else than EnvDesk's kept connection to {record.cluster} answered "
                             f"on port {record.port}.")
        transport.auth_password(LOCAL_USER, record.token, fallback=False)
    except EnvDeskError:
        transport.close()
        raise
    except paramiko.AuthenticationException as exc:  # its key, not its token: the port's next keeper
        transport.close()
        raise KeeperGone(f"The kept connection to {record.cluster} is gone ({exc}).") from exc
    except (paramiko.SSHException, EOFError, OSError) as exc:
        transport.close()
        raise ConnectionFailed(f"The kept connection to {record.cluster} did not answer ({exc}).") from exc
    return transport


def dial_for(paths: AppPaths, profile: ClusterProfile) -> paramiko.Transport | None:
    """The kept connection to this cluster, if one is live and was made for these settings; a dead one's record
    is removed. None: the command logs in itself (also when the keeper is too busy to answer in time)."""
    record = read_record(paths, profile.name)
    if record is None or record.profile != KeptRecord.profile_digest(profile):
        return None
    try:
        transport = dial(record)
        _served[transport] = (paths, record)
        return transport
    except KeeperGone:
        forget(paths, profile.name, pid=record.pid)
    except ConnectionFailed as exc:
        logging.getLogger(__name__).info("%s", exc)
    return None


_served: weakref.WeakKeyDictionary[paramiko.Transport, tuple[AppPaths, KeptRecord]] = weakref.WeakKeyDictionary()
"""The keeper each kept connection dialled by dial_for is served by: asked why it ended (see why_it_ended)."""


def ending_path(paths: AppPaths, cluster: str) -> Path:
    """Where a keeper that lost the cluster's connection says why, for the commands it cut (its record goes as it
    ends, this stays until the next keeper's)."""
    return record_path(paths, cluster).with_suffix(".ended")


def say_why_it_ends(paths: AppPaths, cluster: str, error: ConnectionFailed) -> None:
    """The keeper's side: say (for its clients, see why_it_ended) why the commands through it are cut."""
    from .fileio import write_atomically

    write_atomically(ending_path(paths, cluster),
                     json.dumps({"pid": os.getpid(), "error": error.message, "hint": error.hint}))


def why_it_ended(transport: paramiko.Transport) -> ConnectionFailed | None:
    """Why the keeper serving `transport` (dialled by dial_for) cut the command running through it, in the words
    of a command's own connection (T19: a stall through it was said to be a broken network): what the keeper said
    as it ended (the cluster stopped answering, or ended the connection there), else that its process on this
    computer ended without a word (stopped or killed); None when it still serves (this side closed it)."""
    served = _served.get(transport)
    if served is None:
        return None
    paths, record = served
    with contextlib.suppress(OSError, ValueError, TypeError, KeyError):
        said = json.loads(ending_path(paths, record.cluster).read_text(encoding="utf-8"))
        if said["pid"] == record.pid:
            return ConnectionFailed(str(said["error"]), str(said["hint"]))
    try:
        dial(record).close()
        return None
    except ConnectionFailed:  # gone, or going (its port may still take a connection it never answers)
        pass
    return ConnectionFailed(f"EnvDesk's kept connection to {record.cluster} (`envdesk cluster connect`) ended while "
                            "running a command: its process on this computer was stopped.",
                            f"What ran on {record.cluster} may not have finished: check the list. The next command "
                            f"logs in by itself; `envdesk cluster connect {record.cluster}` keeps a connection again.")


def is_live(paths: AppPaths, profile: ClusterProfile) -> bool:
    """Whether a live kept connection serves the cluster as its settings stand (it is asked: a record alone
    may be one left by a process that died)."""
    transport = dial_for(paths, profile) if is_kept(paths, profile.name) else None
    if transport is None:
        return False
    transport.close()
    return True


def is_kept(paths: AppPaths, cluster: str) -> bool:
    """Whether a record says a kept connection serves `cluster` (one stat: a command then dials nothing early);
    False for a name no file can have (the command says what is wrong with it)."""
    try:
        return record_path(paths, cluster).exists()
    except (OSError, ValueError):
        return False


def ask_listing(transport: paramiko.Transport, agent: str, settings: str, cancel: CancelToken | None,
                timeout: float) -> CommandResult | None:
    """The answer of the listing agent the keeper keeps running on the cluster (one round trip there, as the
    app's own, see agent_session) to the listing `settings`; None when it has none to give (the caller then runs
    the listing as a command of its own). Cancel closes the channel."""
    from .errors import Cancelled
    from .runner import CommandResult
    from .ssh_lib import paramiko

    try:
        channel = transport.open_channel(LISTING_CHANNEL, timeout=_DIAL_TIMEOUT)
    except (paramiko.SSHException, EOFError, OSError):
        return None
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout + _DIAL_TIMEOUT
    try:
        channel.sendall(json.dumps({"agent": agent, "settings": settings, "timeout": timeout}).encode("utf-8"))
        channel.shutdown_write()
        while True:
            if cancel is not None and cancel.cancelled:
                raise Cancelled()
            if time.monotonic() > deadline:  # the keeper took longer than the agent may: ask the usual way
                return None
            if channel.recv_ready() or channel.eof_received or channel.closed:
                chunk = channel.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
            else:
                select.select([channel], [], [], 0.05)
    except (paramiko.SSHException, EOFError, OSError):
        return None
    finally:
        channel.close()
    try:
        reply = json.loads(b"".join(chunks))
    except ValueError:
        return None
    if not isinstance(reply, dict) or reply.get("none") or not isinstance(reply.get("stdout"), str):
        return None
    return CommandResult(str(reply.get("command", "")), int(reply.get("exit_status", 1)), reply["stdout"],
                         str(reply.get("stderr", "")))


def anchor_pid(transport: paramiko.Transport) -> int | None:
    """The process id of the anchor the keeper runs on the cluster for as long as this client is connected (see
    keeper's _Gate.anchor_pid), or None when it cannot tell."""
    from .ssh_lib import paramiko

    try:
        channel = transport.open_channel(ANCHOR_CHANNEL, timeout=_DIAL_TIMEOUT)
    except (paramiko.SSHException, EOFError, OSError):
        return None
    try:
        data = read_to_end(channel, 30, limit=32)
    except (paramiko.SSHException, EOFError, OSError):
        return None
    finally:
        channel.close()
    return int(data) if data.isdigit() else None


def read_to_end(channel: paramiko.Channel, timeout: float | None = None, limit: int | None = None) -> bytes:
    """What the other side sends on one of EnvDesk's own channels until it ends it (at most `limit` bytes);
    socket.timeout once it is silent for `timeout` seconds."""
    channel.settimeout(timeout)
    chunks: list[bytes] = []
    got = 0
    while limit is None or got < limit:
        chunk = channel.recv(65536 if limit is None else limit - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


# -- the questions of the keeper's login, relayed to whoever started it --------------------------------------


class KeeperQuestions:
    """The keeper's prompter: each question of its login goes to the starter as one JSON line on stdout, the
    answer comes back on stdin. Once the login is done (hang_up) nobody is there: it declines, as NoPrompter."""

    def __init__(self, answers: IO[str], questions: IO[str]) -> None:
        self._answers: IO[str] | None = answers
        self._questions: IO[str] | None = questions
        self._lock = threading.Lock()

    def tell(self, message: dict[str, Any]) -> None:
        """Send one line to the starter (nothing once hung up)."""
        if self._questions is not None:
            try:
                self._questions.write(json.dumps(message) + "\n")
                self._questions.flush()
            except (OSError, ValueError):  # the starter is gone (Ctrl-C, its terminal closed): nobody to tell
                self._questions = self._answers = None

    def _ask(self, message: dict[str, Any]) -> dict[str, Any] | None:
        with self._lock:
            if self._answers is None:
                return None
            self.tell(message)
            line = self._answers.readline()
        try:
            answer = json.loads(line) if line else None
        except ValueError:
            return None
        return answer if isinstance(answer, dict) else None

    def ask_secret(self, request: SecretRequest) -> SecretAnswer | None:
        answer = self._ask({"ask": "secret", "request": {
            "cluster": request.cluster, "kind": request.kind, "prompt": request.prompt, "echo": request.echo,
            "instructions": request.instructions}})
        if answer is None or not isinstance(answer.get("value"), str):
            return None
        from .prompts import SecretAnswer
        return SecretAnswer(answer["value"], bool(answer.get("remember")))

    def confirm_host_key(self, cluster: str, identity: ServerIdentity) -> bool:
        answer = self._ask({"ask": "host_key", "cluster": cluster, "host": identity.host, "port": identity.port,
                            "key_type": identity.key.get_name(), "key": identity.key.get_base64(),
                            "authority": identity.authority})
        return bool(answer and answer.get("trust") is True)

    def hang_up(self) -> None:
        """The starter is gone from now on: stdin and stdout are closed (and stdout points nowhere)."""
        with self._lock:
            answers, questions, self._answers, self._questions = self._answers, self._questions, None, None
        for stream in (answers, questions):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        sys.stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 (kept for the process's life)


def _answer(message: dict[str, Any], prompter: Prompter) -> dict[str, Any]:
    """The starter's answer to one question of the keeper."""
    from .hostkeys import ServerIdentity
    from .prompts import SecretRequest
    from .ssh_lib import paramiko

    if message.get("ask") == "secret":
        fields = message.get("request") or {}
        request = SecretRequest(str(fields.get("cluster", "")), str(fields.get("kind", "prompt")),
                                str(fields.get("prompt", "")), bool(fields.get("echo")),
                                str(fields.get("instructions", "")))
        answer = prompter.ask_secret(request)
        return {"declined": True} if answer is None else {"value": answer.value, "remember": answer.remember}
    if message.get("ask") == "host_key":
        key = paramiko.PKey.from_type_string(str(message["key_type"]), base64.b64decode(str(message["key"])))
        identity = ServerIdentity(str(message["host"]), int(message["port"]), key,
                                  authority=str(message.get("authority") or ""))
        return {"trust": bool(prompter.confirm_host_key(str(message["cluster"]), identity))}
    return {}


_FAILURES = ("AuthenticationFailed", "LoginCancelled", "ConfigError", "NotFound", "InvalidInput")


def _failure(fields: dict[str, Any]) -> EnvDeskError:
    """The keeper's failure as the error a command's own login would have raised (others: ConnectionFailed)."""
    name = str(fields.get("kind", ""))
    cls = getattr(errors, name) if name in _FAILURES else ConnectionFailed
    return cls(str(fields.get("error", "The background connection failed.")), str(fields.get("hint", "")))


def connect(paths: AppPaths, profile: ClusterProfile, prompter: Prompter,
            idle_minutes: float = DEFAULT_IDLE_MINUTES) -> tuple[KeptRecord, bool]:
    """The cluster's kept connection, and whether it was started now: a live one made for these login settings is
    kept as it is; one made for others is ended first (the commands running through it go on to their end)."""
    record = read_record(paths, profile.name)
    if record is not None:
        if record.profile == KeptRecord.profile_digest(profile):
            try:
                dial(record).close()
                return record, False
            except ConnectionFailed:
                forget(paths, profile.name, pid=record.pid)
        else:
            stop(paths, profile.name)
    return start(paths, profile.name, prompter, idle_minutes)


def start(paths: AppPaths, cluster: str, prompter: Prompter,
          idle_minutes: float = DEFAULT_IDLE_MINUTES) -> tuple[KeptRecord, bool]:
    """Start a keeper for `cluster` and answer its login's questions with `prompter`; return its record once it
    is logged in, and whether it is the one started here (False: another, started meanwhile, serves; this one
    ended), or raise what stopped it (the same errors a command's own login raises)."""
    from .fileio import private_folder

    log_path = record_path(paths, cluster).with_suffix(".log")
    private_folder(log_path.parent)
    nonce = secrets.token_hex(8)
    detached: dict[str, Any] = {"start_new_session": True} if os.name == "posix" else {"creationflags": (
        getattr(subprocess, "DETACHED_PROCESS", 0) | getattr(subprocess, "CREATE_NEW_PROCESS_GROUP", 0))}
    with open(os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600), "ab") as log_file:
        child = subprocess.Popen(  # noqa: S603 (our own interpreter and module, no shell)
            [sys.executable, "-m", "envdesk.backend.keeper", os.path.abspath(paths.config_dir), cluster,
             str(idle_minutes), nonce],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log_file, text=True, encoding="utf-8",
            # in its own folder, and PYTHONSAFEPATH (3.11+): `-m` puts the working folder first on the path, and a
            # folder holding an envdesk/ package would be run in its place, and told the secrets typed
            cwd=log_path.parent, env={**os.environ, "PYTHONSAFEPATH": "1"}, close_fds=True, **detached)
    assert child.stdin is not None and child.stdout is not None
    try:
        for line in child.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "ready" in message:
                record = read_record(paths, cluster)
                if record is None:
                    break
                return record, record.nonce == nonce
            if "failed" in message:
                raise _failure(message["failed"])
            child.stdin.write(json.dumps(_answer(message, prompter)) + "\n")
            child.stdin.flush()
    except BaseException:
        with contextlib.suppress(OSError):
            child.kill()
        raise
    finally:
        for stream in (child.stdin, child.stdout):
            with contextlib.suppress(OSError):
                stream.close()
    with contextlib.suppress(OSError):
        child.kill()
    raise ConnectionFailed(f"The background connection to {cluster} ended before it was ready.",
                           f"Its log may say why: {log_path}")


def stop(paths: AppPaths, cluster: str) -> int | None:
    """End the keeper of `cluster` as OpenSSH's `ssh -O stop` does: no new command goes through it from now on,
    and it ends once the commands running through it have ended. The number of those; None when there was none
    live (its record is removed). ConnectionFailed when one is there but does not answer, or goes on serving."""
    record = read_record(paths, cluster)
    if record is None:
        return None
    try:
        transport = dial(record)
    except KeeperGone:
        forget(paths, cluster, pid=record.pid)
        return None
    except ConnectionFailed as exc:
        raise ConnectionFailed(f"The kept connection to {cluster} does not answer.",
                               f"Its process is {record.pid} on this computer: end it there if need be.") from exc
    running = b""
    try:
        running = read_to_end(transport.open_channel(STOP_CHANNEL, timeout=_DIAL_TIMEOUT), _DIAL_TIMEOUT, limit=32)
    except Exception:  # it may hang up at once, as asked
        pass
    finally:
        transport.close()
    deadline = time.monotonic() + _STOP_WAIT
    while time.monotonic() < deadline:
        try:
            dial(record).close()
        except KeeperGone:
            forget(paths, cluster, pid=record.pid)
            return int(running) if running.isdigit() else 0
        except ConnectionFailed:
            pass
        time.sleep(0.1)
    raise ConnectionFailed(f"The kept connection to {cluster} did not end when asked.",
                           f"Its process is {record.pid} on this computer: end it there if need be.")
