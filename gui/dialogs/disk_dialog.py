"""Disk: what a target's file systems and quotas leave (space and files), and emptying the installers' caches."""
from __future__ import annotations

from PySide6.QtWidgets import (QDialog, QDialogButtonBox, QHBoxLayout, QHeaderView, QLabel, QMessageBox,
                               QPlainTextEdit, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget)

from envdesk.backend.errors import EnvDeskError

from ..controller import Cleaned, DiskReport
from ..models import human_size
from .common import error_label

CLEANS = {"pip": "pip cache purge", "uv": "uv cache clean", "conda": "conda clean --all --yes",
          "all": "each of them the target has"}


def _count(value: int | None) -> str:
    return "?" if value is None else f"{value:,}"


def _table(columns: list[str], name: str) -> QTableWidget:
    table = QTableWidget(0, len(columns))
    table.setAccessibleName(name)
    table.setHorizontalHeaderLabels(columns)
    table.verticalHeader().hide()
    table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    return table


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for number, row in enumerate(rows):
        for column, text in enumerate(row):
            table.setItem(number, column, QTableWidgetItem(text))


class DiskDialog(QDialog):
    """Shows the target's latest disk report (measured when there is none yet, in the background): each root's
    file system with its free space and files, the quota report's lines; the buttons empty a cache."""

    def __init__(self, controller, target: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.controller = controller
        self.target = target
        label = controller.label(target)
        self.setWindowTitle(f"Disk use on {label}")
        self.setAccessibleName("Disk use")
        self.setMinimumSize(640, 460)
        layout = QVBoxLayout(self)
        self.status = QLabel("Measuring…")
        self.status.setWordWrap(True)
        self.status.setAccessibleName("Disk use summary")
        layout.addWidget(self.status)
        self.error = error_label()
        layout.addWidget(self.error)
        layout.addWidget(QLabel("<b>Free where the environments are</b>"))
        self.space = _table(["Folder", "Free", "Of", "Files left", "Of"], "Free space and files")
        layout.addWidget(self.space)
        layout.addWidget(QLabel("<b>Quota, as the cluster reports it</b>"))
        self.quotas = _table(["File system", "Used", "Limit", "Files", "File limit", ""], "Quota")
        layout.addWidget(self.quotas)
        self.raw = QPlainTextEdit()
        self.raw.setReadOnly(True)
        self.raw.setAccessibleName("Quota report as printed")
        self.raw.setTabChangesFocus(True)
        self.raw.setVisible(False)
        layout.addWidget(self.raw)
        row = QHBoxLayout()
        row.addWidget(QLabel("Empty a download cache:"))
        self.clean_buttons: dict[str, QPushButton] = {}
        for which in ("pip", "uv", "conda", "all"):
            button = QPushButton("All caches" if which == "all" else which)
            button.setAccessibleName(f"Empty {'every' if which == 'all' else which} cache")
            button.setToolTip(f"Empty the download cache on {label} ({CLEANS[which]}); environments are not "
                              "touched, later installs download what they need again")
            button.clicked.connect(lambda _=False, which=which: self.clean(which))
            row.addWidget(button)
            self.clean_buttons[which] = button
        row.addStretch(1)
        layout.addLayout(row)
        self.cleaned = QLabel()
        self.cleaned.setWordWrap(True)
        self.cleaned.setAccessibleName("What was freed")
        layout.addWidget(self.cleaned)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        self.measure_button = QPushButton("Measure again")
        self.measure_button.setToolTip("Measure every environment and read the free space and quota again")
        self.measure_button.clicked.connect(self.measure)
        buttons.addButton(self.measure_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout.addWidget(buttons)
        known = controller.disk_reports.get(target)
        if known is not None:
            self.show_report(known)
        else:
            self.measure()

    def measure(self) -> None:
        """Measure in the background; the report shows when it arrives."""
        self.status.setText("Measuring…")
        self.error.setText("")
        self.measure_button.setEnabled(False)
        self.controller.measure_disk(self.target, self.show_report, self._failed)

    def _failed(self, error: EnvDeskError) -> None:
        self.measure_button.setEnabled(True)
        self.status.setText("")
        self.error.setText(error.message)

    def show_report(self, report: DiskReport) -> None:
        """Fill the tables from a disk report."""
        self.measure_button.setEnabled(True)
        measured = [env for env in report.environments if env.usage is not None]
        files = sum(env.usage.files for env in measured if env.usage)
        size = sum(env.usage.bytes for env in measured if env.usage)
        self.status.setText(f"{len(measured)} environment(s) hold {files:,} files and {human_size(size)} "
                            "(the Size and Files columns of the list show each).")
        self.error.setText(" ".join(report.notes))
        _fill(self.space, [[space.path, human_size(space.free_bytes), human_size(space.total_bytes),
                            _count(space.free_files), _count(space.total_files)] for space in report.space])
        rows, raw = [], []
        for found in report.quotas:
            rows += [[quota.filesystem + (f" ({quota.owner})" if quota.owner else ""), human_size(quota.used_bytes),
                      "none" if quota.limit_bytes is None else human_size(quota.limit_bytes),
                      _count(quota.used_files), "none" if quota.limit_files is None else _count(quota.limit_files),
                      "over" if quota.over else ""] for quota in found.quotas]
            if found.raw:
                raw.append(f"{found.command}:\n{found.raw}")
        _fill(self.quotas, rows)
        self.quotas.setVisible(bool(rows) or not raw)
        if not report.quotas:
            self.quotas.setRowCount(0)
            self.quotas.setToolTip("This cluster has no quota report EnvDesk knows (diskusage_report, uquota, "
                                   "lfs quota, quota).")
        self.raw.setPlainText("\n\n".join(raw))
        self.raw.setVisible(bool(raw))

    def clean(self, which: str) -> None:
        """Empty a cache after asking; what it freed shows below the buttons."""
        what = "every download cache" if which == "all" else f"{which}'s download cache"
        answer = QMessageBox.question(self, "Empty cache", f"Empty {what} on {self.controller.label(self.target)}? "
                                      "Environments are not touched; later installs download what they need again.")
        if answer != QMessageBox.StandardButton.Yes:
            return
        for button in self.clean_buttons.values():
            button.setEnabled(False)
        self.cleaned.setText(f"Emptying {what}…")
        self.controller.clean_caches(self.target, which, self._cleaned, self._clean_failed)

    def _cleaned(self, cleaned: list[Cleaned]) -> None:
        for button in self.clean_buttons.values():
            button.setEnabled(True)
        self.cleaned.setText(" ".join(item.summary() for item in cleaned))

    def _clean_failed(self, error: EnvDeskError) -> None:
        for button in self.clean_buttons.values():
            button.setEnabled(True)
        self.cleaned.setText("")
        self.error.setText(error.message)
