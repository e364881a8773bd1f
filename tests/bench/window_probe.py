"""Run in a fresh process by window_startup.py and memory.py: open a window, say when it first painted.

    python window_probe.py envdesk CONFIG_DIR [SETTLE_SECONDS]   the app itself, through `envdesk`'s own entry
                                                                 point (envdesk.launch.main), as the console
                                                                 script starts it
    python window_probe.py empty - [SETTLE_SECONDS]              the baseline: import QtWidgets, make a
                                                                 QApplication, show an empty QMainWindow

"Ready" is the first paint of the window's content: for EnvDesk, the environment table's first paint with
rows in it (the cached inventory shown), for the baseline the empty window's first paint. Then events go on
for SETTLE_SECONDS (the app's background refreshes run meanwhile), and one JSON line is printed:
{"ready": epoch seconds at ready, "cpu": CPU seconds the process had used by then, "rows": rows shown,
"peak_rss_mb": ..., "rss_mb": ...}. The process ends
there with os._exit, so tearing down is not measured.

The probe costs both sides the same: one Python function in place of the paintEvent of the class whose paint
is awaited (QTableView for EnvDesk, whose table viewport's paints reach it; QMainWindow for the baseline).
It asks Qt for nothing else. An application-wide event filter, as this probe had before, charged EnvDesk
alone: PySide makes a Python type, enumerations and all, for every kind of object it hands such a filter,
and for an object of a private Qt class (a rich-text label's text control) it makes every type of QtCore,
QtGui and QtWidgets, ~40 ms, which an empty window never pays. Asking a table for its viewport() costs
~10 ms the same way (a plain QWidget made in C++ sends PySide through every widget type).
"""
from __future__ import annotations

import json
import os
import resource
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
GIVE_UP_MS = 120_000


def memory_mb() -> tuple[float, float]:
    """(peak, current) resident memory of this process in MB (Linux: ru_maxrss is in KiB)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with open("/proc/self/status", encoding="ascii") as status:
        current = next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")) / 1024
    return peak, current


def main() -> None:
    mode, config_dir = sys.argv[1], sys.argv[2]
    settle = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    if mode == "envdesk":  # what `envdesk`'s main loads before it opens the window, in its order (the order
        import envdesk.launch  # noqa: F401               changes the cost: see gui/app.py); the command line's
        import envdesk.display  # noqa: F401              parser (envdesk.cli) is not loaded for the app's options
        import envdesk.gui.app  # noqa: F401
    from PySide6.QtCore import QTimer
    from PySide6.QtGui import QPaintEvent
    from PySide6.QtWidgets import QApplication, QMainWindow, QTableView

    watched = QMainWindow if mode == "empty" else QTableView
    paint = watched.paintEvent
    seen = {"ready": 0.0, "cpu": 0.0, "rows": 0}
    shown: dict = {}  # the window whose table was awaited

    def report() -> None:
        peak, current = memory_mb()
        model = getattr(QApplication.activeWindow() or shown.get("window"), "env_model", None)
        final = {"rows_at_end": model.rowCount()} if model is not None else {}
        print(json.dumps({**seen, **final, "peak_rss_mb": peak, "rss_mb": current}), flush=True)
        os._exit(0)

    def shows_content(widget) -> bool:
        if mode == "empty":
            return True
        window = widget.window()
        model = getattr(window, "env_model", None)
        if getattr(window, "env_table", None) is not widget or model is None:
            return False
        seen["rows"] = model.rowCount()
        shown["window"] = window
        return seen["rows"] > 0

    def paint_and_watch(widget, event: QPaintEvent) -> None:
        paint(widget, event)
        if not seen["ready"] and shows_content(widget):
            seen["ready"] = time.time()
            usage = resource.getrusage(resource.RUSAGE_SELF)
            seen["cpu"] = usage.ru_utime + usage.ru_stime
            watched.paintEvent = paint  # seen: the class paints as always from now on
            QTimer.singleShot(int(settle * 1000), report)

    watched.paintEvent = paint_and_watch
    app = QApplication.instance() or QApplication([sys.argv[0]])
    QTimer.singleShot(GIVE_UP_MS, lambda: (print("never showed what was awaited", flush=True), os._exit(3)))
    if mode == "empty":
        window = QMainWindow()
        window.show()
        app.exec()
    else:
        sys.argv = ["envdesk", "--config-dir", config_dir]
        from envdesk.launch import main as envdesk_main
        envdesk_main(sys.argv[1:])
    sys.exit("the window closed before it showed what was awaited")


if __name__ == "__main__":
    main()
