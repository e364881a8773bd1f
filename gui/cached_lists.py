"""The last known lists, read from the disk cache on a thread of their own.

A large cache (ten clusters of 500 environments) takes seconds to read; on the GUI thread it would hold
the window back that long, so the window opens at once and each list arrives by signal, the one shown first.

While it reads, the GUI thread gets the interpreter back quickly: each call Qt makes into Python (a model's
data(), an event filter) waits for the reading thread to hand over the GIL, which by default it does every
5 ms, so painting a table of a few hundred cells would take seconds.
"""
from __future__ import annotations

import sys
import threading
from typing import Sequence

from PySide6.QtCore import QObject, Signal

from envdesk.backend.cache import InventoryCache

SWITCH_INTERVAL = 0.0002  # seconds the reading thread may hold the GIL while the GUI thread waits for it


class CachedListLoader(QObject):
    """Reads cached inventories one target at a time, off the GUI thread, in the order asked; `loaded` brings
    each on the GUI thread (None when a target has nothing readable cached). Made `paused`, it reads nothing
    until `resume` (the window's first paint: reading would slow down building it)."""

    loaded = Signal(str, object)  # target name, its cached Inventory or None

    def __init__(self, cache: InventoryCache, parent: QObject | None = None, *, paused: bool = False) -> None:
        super().__init__(parent)
        self.cache = cache
        self.paused = paused
        self.queue: list[str] = []
        self.reader: threading.Thread | None = None
        self._lock = threading.Lock()

    def load(self, names: Sequence[str], *, first: bool = False) -> None:
        """Read these targets' cached lists after those asked before (`first`: before them), in this order."""
        with self._lock:
            wanted = list(dict.fromkeys(names))
            if first:
                self.queue = wanted + [name for name in self.queue if name not in wanted]
            else:
                self.queue += [name for name in wanted if name not in self.queue]
        self._begin()

    def resume(self) -> None:
        """Begin reading what was asked (a no-op unless paused)."""
        self.paused = False
        self._begin()

    def _begin(self) -> None:
        with self._lock:
            if self.queue and self.reader is None and not self.paused:
                self.reader = threading.Thread(target=self._read, name="envdesk-cached-lists", daemon=True)
                self.reader.start()

    def _read(self) -> None:  # the reading thread
        usual = sys.getswitchinterval()
        sys.setswitchinterval(min(usual, SWITCH_INTERVAL))
        try:
            while True:
                with self._lock:
                    if not self.queue:
                        self.reader = None
                        return
                    name = self.queue.pop(0)
                loaded = self.cache.load(name)
                try:
                    self.loaded.emit(name, loaded[0] if loaded else None)
                except RuntimeError:  # the window is gone
                    return
        finally:
            sys.setswitchinterval(usual)
