"""A cluster's TCP connection opened, and SSH's greeting sent, while a command line still loads.

`envdesk env list CLUSTER` spends its first fifth of a second loading Python code (paramiko the bulk of it)
while the network sits idle; its login then waits for the TCP handshake, the server's start and the servers'
greeting (SSH-2.0-...) before the key exchange can begin. So the command line dials the cluster's first hop
at once (start()), from a note of where the last connection to that cluster went first and of the greeting
it sent; the connect that follows takes that socket (claim()) only if its own plan, with ssh_config honoured,
goes to that same host and port, and has paramiko send the same greeting (SSHRunner._handshake). A stale note
costs a TCP connection opened and closed unused. Nothing here imports paramiko.

Once paramiko is loaded, the key exchange can begin on that connection too, before the command line has read
the cluster's settings (begin_session(), see ssh_runner.begin_key_exchanges); the connect that claims the connection
then takes over the session begun on it (take_begun()).
"""
from __future__ import annotations

import json
import logging
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

log = logging.getLogger(__name__)

NOTES_FILE = "first-hops.json"
DIAL_TIMEOUT = 20.0  # as ssh_runner.CONNECT_TIMEOUT
_MAX_GREETING = 255  # RFC 4253 4.2: the line, without its CR LF

_dials: dict[tuple[str, int], Predial] = {}
_dials_lock = threading.Lock()


def no_delay(sock: socket.socket) -> None:
    """Send each SSH packet at once (TCP_NODELAY, as OpenSSH does): otherwise the kernel holds a small packet
    that follows another one until the first is acknowledged, which the peer may delay by 40 ms or more."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError:  # not TCP after all (a test's socket pair): nothing to hold back
        pass


@dataclass(frozen=True)
class KeyLookup:
    """How a hop's host key is looked up, as its SSH configuration says: its HostKeyAlias and the known_hosts files
    of its UserKnownHostsFile and GlobalKnownHostsFile (None: not set). A key exchange begun early asks first for
    the key types known under these, as the connect does; otherwise the connect begins it anew."""

    key_alias: str | None = None
    user_files: tuple[str, ...] | None = None
    global_files: tuple[str, ...] | None = None

    def as_note(self) -> dict[str, object]:
        return {name: list(value) if isinstance(value, tuple) else value
                for name, value in (("key_alias", self.key_alias), ("user_files", self.user_files),
                                    ("global_files", self.global_files)) if value is not None}

    @staticmethod
    def from_note(found: object) -> KeyLookup | None:
        """The lookup a note records; None for anything that is not one."""
        if not isinstance(found, dict) or not set(found) <= {"key_alias", "user_files", "global_files"}:
            return None
        alias = found.get("key_alias")
        files = [found.get("user_files"), found.get("global_files")]
        if not (alias is None or isinstance(alias, str) and alias) or not all(
                value is None or isinstance(value, list) and all(isinstance(name, str) for name in value)
                for value in files):
            return None
        user, system = (None if value is None else tuple(value) for value in files)
        return KeyLookup(alias, user, system)


class Begun(Protocol):
    """What was begun on a connection dialled early (an SSH session, see Predial.begin_session)."""

    def close(self) -> None:
        """Give it up, and the connection under it."""


def _valid_greeting(text: object) -> bool:
    return (isinstance(text, str) and text.startswith("SSH-2.0-") and len(text) <= _MAX_GREETING
            and text.isascii() and text.isprintable())


class Predial:
    """One TCP connection opened on a thread of its own, the greeting sent as soon as it is open."""

    def __init__(self, host: str, port: int, greeting: str, lookup: KeyLookup | None = None) -> None:
        self.host = host
        self.port = port
        self.greeting = greeting
        self.lookup = lookup or KeyLookup()
        """How the hop's host key was looked up last time, for the key exchange begun early (begin_session)."""
        self._sock: socket.socket | None = None
        self._error: OSError | None = None
        self._dropped = False
        self._given_up = False  # reached, but what was begun on it failed: the connect dials anew
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._finished = False  # dialled (or failed): _sock is final
        self._action: Callable[[socket.socket], Begun] | None = None  # to run once dialled (see begin_session)
        self._begin_lock = threading.Lock()  # begin_session, take_begun and drop: one at a time
        self._claimed = False  # taken or dropped: nothing more is begun on it
        self._begun: Begun | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"dial {host}")

    def _run(self) -> None:
        sock: socket.socket | None = None
        try:
            sock = socket.create_connection((self.host, self.port), timeout=DIAL_TIMEOUT)
            sock.settimeout(None)
            no_delay(sock)
            sock.sendall(self.greeting.encode("ascii") + b"\r\n")
        except OSError as exc:
            if sock is not None:
                sock.close()
            sock, self._error = None, exc
        with self._lock:
            if self._dropped and sock is not None:
                sock.close()
            else:
                self._sock = sock
            self._finished = True
            action, self._action = self._action, None
        if action is not None:
            self._begin_now(action)
        self._done.set()

    def begin(self) -> None:
        """Start dialling."""
        self._thread.start()

    def opened(self, check: Callable[[], None]) -> socket.socket | None:
        """The open socket, its greeting sent, once the dial is done; the dial's OSError if it failed; None if the
        server was reached but what was begun on the connection failed (see begin_session): dial anew.
        `check` is called every 0.05 s meanwhile and may raise to abandon the wait (then call drop())."""
        while not self._done.wait(0.05):
            check()
        if self._sock is None:
            if self._given_up:
                return None
            raise self._error or OSError(f"could not connect to {self.host}")
        return self._sock

    def begin_session(self, action: Callable[[socket.socket], Begun]) -> None:
        """Have `action` begin the SSH session on the connection once it is open and greeted: at once if it is,
        else on the dialling thread (before opened() returns), unless it was claimed or dropped first. What it
        begins goes to whoever claims the connection (take_begun)."""
        with self._lock:
            if not self._finished:
                self._action = action
                return
        self._begin_now(action)

    def _begin_now(self, action: Callable[[socket.socket], Begun]) -> None:
        with self._begin_lock:
            with self._lock:
                sock = self._sock  # None: dropped, or the dial failed
            if self._claimed or self._begun is not None or sock is None:
                return
            try:
                self._begun = action(sock)
            except Exception as exc:  # the connection is in an unknown state: the connect dials anew
                log.info("could not begin the SSH session with %s early: %s", self.host, exc)
                self._given_up = True
                self._discard()

    def _discard(self) -> None:
        with _dials_lock:
            if _dials.get((self.host, self.port)) is self:
                del _dials[(self.host, self.port)]
        with self._lock:
            self._dropped = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    def take_begun(self) -> Begun | None:
        """What begin_session() began on the connection, for the caller that claimed it (None: nothing); nothing is
        begun on it afterwards."""
        with self._begin_lock:
            self._claimed = True
            begun, self._begun = self._begun, None
        return begun

    def drop(self) -> None:
        """Close the connection unused (now, or as soon as it opens), with what was begun on it."""
        with self._lock:
            self._dropped = True
            sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()
        begun = self.take_begun()
        if begun is not None:
            begun.close()


