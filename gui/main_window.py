"""The main window."""
from __future__ import annotations

from PySide6.QtWidgets import QLabel, QMainWindow


class MainWindow(QMainWindow):
    """EnvDesk's main window: clusters, environments, details and operations."""

    def __init__(self) -> None:
        super().__init__()
        self.setWindowTitle("EnvDesk")
        self.resize(1100, 700)
        placeholder = QLabel("EnvDesk")
        self.setCentralWidget(placeholder)
