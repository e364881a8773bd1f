"""The user's Jupyter kernels on one cluster: which environment each runs, whether that is still there, and
Remove for those EnvDesk made."""
from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QPushButton, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWidget)

from ..controller import Kernel
from ..tasks import while_alive


class KernelsDialog(QDialog):
    """Lists the kernels in the background when it opens; Remove runs as a normal operation, then lists again."""

    COLUMNS = ("Kernel", "Shown in Jupyter as", "Environment", "")

    def __init__(self, controller, target: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.target = target
        self.kernels_shown: list[Kernel] = []
        self.setWindowTitle(f"Jupyter kernels on {controller.label(target)}")
        self.setAccessibleName("Jupyter kernels")
        self.setMinimumSize(720, 360)
        layout = QVBoxLayout(self)
        self.status = QLabel(f"Reading the kernels on {controller.label(target)}…")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setAccessibleName("Jupyter kernels")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        layout.addWidget(self.table, 1)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        self.refresh()

    def refresh(self) -> None:
        """List the kernels again (in the background)."""
        self.controller.kernels(self.target, self.show_kernels, while_alive(
            lambda error: self.status.setText(f"The kernels could not be read: {error}"), self))

    def show_kernels(self, kernels: list[Kernel]) -> None:
        self.kernels_shown = list(kernels)
        self.status.setText(f"{len(kernels)} kernel(s) in your Jupyter folder. Jupyter (Open OnDemand, JupyterHub) "
                            "offers them in new notebooks." if kernels else "You have no Jupyter kernels there yet: "
                            "Environment ▸ Make a Jupyter kernel makes one.")
        self.table.setRowCount(len(kernels))
        for row, kernel in enumerate(kernels):
            where = kernel.env_path or "not an environment EnvDesk can tell"
            if kernel.env_exists is False:
                where += " (gone: this kernel no longer starts)"
            elif kernel.has_ipykernel is False:
                where += " (no ipykernel in it: this kernel does not start)"
            for column, text in enumerate((kernel.name, kernel.display_name, where)):
                self.table.setItem(row, column, QTableWidgetItem(text))
            if kernel.made_by_envdesk:
                button = QPushButton("Remove")
                button.setToolTip("Remove this kernel from Jupyter (the environment stays)")
                button.setAccessibleName(f"Remove {kernel.name}")
                button.clicked.connect(lambda _=False, name=kernel.name: self._remove(name))
                self.table.setCellWidget(row, 3, button)
            else:
                self.table.setItem(row, 3, QTableWidgetItem("made by another tool"))
        self.table.resizeColumnsToContents()

    def _remove(self, name: str) -> None:
        self.controller.remove_kernel(self.target, name, while_alive(lambda _: self.refresh(), self))