def _notes(folder: Path) -> dict[str, list]:
    try:
        data = json.loads((folder / NOTES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def start(folder: Path, name: str) -> None:
    """Dial the first hop noted for the cluster `name` in `folder` (if any), on a thread of its own."""
    found = _notes(folder).get(name)
    if not (isinstance(found, list) and len(found) in (3, 4)):
        return
    host, port, greeting = found[:3]
    lookup = KeyLookup.from_note(found[3]) if len(found) == 4 else KeyLookup()
    if not (isinstance(host, str) and host and isinstance(port, int) and 0 < port < 65536
            and _valid_greeting(greeting)) or lookup is None:
        return
    dial = Predial(host, port, greeting, lookup)
    with _dials_lock:
        if (host, port) in _dials:
            return
        _dials[(host, port)] = dial
    dial.begin()


def dialling() -> list[Predial]:
    """The connections dialled early and not claimed yet (a command line dials one at most)."""
    with _dials_lock:
        return list(_dials.values())


def claim(host: str, port: int) -> Predial | None:
    """The connection dialled early to exactly `host`:`port`, for one caller only (None if there is none).

    A command line dials one cluster early, and connects to it first: the first claim decides, so any other
    connection dialled early (from a stale note) is closed unused."""
    with _dials_lock:
        found = _dials.pop((host, port), None)
        others = list(_dials.values())
        _dials.clear()
    for other in others:
        other.drop()
    return found


def note(folder: Path, name: str, host: str, port: int, greeting: str, lookup: KeyLookup | None = None) -> None:
    """Remember, for the next start(), where the cluster `name`'s connection went first, the greeting it sent and
    how that hop's host key is looked up; the file is written only when that changed. A note that cannot be
    written is only a lost hint."""
    if not _valid_greeting(greeting):
        return
    notes = _notes(folder)
    settings = (lookup or KeyLookup()).as_note()
    entry: list[object] = [host, port, greeting, settings] if settings else [host, port, greeting]
    if notes.get(name) == entry:
        return
    notes[name] = entry
    from .errors import EnvDeskError
    from .fileio import write_atomically
    try:
        write_atomically(folder / NOTES_FILE, json.dumps(notes, indent=1))
    except (OSError, EnvDeskError) as exc:
        log.info("could not note where %s's connection goes: %s", name, exc)
