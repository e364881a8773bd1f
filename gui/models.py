"""Qt models over backend data: targets, environments, packages, operations. No backend logic here."""
from __future__ import annotations

import bisect
import itertools
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Sequence

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import Environment, Package

from .resources import icon

Index = QModelIndex | QPersistentModelIndex
STATE_TEXT = {"idle": "not connected", "connecting": "connecting…", "connected": "connected", "error": "error",
              "local": "always available"}


def human_size(size: int | None) -> str:
    """Bytes as people read them: 412.3 KB, 1.2 GB."""
    if size is None:
        return "unknown"
    value = float(size)
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "bytes" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{size} bytes"


def _muted() -> QColor:
    return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)


@dataclass
class TargetItem:
    """One entry of the cluster list."""

    name: str
    label: str
    state: str = "idle"
    message: str = ""
    environments: int | None = None


class TargetListModel(QAbstractListModel):
    """This computer and each configured cluster, with its connection state."""

    NameRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self.items: list[TargetItem] = []

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.items)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        item = self.items[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            count = "" if item.environments is None else f" · {item.environments} env"
            return f"{item.label}\n{STATE_TEXT.get(item.state, item.state)}{count}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.label}, {STATE_TEXT.get(item.state, item.state)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return item.message or STATE_TEXT.get(item.state, item.state)
        if role == Qt.ItemDataRole.ForegroundRole and item.state == "error":
            return QColor("#d64541")
        if role == Qt.ItemDataRole.DecorationRole:
            return icon("computer" if item.state == "local" else "cluster")
        if role == self.NameRole:
            return item.name
        return None

    def set_targets(self, items: Sequence[TargetItem]) -> None:
        self.beginResetModel()
        self.items = list(items)
        self.endResetModel()

    def row_of(self, name: str) -> int:
        return next((i for i, item in enumerate(self.items) if item.name == name), -1)

    def item(self, name: str) -> TargetItem | None:
        row = self.row_of(name)
        return self.items[row] if row >= 0 else None

    def update(self, name: str, **changes: Any) -> None:
        row = self.row_of(name)
        if row < 0:
            return
        for key, value in changes.items():
            setattr(self.items[row], key, value)
        self.dataChanged.emit(self.index(row), self.index(row))


class _Table(QAbstractTableModel):
    """A table over a Python list: `COLUMNS` names the columns, `rows_()` gives the rows."""

    COLUMNS: tuple[str, ...] = ()

    def rows_(self) -> list:
        raise NotImplementedError

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows_())

    def columnCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.COLUMNS)

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.COLUMNS[section]
        return None


class EnvironmentTableModel(_Table):
    """The environments of the selected target."""

    COLUMNS = ("Name", "Kind", "Python", "Packages", "Location", "Modules")
    EnvRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self.environments: list[Environment] = []
        self.home = ""

    def rows_(self) -> list:
        return self.environments

    def short_path(self, path: str) -> str:
        """The path as people write it: ~/venvs/x rather than /home/me/venvs/x."""
        home = self.home.rstrip("/")
        if home and (path == home or path.startswith(home + "/")):
            return "~" + path[len(home):]
        return path

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        env = self.environments[index.row()]
        column = index.column()
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            if column == 3:
                return env.package_count if env.state == "ok" else env.state
            return (env.name, env.kind, env.python or "?", None, self.short_path(env.path),
                    " ".join(env.modules))[column]
        if role == Qt.ItemDataRole.EditRole:  # sort keys
            return (env.name.lower(), env.kind, tuple(int(p) for p in (env.python or "0").split(".") if p.isdigit()),
                    env.package_count, env.path, " ".join(env.modules))[column]
        if role == Qt.ItemDataRole.ToolTipRole:
            return env.error or env.path
        if role == Qt.ItemDataRole.ForegroundRole and env.state != "ok":
            return QColor("#d64541")
        if role == self.EnvRole:
            return env
        return None

    def set_environments(self, environments: Sequence[Environment], home: str | None = None) -> None:
        self.beginResetModel()
        self.environments = list(environments)
        self.home = home or ""
        self.endResetModel()


