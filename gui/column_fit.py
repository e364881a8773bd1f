"""Table columns that always fit the table's width, so no column hides behind a horizontal scroll bar.

Short columns (kind, Python version, counts) keep the width their contents need; long ones
(names, folders, modules) share what is left, each getting all it needs when it can, and are
elided in the middle otherwise. Spare room goes to one chosen column.
"""
from __future__ import annotations

from typing import Callable, Collection, Mapping, Sequence

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QHeaderView, QTableView

ROWS_MEASURED = 200  # rows whose contents size a column (Qt's default is 1000: seconds for a long list)


def fit_widths(wanted: Sequence[int], flexible: Collection[int], available: int, *, grow: int | None = None,
               minimum: int = 48, weights: Mapping[int, float] | None = None) -> list[int]:
    """Widths for columns that want `wanted` pixels, so that together they fill `available`.

    Columns not in `flexible` get what they want. Flexible ones share the rest by `weights` (1 each
    unless told): one that wants less than its share gets what it wants, the others split what remains
    (at least `minimum` each, so the total may then exceed `available`). Room left over goes to `grow`.
    """
    weight = {column: (weights or {}).get(column, 1.0) for column in flexible}
    widths = list(wanted)
    flex = [column for column in range(len(wanted)) if column in flexible]
    room = available - sum(width for column, width in enumerate(wanted) if column not in flexible)
    pending = sorted(flex, key=lambda column: wanted[column] / weight[column])
    while pending:
        total = sum(weight[column] for column in pending)
        smallest = pending[0]
        if wanted[smallest] <= room * weight[smallest] / total:
            widths[smallest] = wanted[smallest]
            room -= wanted[smallest]
            pending.pop(0)
            continue
        starved = [column for column in pending if room * weight[column] / total < minimum]
        if starved and len(starved) < len(pending):  # too small a share to read: give it the minimum
            widths[starved[0]] = minimum
            room -= minimum
            pending.remove(starved[0])
            continue
        shares = [int(room * weight[column] / total) for column in pending]
        shares[-1] += room - sum(shares)
        for column, share in zip(pending, shares):
            widths[column] = max(minimum, share)
        room = 0
        break
    if room > 0 and flex:
        widths[grow if grow in flex else flex[-1]] += room
    return widths


class ColumnFitter(QObject):
    """Keeps a table's columns fitted to its width: after every resize and every change of its rows."""

    def __init__(self, view: QTableView, flexible: Callable[[], Collection[int]],
                 grow: Callable[[], int | None] = lambda: None,
                 weights: Callable[[], Mapping[int, float]] = lambda: {}) -> None:
        super().__init__(view)
        self.weights = weights
        self.view = view
        self.flexible = flexible
        self.grow = grow
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.fit)
        header = view.horizontalHeader()
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setResizeContentsPrecision(ROWS_MEASURED)  # the rows shown first, then others up to this many
        view.viewport().installEventFilter(self)
        model = view.model()
        for signal in (model.modelReset, model.layoutChanged, model.rowsInserted, model.rowsRemoved,
                       model.dataChanged):
            signal.connect(self._timer.start)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        if event.type() == QEvent.Type.Resize:
            self._timer.start()
        return False

    def fit(self) -> None:
        """Size every column now."""
        header = self.view.horizontalHeader()
        count = header.count()
        if count == 0:
            return
        wanted = [max(header.sectionSizeHint(c), self.view.sizeHintForColumn(c)) for c in range(count)]
        minimum = max(header.minimumSectionSize(), header.fontMetrics().horizontalAdvance("Name…") + 12)
        widths = fit_widths(wanted, set(self.flexible()), self.view.viewport().width(), grow=self.grow(),
                            minimum=minimum, weights=self.weights())
        for column, width in enumerate(widths):
            if header.sectionSize(column) != width:
                header.resizeSection(column, width)
