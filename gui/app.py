"""Starting the desktop app."""
from __future__ import annotations

import sys

from PySide6.QtWidgets import QApplication

from .main_window import MainWindow
from .resources import icon


def run_app(argv: list[str] | None = None) -> int:
    """Create the application and its main window, and run until the window closes."""
    app = QApplication.instance() or QApplication(argv if argv is not None else sys.argv)
    app.setApplicationName("EnvDesk")
    app.setOrganizationName("EnvDesk")
    app.setDesktopFileName("envdesk")
    app.setWindowIcon(icon("envdesk"))
    window = MainWindow()
    window.show()
    return app.exec()
