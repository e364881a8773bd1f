"""Table columns that always fit the table's width, so no column hides behind a horizontal scroll bar.

Short columns (kind, Python version, counts) keep the width their contents need; long ones
(names, folders, modules) share what is left, each getting all it needs when it can, and are
elided in the middle otherwise. Spare room goes to one chosen column.
"""
from __future__ import annotations

from typing import Callable, Collection, Mapping, Protocol, Sequence

from PySide6.QtCore import QAbstractItemModel, QModelIndex, QObject, QSortFilterProxyModel, Qt, QTimer, Signal
from PySide6.QtGui import QPaintEvent, QResizeEvent
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


class FittingHeader(QHeaderView):
    """A table's horizontal header, as the table makes its own, that says when it is resized or painted: by
    signals, where a Python event filter on it would make PySide build a Python type for every kind of event
    the header gets (~6 M instructions of the window's first paint). Made before the table's sorting is set
    up (it replaces the table's header)."""

    resized = Signal()
    painted = Signal()

    def __init__(self, view: QTableView) -> None:
        super().__init__(Qt.Orientation.Horizontal, view)
        self.setSectionsClickable(True)  # as QTableView's own header
        self.setHighlightSections(True)
        view.setHorizontalHeader(self)

    def resizeEvent(self, event: QResizeEvent) -> None:  # noqa: N802 (Qt's name)
        super().resizeEvent(event)
        self.resized.emit()

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt's name)
        super().paintEvent(event)
        self.painted.emit()


class TextSource(Protocol):
    """A model under the view's sort proxy that gives a column's texts in one call (see ColumnFitter)."""

    def column_texts(self, column: int) -> list[str]:
        """Every row's text in `column`, in the model's own order, as its data() shows them."""

    def rowCount(self, parent: QModelIndex = ..., /) -> int:  # noqa: N802 (Qt's name)
        """The model's rows."""

    def index(self, row: int, column: int, parent: QModelIndex = ..., /) -> QModelIndex:
        """The model's index of a cell."""


class ColumnFitter(QObject):
    """Keeps a table's columns fitted to its width: after every resize and every change of its rows (the
    table's horizontal header must be shown; it is made a FittingHeader unless it is one).

    An `optional` column shows only while every column fits whole; otherwise its room goes to the others.

    With a `source` (the model under the view's sort proxy), the texts are read from it in one call per column
    while the proxy shows all its rows, and no more than are measured: the same texts, in another order, for a
    fraction of the cost (each cell asked through the proxy is three Python calls made by Qt, ~8 M instructions
    for a window's first list)."""

    def __init__(self, view: QTableView, flexible: Callable[[], Collection[int]],
                 grow: Callable[[], int | None] = lambda: None,
                 weights: Callable[[], Mapping[int, float]] = lambda: {}, *,
                 source: TextSource | None = None, optional: int | None = None) -> None:
        super().__init__(view)
        self.source = source
        self.optional = optional
        self.weights = weights
        self.view = view
        self.flexible = flexible
        self.grow = grow
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self.fit)
        header = view.horizontalHeader()
        if not isinstance(header, FittingHeader):
            header = FittingHeader(view)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setResizeContentsPrecision(ROWS_MEASURED)  # the rows shown first, then others up to this many
        # The table keeps its header as wide as its viewport, so the header's width is the room there is;
        # asking for the viewport instead costs ~10 ms once (PySide goes through every widget type to wrap
        # a plain QWidget made in C++). The header must be shown: a hidden one is not resized.
        header.resized.connect(self._timer.start)
        model = view.model()
        for signal in (model.modelReset, model.layoutChanged, model.rowsInserted, model.rowsRemoved,
                       model.dataChanged):
            signal.connect(self._timer.start)

    def fit(self) -> None:
        """Size every column now."""
        header = self.view.horizontalHeader()
        count = header.count()
        if count == 0:
            return
        optional = self.optional if self.optional is not None and self.optional < count else None
        if optional is not None and header.isSectionHidden(optional):
            header.setSectionHidden(optional, False)  # measured shown: a hidden section's size hint is 0
        wanted = [max(header.sectionSizeHint(c), self.content_width(c)) for c in range(count)]
        if optional is not None and sum(wanted) > header.width():
            header.setSectionHidden(optional, True)
            wanted[optional] = 0
        minimum = max(header.minimumSectionSize(), header.fontMetrics().horizontalAdvance("Name…") + 12)
        widths = fit_widths(wanted, set(self.flexible()), header.width(), grow=self.grow(),
                            minimum=minimum, weights=self.weights())
        for column, width in enumerate(widths):
            if header.sectionSize(column) != width:
                header.resizeSection(column, width)

    def content_width(self, column: int) -> int:
        """The width the column's widest cell needs, as the view's sizeHintForColumn gives it, in a fraction of
        its time (which asks the model ~10 questions per cell, in Python): the cells are compared by the width
        of their text; the widest, and any with an icon within an icon's width of it, are sized by the view."""
        model, metrics = self.view.model(), self.view.fontMetrics()
        texts, cell = self._texts(model, column)
        widths = []
        measured: dict[str, int] = {}  # a text repeated down the column (a kind, a Python) is measured once
        for text in texts:
            width = measured.get(text)
            if width is None:
                width = measured[text] = metrics.horizontalAdvance(text)
            widths.append(width)
        if not widths:
            return 0
        slack = (self.view.iconSize().width() if self.view.iconSize().isValid() else 16) + 8  # a decoration
        widest = max(widths)
        sized = [widths.index(widest)] + [row for row, width in enumerate(widths) if widest > width >= widest - slack
                                          and cell(row).data(Qt.ItemDataRole.DecorationRole) is not None]
        hint = max(self.view.sizeHintForIndex(cell(row)).width() for row in sized)
        return hint + 1 if self.view.showGrid() else hint

    def _texts(self, model: QAbstractItemModel, column: int) -> tuple[list[str], Callable[[int], QModelIndex]]:
        """The texts measured in `column` (the first ROWS_MEASURED rows) and the view's index of each one's cell."""
        rows, source = model.rowCount(), self.source
        if (source is not None and isinstance(model, QSortFilterProxyModel) and model.sourceModel() is source
                and rows <= ROWS_MEASURED and rows == source.rowCount()):
            return source.column_texts(column), lambda row: model.mapFromSource(source.index(row, column))
        texts = []
        for row in range(min(rows, ROWS_MEASURED)):
            text = model.index(row, column).data()
            texts.append("" if text is None else str(text))
        return texts, lambda row: model.index(row, column)

