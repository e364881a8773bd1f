"""Every running or finished operation: live output, progress, Cancel, and the result in plain words."""
from __future__ import annotations

from PySide6.QtCore import QModelIndex, Qt
from PySide6.QtWidgets import (QHBoxLayout, QHeaderView, QPlainTextEdit, QProgressBar, QPushButton,
                               QScrollArea, QSizePolicy, QSplitter, QTableView, QVBoxLayout, QWidget)

from .models import OperationListModel, OperationRow
from .selectable_label import SelectableLabel


class OperationsPanel(QWidget):
    """A table of operations beside one log view (side by side, so a low panel still shows several operations:
    one above the other, a 1024x640 window showed one and a half); the selected operation's output streams in."""

    def __init__(self, model: OperationListModel) -> None:
        super().__init__()
        self.model = model
        self.setAccessibleName("Operations")
        layout = QVBoxLayout(self)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.setChildrenCollapsible(False)
        layout.addWidget(self.splitter)
        self.table = QTableView()
        self.table.setAccessibleName("Operations list")
        self.table.setModel(model)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QTableView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QTableView.SelectionMode.SingleSelection)
        for column in (0, 1, 2):  # what and where read whole ("Export demo…" could not be told apart: a user trial)
            self.table.horizontalHeader().setSectionResizeMode(column, QHeaderView.ResizeMode.ResizeToContents)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setWordWrap(False)
        self.splitter.addWidget(self.table)
        detail = QWidget()
        detail_layout = QVBoxLayout(detail)
        detail_layout.setContentsMargins(0, 0, 0, 0)
        self.splitter.addWidget(detail)
        self.splitter.setStretchFactor(0, 2)
        self.splitter.setStretchFactor(1, 3)
        row = QHBoxLayout()
        self.result = SelectableLabel("No operation yet.")  # a failure's words can be copied (T25)
        self.result.setTextFormat(Qt.TextFormat.RichText)  # always: its texts are escaped (T11 saw '&#x27;' where
        self.result.setWordWrap(True)                      # Qt took a text without tags for plain)
        self.result.setTextInteractionFlags(Qt.TextInteractionFlag.TextBrowserInteraction)
        self.result.setOpenExternalLinks(True)  # "Show in folder" opens the file manager there
        self.result.setAccessibleName("Operation result")
        self.result.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.result_area = QScrollArea()  # a long failure scrolls in a short panel instead of being cut (T14)
        self.result_area.setWidgetResizable(True)
        self.result_area.setFrameShape(QScrollArea.Shape.NoFrame)
        self.result_area.setWidget(self.result)
        self.result_area.setAccessibleName("Operation result, scrolled")  # a Tab stop (arrows scroll it): named
        self.result_area.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        row.addWidget(self.result_area, 1)
        self.progress = QProgressBar()
        self.progress.setRange(0, 0)
        self.progress.setMaximumWidth(140)
        self.progress.setAccessibleName("Operation running")
        self.progress.hide()
        row.addWidget(self.progress)
        self.raw_button = QPushButton("Show raw log")
        self.raw_button.setCheckable(True)
        self.raw_button.setAccessibleName("Show the raw log")
        self.raw_button.setToolTip("Add the installer's full output below a failed operation's summary")
        self.raw_button.setEnabled(False)  # until a failed operation with a log is shown (T18: enabled with none)
        row.addWidget(self.raw_button)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.setAccessibleName("Cancel the selected operation")
        self.cancel_button.setToolTip("Stop the selected operation; what it had half-made is removed")
        self.cancel_button.setEnabled(False)
        row.addWidget(self.cancel_button)
        detail_layout.addLayout(row)
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.log.setAccessibleName("Operation output")
        self.log.setMaximumBlockCount(20000)
        detail_layout.addWidget(self.log)
        two_lines = 2 * self.fontMetrics().lineSpacing() + 8  # the least each box shrinks to: at 150% scale a
        for box in (self.result_area, self.log):  # 1024x640 screen is 683x427, and Qt's 70 px each pushed the
            box.setMinimumHeight(two_lines)        # window's bottom off it (T25)
        self.table.selectionModel().currentRowChanged.connect(lambda current, _: self._show(current.row()))
        self.cancel_button.clicked.connect(self._cancel)
        self.raw_button.toggled.connect(lambda _: self._show(self.current_row()))
        model.rowsInserted.connect(self._inserted)
        model.dataChanged.connect(lambda first, _last: self._changed(first.row()))

    def current_row(self) -> int:
        return self.table.currentIndex().row()

    def current(self) -> OperationRow | None:
        """The selected operation's row, if any."""
        number = self.current_row()
        return self.model.rows[number] if 0 <= number < len(self.model.rows) else None

    def _inserted(self, _parent: QModelIndex, first: int, _last: int) -> None:
        self.table.selectRow(first)
        row = self.model.rows[first]
        row.task.signals.line.connect(lambda _stream, text: self._append(row, text))
        row.task.signals.step.connect(lambda text: self._append(row, f"==> {text}"))

    def _append(self, row: OperationRow, text: str) -> None:
        if self.current() is row:
            self.log.appendPlainText(text)

    def _changed(self, number: int) -> None:
        if number == self.current_row():
            self._show(number, keep_log=True)

    def _show(self, number: int, keep_log: bool = False) -> None:
        import html  # with its table of entities, ~9 M instructions the window's start need not wait for

        if not 0 <= number < len(self.model.rows):
            return
        entry = self.model.rows[number]
        self.cancel_button.setEnabled(entry.running)
        self.raw_button.setEnabled(entry.error is not None and bool(entry.error.log))  # only a failure has one
        self.progress.setVisible(entry.running)
        error = entry.error
        # rich text (for the link), so every text that may carry a target's output is escaped
        if entry.running:
            self.result.setText(html.escape(f"{entry.title}: {entry.latest or 'starting…'}"))
        elif error is not None:
            self.result.setText(f"<b>{html.escape(entry.title)} failed.</b> {html.escape(error.message)}"
                                + (f"<br>{html.escape(error.hint)}" if error.hint else ""))
        elif entry.saved is not None:
            from PySide6.QtCore import QUrl  # ~4 M instructions of the window's start, for one export's link

            folder = QUrl.fromLocalFile(str(entry.saved.parent)).toString()
            self.result.setText(f"{html.escape(entry.title)}: saved to <b>{html.escape(str(entry.saved))}</b>. "
                                f"<a href=\"{folder}\">Show in folder</a>")
        else:
            self.result.setText(html.escape(f"{entry.title}: {entry.latest}"))
        if not keep_log or not entry.running:
            lines = entry.log_lines()
            if self.raw_button.isChecked() and error is not None and error.log:
                lines += ["", "---- raw log ----", error.log]
            self.log.setPlainText("\n".join(lines))
            self.log.verticalScrollBar().setValue(self.log.verticalScrollBar().maximum())

    def _cancel(self) -> None:
        row = self.current()
        if row is not None:
            row.task.cancel()
            self.model.touch(row, latest="Cancelling…")
