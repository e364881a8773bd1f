"""The bundle's smoke test hook: once the window shows "This computer", print what it shows and close it.

Only armed when ENVDESK_SMOKE_TEST is set (by tests/test_bundle.py). It makes the QApplication
that `run_app` then reuses, and polls the real window from a timer on the GUI thread; the test
reads the printed lines and the exit status. ENVDESK_SMOKE_EXPECT=a,b makes it wait for those
names too (environments, say); ENVDESK_SMOKE_SCREENSHOT=PATH saves the window as a PNG, to look
at what a person would see.
"""
from __future__ import annotations

import os
import sys
import traceback

MARKER = "ENVDESK-SMOKE"
WANTED = "This computer"
EXPECT = "ENVDESK_SMOKE_EXPECT"  # more names to wait for, comma-separated (environments, say)


def _shown_texts(window) -> list[str]:
    """Every cell of the window's visible list and table views (top level, each once, lines joined by ' | ')."""
    from PySide6.QtCore import QModelIndex, Qt
    from PySide6.QtWidgets import QAbstractItemView
    texts = []
    top = QModelIndex()
    for view in window.findChildren(QAbstractItemView):
        model = view.model()
        if model is None or not view.isVisible():
            continue
        for row in range(model.rowCount(top)):
            for column in range(model.columnCount(top)):
                value = model.index(row, column, top).data(Qt.ItemDataRole.DisplayRole)
                text = " | ".join(str(value).splitlines()) if value is not None else ""
                if text and text not in texts:
                    texts.append(text)
    return texts


def _busy(window) -> bool:
    """True while the window's controller still runs work (the first listing of "This computer")."""
    runner = getattr(getattr(window, "controller", None), "runner", None)
    return bool(runner.running()) if runner is not None else False


def arm() -> None:
    """Make the application and start the timer that watches its main window."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QMainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    timer = QTimer(app)
    timer.setInterval(100)
    wanted = {WANTED, *filter(None, os.environ.get(EXPECT, "").split(","))}

    def check() -> None:
        try:
            look()
        except Exception:  # a broken hook must fail the smoke test, not leave the app running
            timer.stop()
            traceback.print_exc()
            app.exit(1)

    def look() -> None:
        windows = [w for w in QApplication.topLevelWidgets() if isinstance(w, QMainWindow) and w.isVisible()]
        if not windows:
            return
        window = windows[0]
        texts = _shown_texts(window)
        names = {text.split(" | ")[0] for text in texts}
        if not wanted <= names or _busy(window):
            return
        timer.stop()
        print(f"{MARKER} title: {window.windowTitle()}", flush=True)
        for text in texts:
            print(f"{MARKER} shows: {text}", flush=True)
        screenshot = os.environ.get("ENVDESK_SMOKE_SCREENSHOT")
        if screenshot:
            window.grab().save(screenshot)
        window.close()

    timer.timeout.connect(check)
    timer.start()
