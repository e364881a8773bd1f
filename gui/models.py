"""Qt models over backend data: targets, environments, packages, operations. No backend logic here."""
from __future__ import annotations

from pathlib import Path

import bisect
import itertools
from collections import deque
from typing import Any, Callable, Sequence

from PySide6.QtCore import QAbstractListModel, QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt
from PySide6.QtGui import QColor
from PySide6.QtWidgets import QApplication

from envdesk.backend.errors import EnvDeskError
from envdesk.backend.inventory import Environment, Package
from envdesk.backend.inventory import Usage
from envdesk.backend.sizes import size_text as human_size
from envdesk.backend.validate import canonical_name
from envdesk.backend.wording import counted

from .resources import icon
from .status_colours import problem_colour

Index = QModelIndex | QPersistentModelIndex
# The roles EnvironmentTableModel.data answers, as plain ints: Qt asks ~10 roles per cell it paints, and each
# Qt.ItemDataRole.X looked up in data() costs as much as comparing several ints.
_DISPLAY, _DECORATION, _EDIT, _TOOLTIP, _ALIGNMENT, _FOREGROUND, _ACCESSIBLE = (int(role) for role in (
    Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.EditRole,
    Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.TextAlignmentRole, Qt.ItemDataRole.ForegroundRole,
    Qt.ItemDataRole.AccessibleTextRole))
STATE_TEXT = {"idle": "not connected", "connecting": "connecting…", "connected": "connected",
              "error": "failed: select it to see why", "local": "always available"}


def _muted() -> QColor:
    from PySide6.QtGui import QPalette  # its type is made when first needed (a cancelled operation shown)
    return QApplication.palette().color(QPalette.ColorRole.PlaceholderText)


class TargetItem:
    """One entry of the cluster list. (This and OperationRow are plain classes: making a dataclass runs its
    generated methods' source through the compiler, ~3 M instructions each of the window's start.)"""

    __hash__ = None  # type: ignore[assignment]  # compared by value, as a dataclass is

    def __init__(self, name: str, label: str, state: str = "idle", message: str = "",
                 environments: int | None = None) -> None:
        self.name = name
        self.label = label
        self.state = state
        self.message = message
        self.environments = environments

    def __eq__(self, other: object) -> bool:
        return other.__class__ is self.__class__ and vars(self) == vars(other)


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
            count = "" if item.environments is None else f" · {counted(item.environments, 'env')}"  # short: it
            # shares a narrow line with the state ('always available · 12 envs')
            return f"{item.label}\n{STATE_TEXT.get(item.state, item.state)}{count}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"{item.label}, {STATE_TEXT.get(item.state, item.state)}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{item.label}\n{item.message or STATE_TEXT.get(item.state, item.state)}"  # its name whole:
            # the list elides a long one (T25)
        if role == Qt.ItemDataRole.ForegroundRole and item.state == "error":
            return QColor(problem_colour())
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


ALL_TARGETS = "*all*"  # the "All clusters" entry; never a target's name (those start with a letter or digit)