class PackageTableModel(_Table):
    """The packages of the selected environment."""

    COLUMNS = ("Package", "Version", "Installed by")

    def __init__(self) -> None:
        super().__init__()
        self.packages: list[Package] = []

    def rows_(self) -> list:
        return self.packages

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole):
            return None
        package = self.packages[index.row()]
        return (package.name, package.version, package.installer or "")[index.column()]

    def set_packages(self, packages: Sequence[Package]) -> None:
        self.beginResetModel()
        self.packages = list(packages)
        self.endResetModel()


@dataclass(eq=False)
class OperationRow:
    """One operation of the operations list: its state, latest news, and the last lines of its output."""

    task: Any
    title: str
    target: str
    serial: int
    max_lines: int
    state: str = "running"
    latest: str = ""
    error: EnvDeskError | None = None
    dropped: int = 0
    log: deque[str] = field(init=False)

    def __post_init__(self) -> None:
        self.log = deque(maxlen=self.max_lines)

    @property
    def running(self) -> bool:
        return self.state == "running"

    def append(self, line: str) -> None:
        """Keep one more output line; the oldest goes once `max_lines` are kept. O(1)."""
        if len(self.log) == self.log.maxlen:
            self.dropped += 1
        self.log.append(line)

    def log_lines(self) -> list[str]:
        """The kept lines, after a note saying how many earlier ones were dropped."""
        note = [f"[{self.dropped:,} earlier line(s) were dropped; only the last {self.max_lines:,} are kept]"]
        return (note if self.dropped else []) + list(self.log)


class OperationListModel(_Table):
    """This session's operations: running ones always, plus the most recent `max_finished` finished ones.

    Each row keeps only the last `max_lines` lines of output, so a long session stays small.
    """

    COLUMNS = ("Operation", "Where", "State", "Latest")
    TaskRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, max_finished: int = 50, max_lines: int = 5000) -> None:
        super().__init__()
        self.max_finished = max_finished
        self.max_lines = max_lines
        self.rows: list[OperationRow] = []  # oldest first, so serials are sorted
        self._serials = itertools.count()

    def rows_(self) -> list:
        return self.rows

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return (row.title, row.target, row.state, row.latest)[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole:
            return {"failed": QColor("#d64541"), "cancelled": _muted()}.get(row.state)
        if role == self.TaskRole:
            return row.task
        return None

    def add(self, task: Any) -> OperationRow:
        """A new running row for `task`; callers keep it to append output and update it without a search."""
        row = OperationRow(task, task.title, task.target, next(self._serials), self.max_lines)
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(row)
        self.endInsertRows()
        return row

    def number_of(self, row: OperationRow) -> int:
        """The row's current position (rows before it may have been dropped), or -1 once it was dropped."""
        number = bisect.bisect_left(self.rows, row.serial, key=lambda r: r.serial)
        return number if number < len(self.rows) and self.rows[number] is row else -1

    def touch(self, row: OperationRow, **changes: Any) -> None:
        """Change the row's fields (state, latest, error) and repaint it."""
        for key, value in changes.items():
            setattr(row, key, value)
        number = self.number_of(row)
        if number >= 0:
            self.dataChanged.emit(self.index(number, 0), self.index(number, len(self.COLUMNS) - 1))

    def finish(self, row: OperationRow, state: str, **changes: Any) -> None:
        """Mark the row finished, then drop the oldest finished rows beyond `max_finished`."""
        self.touch(row, state=state, **changes)
        self.prune()

    def prune(self) -> None:
        """Drop the oldest finished rows so at most `max_finished` remain; running rows always stay."""
        finished = [number for number, row in enumerate(self.rows) if not row.running]
        for number in reversed(finished[:max(0, len(finished) - self.max_finished)]):
            self.beginRemoveRows(QModelIndex(), number, number)
            del self.rows[number]
            self.endRemoveRows()
