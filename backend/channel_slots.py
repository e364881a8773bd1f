"""How many channels one SSH connection may have open at once, learnt down from the server's refusals."""
from __future__ import annotations

import threading

from .runner import CancelToken

SPARE = 1  # a channel kept free below the count the server took, once it refused one: to stop a command


class ChannelSlots:
    """The channel slots of one connection, shared by its threads: each command and kept program
    holds one while its channel is open (or about to be). A server counts every open session against its
    MaxSessions (OpenSSH's default 10; a cluster may set fewer) and refuses one more; that refusal is not a
    broken connection: the limit comes down below what the server took (keeping SPARE for stopping a
    command) and the refused caller waits, slot in hand, until this connection has fewer open (see refused,
    room_after_refusal).
    """

    def __init__(self, count: int) -> None:
        self.count = count
        self.limit = count
        self._held = 0
        self._waiting = 0  # holders refused by the server, waiting for fewer channels to be open
        self._changed = threading.Condition()

    def acquire(self, blocking: bool = True, timeout: float | None = None, *, leave: int = 0) -> bool:
        """Take a slot, leaving `leave` free for others (a kept program leaves one for commands), waiting for
        one unless `blocking` is false; False when none came."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held + leave < self.limit, timeout if blocking else 0):
                return False
            self._held += 1
            return True

    def release(self) -> None:
        """Give back a slot taken by acquire."""
        with self._changed:
            if self._held == 0:
                raise ValueError("a channel slot was given back twice")
            self._held -= 1
            self._changed.notify_all()

    def refused(self) -> None:
        """The server refused the channel of a caller holding a slot: where other channels of this connection
        are open (not counting callers refused and waiting), the limit comes down below their count, SPARE kept."""
        with self._changed:
            others = self._held - self._waiting - 1
            if others > 0:
                self.limit = max(1, min(self.limit, others - SPARE))

    def new_connection(self) -> None:
        """The connection was made again: the limit learnt from the old one's server goes (the new one may be
        another login node behind the same name, allowing more), to be learnt again from a refusal."""
        with self._changed:
            self.limit = self.count
            self._changed.notify_all()

    def room_after_refusal(self, cancel: CancelToken | None = None, *, wait: bool = True) -> bool:
        """Whether a refused caller (holding a slot) may ask again: once fewer than the limit are open, not counting
        the callers refused and waiting like this one; waits for that unless `wait` is false. Cancelling raises,
        the slot still held."""
        with self._changed:
            self._waiting += 1
            try:
                while self._held - self._waiting >= self.limit:
                    if not wait:
                        return False
                    self._changed.wait(0.2)
                    if cancel is not None and cancel.cancelled:
                        cancel.raise_if_cancelled()
                return True
            finally:
                self._waiting -= 1
                self._changed.notify_all()