class AllTargetsEntry(QAbstractListModel):
    """The "All clusters" row shown above the targets once a cluster is configured; it sums them up."""

    def __init__(self, targets: TargetListModel) -> None:
        super().__init__()
        self.targets = targets
        self._shown = self._wanted()

    def follow_targets(self) -> None:
        """Show or hide the entry as targets come and go. Called once a proxy showing both has connected to the
        targets: it then takes their reset first, and this entry's change comes after it, not inside it (which Qt
        refuses: "beginResetModel called ... without calling endResetModel first")."""
        for signal in (self.targets.modelReset, self.targets.rowsInserted, self.targets.rowsRemoved):
            signal.connect(self._targets_changed)
        self.targets.dataChanged.connect(self._summary_changed)

    def _wanted(self) -> bool:
        return self.targets.rowCount() > 1

    def _targets_changed(self, *_: object) -> None:
        wanted = self._wanted()
        if wanted and not self._shown:  # rows, not a reset: a view's selection of a target stays
            self.beginInsertRows(QModelIndex(), 0, 0)
            self._shown = True
            self.endInsertRows()
        elif self._shown and not wanted:
            self.beginRemoveRows(QModelIndex(), 0, 0)
            self._shown = False
            self.endRemoveRows()
        self._summary_changed()

    def _summary_changed(self, *_: object) -> None:
        if self._shown:
            self.dataChanged.emit(self.index(0), self.index(0))

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        return 0 if parent.isValid() or not self._shown else 1

    def summary(self) -> str:
        """How many places and environments the entry covers, e.g. '3 places · 12 envs'."""
        items = self.targets.items
        counts = [item.environments for item in items if item.environments is not None]
        return counted(len(items), "place") + (f" · {counted(sum(counts), 'env')}" if counts else "")

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid():
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return f"All clusters\n{self.summary()}"
        if role == Qt.ItemDataRole.AccessibleTextRole:
            return f"All clusters, {self.summary()}"
        if role == Qt.ItemDataRole.ToolTipRole:
            return "Every environment of every cluster and of this computer, in one list"
        if role == Qt.ItemDataRole.DecorationRole:
            return icon("cluster")
        if role == TargetListModel.NameRole:
            return ALL_TARGETS
        return None


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
    """The environments of the selected target, or of every target at once with a Cluster column."""

    COLUMN_TITLES = {"name": "Name", "cluster": "Cluster", "kind": "Kind", "python": "Python",
                     "packages": "Packages", "location": "Location", "modules": "Modules"}
    ONE_TARGET = ("name", "kind", "python", "packages", "location", "modules")
    ALL_TARGETS = ("name", "cluster", "kind", "python", "packages", "location", "modules")
    LONG_COLUMNS = ("name", "location", "modules")  # elided in the middle when the table is narrow
    COLUMN_TITLES = {**COLUMN_TITLES, "size": "Size", "files": "Files"}  # shown once measured (remember_usage)
    USAGE_ROLES = (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole, Qt.ItemDataRole.EditRole,
                   Qt.ItemDataRole.TextAlignmentRole)
    EnvRole = Qt.ItemDataRole.UserRole + 1
    TargetRole = Qt.ItemDataRole.UserRole + 2
    ANSWERED = frozenset(int(role) for role in (
        *USAGE_ROLES, Qt.ItemDataRole.ToolTipRole, Qt.ItemDataRole.DecorationRole, Qt.ItemDataRole.ForegroundRole,
        EnvRole, TargetRole))  # data() says None at once to the others (fonts, sizes…: ~10 asked per cell)

    def __init__(self) -> None:
        super().__init__()
        self.keys: tuple[str, ...] = self.ONE_TARGET
        self.COLUMNS = tuple(self.COLUMN_TITLES[key] for key in self.keys)
        self.environments: list[Environment] = []
        self.targets: list[str] = []  # the target of each row, in step with `environments`
        self.homes: dict[str, str] = {}
        self.labels: dict[str, str] = {}
        self.findings: dict[tuple[str, str], list[str]] = {}  # (target, environment) -> health findings' titles
        self.usage: dict[tuple[str, str], Usage] = {}  # (target, path) -> what it takes on disk, once measured

    def set_findings(self, target: str, titles: dict[str, list[str]]) -> None:
        """Badge the environments of `target` that the health check found something about."""
        self.findings = {key: value for key, value in self.findings.items() if key[0] != target}
        self.findings.update({(target, env): list(found) for env, found in titles.items() if found})
        if self.environments:
            self.dataChanged.emit(self.index(0, 0), self.index(len(self.environments) - 1, len(self.keys) - 1))

    @property
    def home(self) -> str:
        """The home folder of the (single) target shown."""
        return next(iter(self.homes.values()), "")

    def rows_(self) -> list:
        return self.environments

    def rowCount(self, parent: Index = QModelIndex()) -> int:
        # Without rows_(): through the sort proxy, Qt asks this at every question about a cell it paints
        return 0 if parent.isValid() else len(self.environments)

    def column_of(self, key: str) -> int:
        """The column showing `key` ('name', 'location'…), or -1 when it is not shown."""
        return self.keys.index(key) if key in self.keys else -1

    def short_path(self, path: str, target: str | None = None) -> str:
        """The path as people write it: ~/venvs/x rather than /home/me/venvs/x."""
        home = (self.homes.get(target, "") if target is not None else self.home).rstrip("/")
        if home and (path == home or path.startswith(home + "/")):
            return "~" + path[len(home):]
        return path

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role not in self.ANSWERED or not index.isValid():
            return None
        row = index.row()
        env, target = self.environments[row], self.targets[row]
        key = self.keys[index.column()]
        if key in ("size", "files") and role in self.USAGE_ROLES:
            return self._usage_data(env, target, key, role)
        if role == _DISPLAY or role == _ACCESSIBLE:
            return _CELL_TEXT[key](self, env, target)
        if role == _EDIT:
            return _SORT_KEY[key](self, env, target)
        if role == _TOOLTIP:
            return "\n".join([env.error or env.path]
                             + [f"⚠ {title}" for title in self.findings.get((target, env.name)) or ()])
        if role == _DECORATION and key == "name" and self.findings.get((target, env.name)):
            from PySide6.QtWidgets import QStyle  # ~5 ms of enumerations: loaded once a finding is shown
            return QApplication.style().standardIcon(QStyle.StandardPixmap.SP_MessageBoxWarning)
        if role == _FOREGROUND and env.state != "ok":
            return QColor(problem_colour())
        if role == self.EnvRole:
            return env
        if role == self.TargetRole:
            return target
        return None

    def column_texts(self, column: int) -> list[str]:
        """Every row's text in `column`, as data() shows it, in one call: what the column fitter measures (asked
        cell by cell through the table's sort proxy, each text is three Python calls made by Qt)."""
        key, rows = self.keys[column], zip(self.environments, self.targets)
        if key in ("size", "files"):
            cells = [self._usage_data(env, target, key, _DISPLAY) for env, target in rows]
        else:
            cells = [_CELL_TEXT[key](self, env, target) for env, target in rows]
        return ["" if cell is None else str(cell) for cell in cells]

    def set_environments(self, environments: Sequence[Environment], home: str | None = None,
                         target: str = "") -> None:
        """Show one target's environments."""
        self.set_rows([(target, env) for env in environments], {target: home or ""}, {}, all_targets=False)

    def set_rows(self, rows: Sequence[tuple[str, Environment]], homes: dict[str, str], labels: dict[str, str], *,
                 all_targets: bool) -> None:
        """Show (target, environment) rows; `all_targets` adds the Cluster column (labels name the targets)."""
        self.beginResetModel()
        self.keys = self.ALL_TARGETS if all_targets else self.ONE_TARGET
        self.keys = self._with_usage(self.keys, rows)
        self.COLUMNS = tuple(self.COLUMN_TITLES[key] for key in self.keys)
        self.targets = [target for target, _ in rows]
        self.environments = [env for _, env in rows]
        self.homes = dict(homes)
        self.labels = dict(labels)
        self.endResetModel()


    def remember_usage(self, target: str, environments: Sequence[Environment]) -> None:
        """Keep what these environments of `target` take on disk (measured on demand), for this and every later
        listing: the Size and Files columns show from the next set_rows on."""
        self.usage.update({(target, env.path): env.usage for env in environments if env.usage is not None})

    def _with_usage(self, keys: tuple[str, ...], rows: Sequence[tuple[str, Environment]]) -> tuple[str, ...]:
        """`keys` with Size and Files after Packages when any row was measured."""
        if not any(env.usage is not None or (target, env.path) in self.usage for target, env in rows):
            return keys
        place = keys.index("packages") + 1
        return (*keys[:place], "size", "files", *keys[place:])

    def _usage_data(self, env: Environment, target: str, key: str, role: int) -> Any:
        """The Size and Files cells: what was measured ('+': the walk stopped at its time budget), blank until
        then; sorted by the numbers themselves."""
        usage = env.usage or self.usage.get((target, env.path))
        amount = None if usage is None else usage.bytes if key == "size" else usage.files
        if role == Qt.ItemDataRole.EditRole:
            return -1 if amount is None else amount
        if role == Qt.ItemDataRole.TextAlignmentRole:
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if usage is None:
            return ""
        more = "" if usage.complete else "+"
        return (human_size(usage.bytes) if key == "size" else f"{usage.files:,}") + more


