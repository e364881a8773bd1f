"""Starting the desktop app."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from envdesk.backend.paths import AppPaths

from .main_window import MainWindow
from .resources import icon


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
