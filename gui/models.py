"""Qt models over backend data: targets, environments, packages, operations. No backend logic here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

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


class OperationListModel(_Table):
    """Every operation of this session: running ones first in mind, finished ones kept with their result."""

    COLUMNS = ("Operation", "Where", "State", "Latest")
    TaskRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, Any]] = []

    def rows_(self) -> list:
        return self.rows

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        row = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return (row["title"], row["target"], row["state"], row["latest"])[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole:
            return {"failed": QColor("#d64541"), "cancelled": _muted()}.get(row["state"])
        if role == self.TaskRole:
            return row["task"]
        return None

    def add(self, task: Any) -> int:
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append({"task": task, "title": task.title, "target": task.target, "state": "running",
                          "latest": "", "log": [], "error": None, "result": None})
        self.endInsertRows()
        return len(self.rows) - 1

    def row_for(self, task: Any) -> dict[str, Any]:
        return next(row for row in self.rows if row["task"] is task)

    def touch(self, task: Any, **changes: Any) -> None:
        for number, row in enumerate(self.rows):
            if row["task"] is task:
                row.update(changes)
                self.dataChanged.emit(self.index(number, 0), self.index(number, len(self.COLUMNS) - 1))
                return