# What each column of EnvironmentTableModel shows (DisplayRole) and sorts by (EditRole), per (model, env, target).
_CELL_TEXT: dict[str, Callable[[EnvironmentTableModel, Environment, str], Any]] = {
    "name": lambda model, env, target: env.name,
    "cluster": lambda model, env, target: model.labels.get(target, target),
    "kind": lambda model, env, target: env.kind,
    "python": lambda model, env, target: env.python or "?",
    "packages": lambda model, env, target: env.package_count if env.state == "ok" else env.state,
    "location": lambda model, env, target: model.short_path(env.path, target),
    "modules": lambda model, env, target: " ".join(env.modules)}
_SORT_KEY: dict[str, Callable[[EnvironmentTableModel, Environment, str], Any]] = {
    "name": lambda model, env, target: env.name.lower(),
    "cluster": lambda model, env, target: (model.labels.get(target, target).lower(), env.name.lower()),
    "kind": lambda model, env, target: env.kind,
    "python": lambda model, env, target: tuple(int(p) for p in (env.python or "0").split(".") if p.isdigit()),
    "packages": lambda model, env, target: env.package_count,
    "location": lambda model, env, target: env.path,
    "modules": lambda model, env, target: " ".join(env.modules)}


class PackageTableModel(_Table):
    """The packages of the selected environment."""

    COLUMNS = ("Package", "Version", "Installed by")
    SortRole = Qt.ItemDataRole.UserRole + 1
    """What a column sorts by: the name normalised (PEP 503), as pip list sorts; the version's place among the
    others as PEP 440 orders them (2.21.0 after 2.3.1, not before); the text elsewhere."""

    def __init__(self) -> None:
        super().__init__()
        self.packages: list[Package] = []
        self._version_ranks: list[int] | None = None  # made when the versions are first sorted

    def rows_(self) -> list:
        return self.packages

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if not index.isValid() or role not in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.EditRole, self.SortRole):
            return None
        package = self.packages[index.row()]
        if role == self.SortRole and index.column() == 0:
            return canonical_name(package.name)
        if role == self.SortRole and index.column() == 1:
            return self._version_rank(index.row())
        return (package.name, package.version, package.installer or "")[index.column()]

    def _version_rank(self, row: int) -> int:
        if self._version_ranks is None:
            from packaging.version import InvalidVersion, Version

            def key(number: int) -> tuple:
                text = self.packages[number].version
                try:
                    return (1, Version(text), text)
                except InvalidVersion:  # a version PEP 440 cannot read goes first, by its text
                    return (0, text)
            ranks = [0] * len(self.packages)
            for place, number in enumerate(sorted(range(len(self.packages)), key=key)):
                ranks[number] = place
            self._version_ranks = ranks
        return self._version_ranks[row]

    def set_packages(self, packages: Sequence[Package]) -> None:
        self.beginResetModel()
        self.packages = list(packages)
        self._version_ranks = None
        self.endResetModel()


class OperationRow:
    """One operation of the operations list: its state, latest news, and the last lines of its output."""

    def __init__(self, task: Any, title: str, target: str, serial: int, max_lines: int, state: str = "running",
                 latest: str = "", error: EnvDeskError | None = None, dropped: int = 0,
                 saved: Path | None = None, where: str = "") -> None:
        self.task = task
        self.title = title
        self.target = target
        self.where = where or target  # the target as the window names it ("This computer", not "local")
        self.serial = serial
        self.max_lines = max_lines
        self.state = state
        self.latest = latest
        self.error = error
        self.dropped = dropped
        self.saved = saved  # the file an export wrote, to show in its folder
        self.log: deque[str] = deque(maxlen=max_lines)

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
            return (row.title, row.where, row.state, row.latest)[index.column()]
        if role == Qt.ItemDataRole.ForegroundRole:
            return {"failed": QColor(problem_colour()), "cancelled": _muted()}.get(row.state)
        if role == self.TaskRole:
            return row.task
        return None

    def add(self, task: Any, where: str = "") -> OperationRow:
        """A new running row for `task` (on the target the window calls `where`); callers keep it to append output
        and update it without a search."""
        row = OperationRow(task, task.title, task.target, next(self._serials), self.max_lines, where=where)
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
