"""Starting the desktop app.

The modules the window needs load with the cyclic garbage collector paused, and what they made is then frozen
(gc.freeze): loading makes no garbage worth looking for, and the collector would go through the new objects
(Qt's types and enumerations) some forty times while they load, and again in every full collection after.
"""
from __future__ import annotations

import gc
import sys

_COLLECTING = gc.isenabled()
gc.disable()  # until the window's modules are loaded (see above)

from envdesk.backend.paths import AppPaths  # noqa: E402
# The backend's modules the window needs, loaded before PySide: once PySide is loaded, every import statement
# goes through its import hook (a Python function), ~6 M instructions of the start for these.
from envdesk.backend import cache, errors, inventory, sizes, validate  # noqa: E402,F401

from PySide6.QtWidgets import QApplication  # noqa: E402

from .main_window import MainWindow  # noqa: E402  (with the collector paused: see above)
from .resources import icon  # noqa: E402

gc.freeze()  # what they made lives as long as the app: never looked through again
if _COLLECTING:
    gc.enable()


def run_app(argv: list[str] | None = None, *, config_dir: str | None = None) -> int:
    """Create the application and its main window (settings from `config_dir` if given), run until it closes."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("EnvDesk")
    app.setOrganizationName("EnvDesk")
    app.setDesktopFileName("envdesk")
    app.setWindowIcon(icon("envdesk"))
    window = MainWindow(AppPaths.resolve(config_dir))
    window.show()
    return app.exec()
