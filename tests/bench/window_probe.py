"""Run in a fresh process by window_startup.py and memory.py: open a window, say when it first painted.

    python window_probe.py envdesk CONFIG_DIR [SETTLE_SECONDS]   the app itself, through `envdesk`'s own entry
                                                                 point (envdesk.launch.main), as the console
                                                                 script starts it
    python window_probe.py empty - [SETTLE_SECONDS]              the baseline: import QtWidgets, make a
                                                                 QApplication, show an empty QMainWindow

"Ready" is the first paint of the window's content: for EnvDesk, the environment table's first paint with
rows in it (the cached inventory shown), for the baseline the empty window's first paint. Then events go on
for SETTLE_SECONDS (the app's background refreshes run meanwhile), and one JSON line is printed:
{"ready": epoch seconds at ready, "rows": rows shown, "peak_rss_mb": ..., "rss_mb": ...}. The process ends
there with os._exit, so tearing down is not measured.
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
    if mode == "envdesk":  # what `envdesk` loads before Qt, loaded before Qt here too (the order changes the cost)
        import envdesk.cli  # noqa: F401
        import envdesk.display  # noqa: F401
        import envdesk.launch  # noqa: F401
    from PySide6.QtCore import QEvent, QObject, QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    class FirstPaint(QObject):
        """Watches every event of the application for the first paint that shows what we wait for."""

        def __init__(self) -> None:
            super().__init__()
            self.ready_at = 0.0
            self.rows = 0

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
            if not self.ready_at and event.type() == QEvent.Type.Paint and self.shows_content(watched):
                self.ready_at = time.time()
                QTimer.singleShot(int(settle * 1000), self.report)
            return False

        def shows_content(self, watched: QObject) -> bool:
            for window in QApplication.topLevelWidgets():
                if mode == "empty" and isinstance(window, QMainWindow):
                    return watched is window
                table, model = getattr(window, "env_table", None), getattr(window, "env_model", None)
                if table is not None and model is not None and watched is table.viewport() and model.rowCount() > 0:
                    self.rows = model.rowCount()
                    return True
            return False

        def report(self) -> None:
            peak, current = memory_mb()
            print(json.dumps({"ready": self.ready_at, "rows": self.rows, "peak_rss_mb": peak, "rss_mb": current}),
                  flush=True)
            os._exit(0)

    # The application object is made here, so the watcher sees its first events; the app's own start-up
    # takes this instance (QApplication.instance()) and does the rest as it always does.
    app = QApplication([sys.argv[0]])
    watcher = FirstPaint()
    app.installEventFilter(watcher)
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
