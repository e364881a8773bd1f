"""Noticing a connection that stopped answering without closing (a stuck VPN or NAT, a laptop that woke up on
another network): OpenSSH's ServerAliveInterval and ServerAliveCountMax, for each hop of a connection.

TCP says nothing when the path between two computers stops passing data: both ends keep their sockets open, a
command's output simply stops coming, and a command waits for it for ever (T19: sixteen minutes at 'Building
slowpkg'). paramiko's own keepalive (Transport.set_keepalive) sends packets that want no reply, so it never
learns anything. As ssh does (ssh_config(5)), once nothing has come from the server for ServerAliveInterval
seconds, a Watch asks it for a reply (keepalive@openssh.com, see LoginTransport.probe), and again every interval
while nothing comes; when ServerAliveCountMax questions in a row went unanswered and nothing came for another
interval, the server has stopped answering and the connection is given up (`on_silent`). Anything that comes
counts as an answer (a command's output, a window adjust): a busy connection is never asked.

The Watch only looks at the clock: the questions are sent from a thread of their own, since a send may wait (for
a key exchange in progress, or for room in a socket nobody reads any more), and a send still waiting is itself
no answer. paramiko's completion_event is never touched (see LoginTransport).
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .ssh_transport import LoginTransport

log = logging.getLogger(__name__)

DEFAULT_INTERVAL = 15
"""Seconds of silence before the server is asked, where the SSH configuration does not say: OpenSSH asks never by
default, but a person watching a terminal can press Ctrl-C, and EnvDesk's window cannot tell that person that a
command is stuck unless it notices. With DEFAULT_COUNT_MAX, a stuck connection is given up after a minute."""
DEFAULT_COUNT_MAX = 3  # OpenSSH's default
STOP_CHECK = 5.0
"""Seconds a question may take to be answered when a person is waiting (a Cancel, a Ctrl-C): a connection that
stays silent that long is taken as stuck, and the person is not made to wait for ServerAliveCountMax rounds."""


class Watch:
    """Watches one hop's transport (see the module): `heard()` is when something last came from its server."""

    def __init__(self, transport: LoginTransport, heard: Callable[[], float], interval: float, count_max: int,
                 on_silent: Callable[[float], None], name: str) -> None:
        self.transport = transport
        self.heard = heard
        self.interval = interval
        self.count_max = count_max
        self.on_silent = on_silent
        self.name = name
        self.stopped = threading.Event()
        self._sender: threading.Thread | None = None
        self._asked_since = 0.0  # the `heard` the questions counted in _asked were sent after
        self._asked = 0
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"alive {name}")

    def start(self) -> Watch:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopped.set()

    def ask(self) -> None:
        """Send a question, on a thread of its own; none while the last one is still being sent."""
        if self._sender is not None and self._sender.is_alive():
            return
        self._sender = threading.Thread(target=self._send, daemon=True, name=f"ask {self.name}")
        self._sender.start()

    def _send(self) -> None:
        try:
            self.transport.probe()
        except Exception as exc:  # a connection closing meanwhile: its end is noticed by whoever uses it
            log.debug("could not ask %s whether it answers: %s", self.name, exc)

    def _run(self) -> None:
        while not self.stopped.is_set() and self.transport.is_active():
            heard = self.heard()
            silent = time.monotonic() - heard
            due = int(silent // self.interval)  # questions owed since it was last heard: one per interval
            if heard != self._asked_since:
                self._asked_since, self._asked = heard, 0
            if due > self.count_max:  # ServerAliveCountMax unanswered, and another interval without a word
                log.warning("%s stopped answering: nothing for %.0f seconds", self.name, silent)
                self.stopped.set()
                self.on_silent(silent)
                return
            if due > self._asked:
                self._asked = due
                self.ask()
            self.stopped.wait(min(1.0, max(0.05, self.interval * (due + 1) - silent)))


def answers(transport: LoginTransport, heard: Callable[[], float], wait: float = STOP_CHECK,
            watch: Watch | None = None) -> bool:
    """Whether the server still answers, when a person waits on it (a stop): something comes within `wait` seconds
    of a question sent now (on the `watch`'s thread, if there is one). Always asked, even of a server heard a moment
    ago: a path gets stuck between two packets (T19's build printed a line, then the path held everything)."""
    if not transport.is_active():
        return False
    asked = time.monotonic()
    asker = watch or Watch(transport, heard, wait, 0, lambda silent: None, "stop check")
    asker.ask()
    deadline = asked + wait
    while time.monotonic() < deadline:
        if heard() > asked:
            return True
        if not transport.is_active():
            return False
        time.sleep(0.02)
    return heard() > asked
