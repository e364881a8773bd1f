"""Starting the desktop app.

What the window needs from outside Qt is loaded here before PySide6: once imported, PySide6 reads the
source of every module imported after it (its import hook looks for `from __feature__ import`), ~25 ms
of the start for the backend, PyYAML and json.
"""
from __future__ import annotations

import gc
import html  # noqa: F401  (loaded before PySide6, as the backend modules below: see above)
import sys

from envdesk.backend import cache, config, prompts, sizes  # noqa: F401
from envdesk.backend.paths import AppPaths

from PySide6.QtWidgets import QApplication

from .main_window import MainWindow
from .resources import icon


def run_app(argv: list[str] | None = None, *, config_dir: str | None = None) -> int:
    """Create the application and its main window (settings from `config_dir` if given), run until it closes."""
    # What is loaded by now (modules, Qt's types and enumerations) lives as long as the app: the collector
    # need not go through it again and again while the window is built (a few ms of the start).
    gc.freeze()
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("EnvDesk")
    app.setOrganizationName("EnvDesk")
    app.setDesktopFileName("envdesk")
    app.setWindowIcon(icon("envdesk"))
    window = MainWindow(AppPaths.resolve(config_dir))
    window.show()
    return app.exec()
