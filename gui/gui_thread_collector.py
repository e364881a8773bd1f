"""Python's cyclic garbage collector, run on the GUI thread only.

The collector runs in whichever thread happens to allocate past its threshold. With backend calls on pool
threads, that is often a worker, and a collection there destroys whatever garbage it finds, Qt objects of the
window included, from the wrong thread: Qt then crashes the process. So automatic collection is turned off and
a timer on the GUI thread collects each generation when its own threshold is passed, as the automatic collector
would have (the way calibre and pyqtgraph keep their collections on the GUI thread).
"""
from __future__ import annotations

import gc
import time

from PySide6.QtCore import QCoreApplication, QObject, QTimer

INTERVAL_MS = 500
FULL_EVERY = 30.0  # seconds

_installed: GuiThreadCollector | None = None


class GuiThreadCollector(QObject):
    """A timer on the GUI thread that does the automatic collector's work there (see the module's text)."""

    def __init__(self, parent: QObject) -> None:
        super().__init__(parent)
        self.thresholds = gc.get_threshold()
        self.last_full = time.monotonic()
        self.timer = QTimer(self)
        self.timer.timeout.connect(self.collect_due)
        self.timer.start(INTERVAL_MS)
        if isinstance(parent, QCoreApplication):
            parent.aboutToQuit.connect(gc.collect)  # the rest, while Qt's objects can still be deleted

    def collect_due(self) -> None:
        """Collect the generations whose count passed their threshold, the youngest first, as Python does; a
        full collection at most every FULL_EVERY seconds, where Python waits for a quarter more long-lived objects
        (a count it keeps to itself): walking a large inventory is a stall of the window."""
        counts = gc.get_count()
        if counts[0] <= self.thresholds[0]:
            return
        generation = 0
        while generation < 2 and counts[generation + 1] > self.thresholds[generation + 1]:
            generation += 1
        if generation == 2:
            now = time.monotonic()
            if now - self.last_full < FULL_EVERY:
                generation = 1
            else:
                self.last_full = now
        gc.collect(generation)


def collect_on_gui_thread() -> GuiThreadCollector | None:
    """Turn automatic collection off and collect from the GUI thread from now on; called on the GUI thread before
    the first worker starts. Once per process: later calls return the same collector (None without a Qt app)."""
    global _installed
    app = QCoreApplication.instance()
    if _installed is None and app is not None:
        _installed = GuiThreadCollector(app)
        gc.disable()
    return _installed
