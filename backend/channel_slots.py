"""How many channels one SSH connection may have open at once, learnt down from the server's refusals."""
from __future__ import annotations

import threading

from .runner import CancelToken

SPARE = 2  # channels kept free below the count the server refused at: one to stop a command, one still closing


class ChannelSlots:
    """The channel slots of one connection, shared by its threads: each command, SFTP session and kept program
    holds one while its channel is open. A server counts every open session against its MaxSessions (OpenSSH's
    default 10; a cluster may set fewer) and refuses one more; that refusal is not a broken connection, so
    the limit comes down to what the server took (less SPARE), and the asker waits for a slot as any other.
    """

    def __init__(self, count: int) -> None:
        self.limit = count
        self._held = 0
        self._changed = threading.Condition()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        """Take a slot, waiting for one unless `blocking` is false; False when none came."""
        with self._changed:
            if not self._changed.wait_for(lambda: self._held < self.limit, timeout if blocking else 0):
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

    def refused(self, cancel: CancelToken | None = None) -> bool:
        """The server refused the channel of a caller holding a slot. False when no other slot is held (nothing
        of this connection's to wait for: the refusal has another cause). Else the limit comes down below the
        count held now and this returns once the caller's slot is within it, others having been given back."""
        with self._changed:
            if self._held <= 1:
                return False
            self.limit = max(1, min(self.limit, self._held - SPARE))
        while True:
            with self._changed:
                if self._changed.wait_for(lambda: self._held <= self.limit, 0.2):
                    return True
            if cancel is not None:
                cancel.raise_if_cancelled()
