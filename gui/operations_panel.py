"""Every running or finished operation: live output, progress, Cancel, and the result in plain words."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QLabel, QPlainTextEdit, QProgressBar, QPushButton,
                               QTableView, QVBoxLayout, QWidget)

from .models import OperationListModel


class OperationsPanel(QWidget):
    """A table of operations over one log view; the selected operation's output streams into it."""

    def __init__(self, model: OperationListModel) -> None:
        super().__init__()
        self.model = model
        self.setAccessibleName("Operations")
        layout = QVBoxLayout(self)
        self.table = QTableView()
        self.table.setAccessibleName("Operations list")
        self.table.setModel(model)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setMaximumHeight(110)
        self.table.setWordWrap(False)
        layout.addWidget(self.table)
        row = QHBoxLayout()
        self.result = QLabel("No operation yet.")
        self.result.setWordWrap(True)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.result.setAccessibleName("Operation result")
        row.addWidget(self.result, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(140)
        self.progress.setAccessibleName("Operation running")
        self.progress.hide()
        row.addWidget(self.progress)
        self.raw_button = QPushButton("Show raw log")
        self.raw_button.setCheckable(True)
        self.raw_button.setAccessibleName("Show the raw log")
        row.addWidget(self.raw_button)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel the selected operation")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.cancel_button)
        layout.addLayout(row)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setAccessibleName("Operation output")
        self.log.setMaximumBlockCount(20000)
        layout.addWidget(self.log)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _: self._show(current.row()))
        self.cancel_button.clicked.connect(self._cancel)
        self.raw_button.toggled.connect(lambda _: self._show(self.current_row()))
        model.rowsInserted.connect(self._inserted)
        model.dataChanged.connect(lambda first, _last: self._changed(first.row()))

    def current_row(self) -> int:
        return self.table.currentIndex().row()

    def _inserted(self, _parent: QModelIndex, first: int, _last: int) -> None:
        self.table.selectRow(first)
        task = self.model.rows[first]["task"]
        task.signals.line.connect(lambda _stream, text: self._append(task, text))
        task.signals.step.connect(lambda text: self._append(task, f"==> {text}"))

    def _append(self, task, text: str) -> None:
        row = self.current_row()
        if 0 <= row < len(self.model.rows) and self.model.rows[row]["task"] is task:
            self.log.appendPlainText(text)

    def _changed(self, row: int) -> None:
        if row == self.current_row():
            self._show(row, keep_log=True)

    def _show(self, row: int, keep_log: bool = False) -> None:
        if not 0 <= row < len(self.model.rows):
            return
        entry = self.model.rows[row]
        running = entry["state"] == "running"
        self.cancel_button.setEnabled(running)
        self.progress.setVisible(running)
        error = entry["error"]
        if running:
            self.result.setText(f"{entry['title']}: {entry['latest'] or 'starting…'}")
        elif error is not None:
            self.result.setText(f"<b>{entry['title']} failed.</b> {error.message}"
                                + (f"<br>{error.hint}" if error.hint else ""))
        else:
            self.result.setText(f"{entry['title']}: {entry['latest']}")
        if not keep_log or not running:
            lines = list(entry["log"])
            if self.raw_button.isChecked() and error is not None and error.log:
                lines += ["", "---- raw log ----", error.log]
            self.log.setPlainText("\n".join(lines))
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def _cancel(self) -> None:
        row = self.current_row()
        if 0 <= row < len(self.model.rows):
            self.model.rows[row]["task"].cancel()
            self.model.touch(self.model.rows[row]["task"], latest="Cancelling…")
