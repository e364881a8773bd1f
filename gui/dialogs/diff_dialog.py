"""Compare this environment with another one (here or on another cluster), and make the other like this one."""
from __future__ import annotations

from html import escape

from PySide6.QtWidgets import (QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel,
                               QMessageBox, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import Environment

from ..controller import Comparison
from ..tasks import Task, while_alive
from .common import error_label


class DiffDialog(QDialog):
    """Pick the other environment among those already listed (nothing is contacted for the choices); Compare
    reads both fresh in the background and shows each difference; "Make … like this" changes the other one."""

    def __init__(self, controller, target: str, env: Environment, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.target = target
        self.env = env
        self.comparison: Comparison | None = None
        self.comparing: Task | None = None
        self.setWindowTitle(f"Compare {env.name} with…")
        self.setAccessibleName("Compare environments")
        self.setMinimumSize(620, 500)
        layout = QVBoxLayout(self)
        rows, _, labels = controller.all_environments()
        self.choices: dict[str, list[Environment]] = {}
        for name, other in rows:
            if (name, other.path) != (target, env.path):
                self.choices.setdefault(name, []).append(other)
        form = QFormLayout()
        self.targets = QComboBox()
        self.targets.setAccessibleName("Cluster of the other environment")
        for name in self.choices:
            self.targets.addItem(labels.get(name, name), name)
        self.targets.setCurrentIndex(max(0, self.targets.findData(target)))
        self.others = QComboBox()
        self.others.setAccessibleName("The other environment")
        form.addRow("Cluster:", self.targets)
        form.addRow("Environment:", self.others)
        layout.addLayout(form)
        row = QHBoxLayout()
        self.compare_button = QPushButton("Compare")
        self.compare_button.setToolTip("Read both environments now and list how their packages differ")
        self.compare_button.clicked.connect(self.compare)
        row.addWidget(self.compare_button)
        row.addStretch(1)
        layout.addLayout(row)
        self.summary = QLabel("Pick the other environment, then Compare." if self.choices else
                              "No other environment is listed yet: refresh a cluster first.")
        self.summary.setWordWrap(True)
        self.summary.setAccessibleName("Summary of the differences")
        layout.addWidget(self.summary)
        self.error = error_label()
        layout.addWidget(self.error)
        self.table = QTableWidget(0, 3)
        self.table.setAccessibleName("Differences")
        self.table.setHorizontalHeaderLabels(["Package", "Here", "There"])
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        for column in (1, 2):  # wide enough for the environments' names in their headers (a user trial saw them cut)
            self.table.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        layout.addWidget(self.table)
        self.left_alone = QLabel()
        self.left_alone.setWordWrap(True)
        self.left_alone.setAccessibleName("Left alone by Make like")
        layout.addWidget(self.left_alone)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.make_like_button = QPushButton("Make the other like this")
        self.make_like_button.setToolTip("Change the other environment to hold this one's packages (a snapshot of "
                                         "it is saved first, so you can go back)")
        self.make_like_button.clicked.connect(self.make_like)
        self.buttons.addButton(self.make_like_button, QDialogButtonBox.ButtonRole.ActionRole)
        self.buttons.rejected.connect(self.reject)
        layout.addWidget(self.buttons)
        self.targets.currentIndexChanged.connect(self._target_changed)
        self.others.currentIndexChanged.connect(self._other_changed)
        self.finished.connect(lambda _: self.comparing is not None and self.comparing.cancel())
        self._target_changed()

    def other(self) -> tuple[str, Environment] | None:
        """The chosen other environment and its target."""
        target, other = self.targets.currentData(), self.others.currentData()
        return (target, other) if target is not None and other is not None else None

    def _target_changed(self) -> None:
        self.others.clear()
        for other in sorted(self.choices.get(self.targets.currentData(), []), key=lambda e: (e.name, e.path)):
            self.others.addItem(other.name, other)
        self._other_changed()

    def _other_changed(self) -> None:
        """A new choice: what was compared before no longer applies."""
        self.comparison = None
        self.table.setRowCount(0)
        self.left_alone.setText("")
        self.error.setText("")
        chosen = self.other()
        if chosen is not None:
            self.summary.setText(f"Compare reads {self.env.name} and {chosen[1].name} now and lists what differs.")
        self.compare_button.setEnabled(chosen is not None)
        self.make_like_button.setText(f"Make {chosen[1].name} like this" if chosen else "Make the other like this")
        self.make_like_button.setEnabled(False)
        self.table.setHorizontalHeaderLabels(["Package", f"Here ({self.env.name})",
                                              f"There ({chosen[1].name})" if chosen else "There"])

    def compare(self) -> Task | None:
        """Read both environments in the background; the table fills when they are read."""
        chosen = self.other()
        if chosen is None:
            return None
        self._other_changed()
        self.compare_button.setEnabled(False)
        self.summary.setText(f"Reading {self.env.name} and {chosen[1].name}…")
        self.comparing = self.controller.compare(self.target, self.env, chosen[0], chosen[1],
                                                 while_alive(lambda comparison: self._compared(chosen, comparison),
                                                             self),
                                                 while_alive(lambda error: self._failed(chosen, error), self))
        return self.comparing

    def _compared(self, chosen: tuple[str, Environment], comparison: Comparison) -> None:
        if chosen != self.other():
            return  # an answer for a choice no longer made
        self.compare_button.setEnabled(True)
        self.comparison = comparison
        table = comparison.drift.table()
        self.table.setRowCount(len(table))
        for row, cells in enumerate(table):
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        self.summary.setText(" ".join([comparison.drift.summary(), *comparison.notes]))
        plan = comparison.plan()
        if plan.left_alone:
            self.left_alone.setText(f"<b>Make like leaves {len(plan.left_alone)} alone:</b> " + "; ".join(
                f"{escape(item.name)} {escape(item.why)}" for item in plan.left_alone))
        self.make_like_button.setEnabled(not plan.empty)

    def _failed(self, chosen: tuple[str, Environment], error: EnvDeskError) -> None:
        if chosen == self.other():
            self.compare_button.setEnabled(True)
            self.summary.setText("")
            self.error.setText(f"{error.message} {error.hint}".strip())

    def make_like(self) -> Task | None:
        """After asking, change the other environment to hold this one's packages (a normal operation)."""
        comparison = self.comparison
        if comparison is None or not self.confirm(comparison):
            return None
        task = self.controller.make_like(comparison)
        self.accept()
        return task

    def confirm(self, comparison: Comparison) -> bool:
        """Ask before changing the other environment, saying what the change is."""
        plan, there = comparison.plan(), comparison.there
        parts = [f"install {', '.join(plan.add)}" if plan.add else "", f"remove {', '.join(plan.remove)}"
                 if plan.remove else ""]
        answer = QMessageBox.question(
            self, "Make like this",
            f"Change {there.environment.name} on {there.label}: {'; '.join(p for p in parts if p)}? A snapshot of it "
            "is saved first, so you can go back from the Snapshots tab.")
        return answer == QMessageBox.StandardButton.Yes
