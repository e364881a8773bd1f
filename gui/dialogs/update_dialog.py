"""Update packages: add (checked as you type), remove, upgrade. A snapshot is saved first."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QDialog, QDialogButtonBox, QLabel, QLineEdit,
                               QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from envdesk.backend import validate
from envdesk.backend.inventory import Environment

from ..column_fit import ColumnFitter
from ..details_panel import PACKAGE_WEIGHTS
from ..failing_line import select_failing
from ..tasks import Task
from .common import check, error_label, split_specs

REMOVE, UPGRADE = 2, 3


class UpdateDialog(QDialog):
    """One change to one environment. Opened with a `draft` (what was chosen in it before, see `draft`), it holds
    that again: a change that failed is edited, not chosen anew."""

    def __init__(self, controller, target: str, env: Environment, parent: QWidget | None = None,
                 draft: dict[str, Any] | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.target = target
        self.env = env
        self.setWindowTitle(f"Update packages of {env.name}")
        self.setAccessibleName("Update packages")
        self.setMinimumSize(560, 480)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Add packages (separate with spaces), e.g. <tt>numpy pandas>=2</tt>:"))
        self.add = QLineEdit()
        self.add.setAccessibleName("Packages to add")
        layout.addWidget(self.add)
        self.add_error = error_label()
        layout.addWidget(self.add_error)
        self.table = QTableWidget(len(env.packages), 4)
        self.table.setAccessibleName("Installed packages")
        self.table.setHorizontalHeaderLabels(["Package", "Version", "Remove", "Upgrade"])
        self.table.verticalHeader().hide()
        # names and versions share the width, as in the Packages tab (a site's build, 1.26.4+computecanada, read
        # "1.26.4+com…" in a column of Qt's default width)
        self.columns = ColumnFitter(self.table, lambda: {0, 1}, grow=lambda: 0, weights=lambda: PACKAGE_WEIGHTS)
        # names and versions are what is installed, not fields to type into: typing jumps to a package (a user
        # trial typed over a name, and Remove then removed the package typed)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        for row, package in enumerate(env.packages):
            for column, text in ((0, package.name), (1, package.version)):
                cell = QTableWidgetItem(text)
                cell.setFlags(Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemIsEnabled)
                self.table.setItem(row, column, cell)
            for column in (REMOVE, UPGRADE):
                box = QTableWidgetItem()
                box.setFlags(Qt.ItemFlag.ItemIsUserCheckable | Qt.ItemFlag.ItemIsEnabled)
                box.setCheckState(Qt.CheckState.Unchecked)
                self.table.setItem(row, column, box)
        self.table.itemChanged.connect(lambda _: self._validate())
        layout.addWidget(self.table)
        self.upgrade_all = QCheckBox("Upgrade everything to the newest versions its package index has")
        self.upgrade_all.setAccessibleName("Upgrade everything")
        self.upgrade_all.toggled.connect(lambda _: self._validate())
        layout.addWidget(self.upgrade_all)
        note = QLabel("EnvDesk saves a snapshot of the current packages first. If the change fails, it goes back "
                      "automatically; you can also go back later from the Snapshots tab.")
        note.setWordWrap(True)
        layout.addWidget(note)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel)
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setText("Apply")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.add.textChanged.connect(self._validate)
        self._choose(draft or {})
        self._validate()

    def _choose(self, draft: dict[str, Any]) -> None:
        """What `draft` chose: its packages to add, and the boxes of the packages it named that are still here."""
        self.add.setText(draft.get("add", ""))
        for column, key in ((REMOVE, "remove"), (UPGRADE, "upgrade")):
            for row in range(self.table.rowCount()):
                if self.table.item(row, 0).text() in draft.get(key, ()):
                    self.table.item(row, column).setCheckState(Qt.CheckState.Checked)
        self.upgrade_all.setChecked(bool(draft.get("upgrade_all")))
        select_failing(self.add, draft.get("failure", ""))  # what the change failed on (see failing_line)

    def draft(self) -> dict[str, Any]:
        """What was typed and chosen, as typed (a new dialog opened with it holds the same)."""
        return dict(add=self.add.text(), remove=self._checked(REMOVE), upgrade=self._checked(UPGRADE),
                    upgrade_all=self.upgrade_all.isChecked())

    def _checked(self, column: int) -> list[str]:
        """The installed packages whose box in `column` is ticked (by the environment's own list, not a cell)."""
        return [self.env.packages[row].name for row in range(self.table.rowCount())
                if self.table.item(row, column).checkState() == Qt.CheckState.Checked]

    def change(self) -> dict[str, Any]:
        """The change, as the controller's `update` takes it."""
        return dict(add=split_specs(self.add.text()), remove=self._checked(REMOVE), upgrade=self._checked(UPGRADE),
                    upgrade_all=self.upgrade_all.isChecked())

    def _validate(self) -> None:
        valid = check(self.add_error, lambda: [validate.package_spec(s) for s in split_specs(self.add.text())])
        something = any(self.change().values())
        self.buttons.button(QDialogButtonBox.StandardButton.Ok).setEnabled(valid and something)

    def start(self) -> Task:
        return self.controller.update(self.target, self.env, **self.change())
