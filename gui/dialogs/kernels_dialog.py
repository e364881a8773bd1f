"""The user's Jupyter kernels on one cluster: which environment each runs, whether it can still start, and
Remove (for a kernel another tool made, after asking)."""
from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHeaderView, QLabel, QMessageBox, QPushButton,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from envdesk.backend.validate import LOCAL_TARGET
from envdesk.backend.wording import counted

from ..controller import Kernel
from ..tasks import while_alive


def kernel_state(kernel: Kernel) -> tuple[str, str]:
    """The State column's word for a kernel, and its tooltip saying why."""
    if kernel.error:
        return "Unreadable", kernel.error
    if kernel.env_exists is False:
        return "Environment gone", "The environment this kernel runs is no longer there: the kernel cannot start."
    if kernel.module_gone:
        return "Module gone", (f"The module {kernel.module_gone}, which this kernel loads, is no longer on the "
                               "cluster: the kernel cannot start. Make the environment again with a module there.")
    if kernel.has_ipykernel is False:
        return "No ipykernel", "The environment has no ipykernel, which Jupyter runs: the kernel cannot start."
    if kernel.env_exists and kernel.has_ipykernel and not kernel.modules_checked:
        return "Modules not checked", "The environment and its ipykernel are there; its modules could not be checked."
    if kernel.env_exists and kernel.has_ipykernel:
        return "Ready", "The environment and its ipykernel are there."
    return "Not checked", "EnvDesk cannot tell which environment this kernel runs, or whether it starts."


class KernelsDialog(QDialog):
    """Lists the kernels in the background when it opens; Remove runs as a normal operation, then lists again."""

    COLUMNS = ("Kernel", "Shown in Jupyter as", "Environment", "State", "")
    ENVIRONMENT, STATE, REMOVE = 2, 3, 4

    def __init__(self, controller, target: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.target = target
        self.kernels_shown: list[Kernel] = []
        self.setWindowTitle(f"Jupyter kernels on {controller.label(target)}")
        self.setAccessibleName("Jupyter kernels")
        self.setMinimumSize(860, 360)
        layout = QVBoxLayout(self)
        self.status = QLabel(f"Reading the kernels on {controller.label(target)}…")
        self.status.setWordWrap(True)
        layout.addWidget(self.status)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setAccessibleName("Jupyter kernels")
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideMiddle)  # a long path keeps its start and its name
        self.table.horizontalHeader().setSectionResizeMode(self.ENVIRONMENT, QHeaderView.ResizeMode.Stretch)
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
        where = ("JupyterLab, Notebook, VS Code" if self.target == LOCAL_TARGET
                 else "Open OnDemand, JupyterHub")  # a cluster's portals are not this computer's
        jupyter = f"Jupyter ({where}) offers them in new notebooks."
        self.status.setText(f"{counted(len(kernels), 'kernel')} in your Jupyter folder. {jupyter}" if kernels else
                            "You have no Jupyter kernels there yet: Environment ▸ Make a Jupyter kernel makes one.")
        self.table.setRowCount(len(kernels))
        for row, kernel in enumerate(kernels):
            state, why = kernel_state(kernel)
            where = kernel.env_path or "not an environment EnvDesk can tell"
            for column, (text, tip) in enumerate(((kernel.name, kernel.folder), (kernel.display_name, ""),
                                                  (where, where), (state, why))):
                item = QTableWidgetItem(text)
                item.setToolTip(tip)
                self.table.setItem(row, column, item)
            button = QPushButton("Remove" if kernel.made_by_envdesk else "Remove…")
            button.setToolTip("Remove this kernel from Jupyter (the environment stays)" if kernel.made_by_envdesk
                              else "Another tool made this kernel: EnvDesk asks before removing it")
            button.setAccessibleName(f"Remove {kernel.name}")
            button.clicked.connect(lambda _=False, chosen=kernel: self._remove(chosen))
            self.table.setCellWidget(row, self.REMOVE, button)
        self.table.resizeColumnsToContents()
        self.table.horizontalHeader().setSectionResizeMode(self.ENVIRONMENT, QHeaderView.ResizeMode.Stretch)

    def _remove(self, kernel: Kernel) -> None:
        if not kernel.made_by_envdesk:
            environment = ("Its environment is gone already." if kernel.env_exists is False else
                           "Its environment stays; the tool that made it can make it again."
                           if kernel.env_exists and kernel.env_path else "")  # T12, T23: not said of a kernel whose
            # environment is gone or unknown, or of a system Python's
            box = QMessageBox(QMessageBox.Icon.Question, "Remove a kernel another tool made",
                              f"{kernel.name} (\"{kernel.display_name}\") was not made by EnvDesk. Remove it from "
                              f"Jupyter anyway? {environment}".rstrip(),
                              QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No, self)
            box.setTextFormat(Qt.TextFormat.PlainText)  # the names are another tool's words, never markup
            box.setDefaultButton(QMessageBox.StandardButton.No)
            try:
                answer = box.exec()
            finally:
                box.deleteLater()
            if answer != QMessageBox.StandardButton.Yes:
                return
        self.controller.remove_kernel(self.target, kernel.name, while_alive(lambda _: self.refresh(), self),
                                      force=not kernel.made_by_envdesk)
