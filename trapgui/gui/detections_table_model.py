"""The detections table's model: SQLite rows fetched page by page, off the GUI thread.

Qt asks ``canFetchMore``/``fetchMore`` when the view nears the end of what is loaded; each page
is one keyset-paginated query (see ``ResultsService.fetch_detections``) run on the thread pool,
so neither opening a million-row catalogue nor scrolling through it blocks the window. Sorting
and filtering change the query and start again from the first page. Every reply carries the
query generation it was made for: replies for a query that has since changed are dropped.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt, Signal
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

from trapgui.gui.job_runner import job_runner
from trapgui.services.results_types import DetectionQuery, DetectionRow

# (header, sort key, tooltip)
COLUMNS = [
    ("#", "id", "Detection number (order in which detections were found)"),
    ("Night", "night", "Evening date of the night the image belongs to"),
    ("Time", "time", "Capture time of the image (camera clock)"),
    ("Image", "image", "Image file, relative to the trap folder"),
    ("Detection", "score", "Detector confidence that this box is an insect"),
    ("Moth?", "binary", "Moth / non-moth classifier: its label and confidence"),
    ("Label", "label", "Best label from the deepest classifier that ran"),
    ("Rank", "rank", "Taxonomic rank of the label (binary, order, species)"),
    ("Label score", "label_score", "Classifier confidence in the label"),
]
PAGE_SIZE = 500


def _fmt_score(value: float | None) -> str:
    return "" if value is None else f"{value:.2f}"


class DetectionsTableModel(QAbstractTableModel):
    """Read-only rows of :class:`DetectionRow`; ``total`` is counted separately (a COUNT over a
    million rows takes ~0.1 s, so it never holds up the first page)."""

    # no bool argument: PySide6 6.12 on Python 3.11 loses a reference to True/False on every
    # Python-side emit of a bool, and the interpreter aborts after a few hundred (see report)
    loadingChanged = Signal()  # is_loading() tells which way
    totalChanged = Signal(int)  # -1 while counting
    failed = Signal(str)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._query = DetectionQuery()
        self._rows: list[DetectionRow] = []
        self._exhausted = True  # nothing to fetch until a query is set
        self._fetching = False
        self._generation = 0
        self._refreshing = False
        self._refresh_again = False
        self.total = -1

    # -- query ------------------------------------------------------------------------------

    @property
    def query(self) -> DetectionQuery:
        return self._query

    def set_query(self, query: DetectionQuery) -> None:
        """Show ``query``'s rows from the first page (a new sort, filter or selection)."""
        self._query = query
        self._generation += 1
        self.beginResetModel()
        self._rows = []
        self._exhausted = False
        self._fetching = False
        self.endResetModel()
        self._count()
        self._fetch_page(first=True)

    def sort(self, column: int, order: Qt.SortOrder = Qt.AscendingOrder) -> None:
        key = COLUMNS[column][1]
        descending = order == Qt.DescendingOrder
        if key != self._query.sort or descending != self._query.descending:
            self.set_query(replace(self._query, sort=key, descending=descending))

    def refresh(self) -> None:
        """Re-read what is loaded (new results were committed). Rows already shown keep their
        place when they are still first; otherwise the model resets and the view restores its
        selection and scroll position by detection id."""
        if self._refreshing:
            self._refresh_again = True
            return
        self._refreshing = True
        generation, query = self._generation, self._query
        limit = len(self._rows) + PAGE_SIZE  # what is shown, plus room for what is new
        self._count()
        job_runner().call(
            lambda: self._services.results.fetch_detections(query, None, limit),
            lambda rows: self._refreshed(generation, limit, rows),
            self._on_refresh_error, context=self)

    def _refreshed(self, generation: int, limit: int, rows: list[DetectionRow]) -> None:
        self._refreshing = False
        if generation == self._generation:
            old = self._rows
            if len(rows) >= len(old) and all(a.id == b.id for a, b in zip(old, rows)):
                if old:
                    self._rows[: len(old)] = rows[: len(old)]
                    self.dataChanged.emit(self.index(0, 0),
                                          self.index(len(old) - 1, len(COLUMNS) - 1))
                if len(rows) > len(old):
                    self.beginInsertRows(QModelIndex(), len(old), len(rows) - 1)
                    self._rows.extend(rows[len(old):])
                    self.endInsertRows()
            else:
                self.beginResetModel()
                self._rows = rows
                self.endResetModel()
            self._exhausted = len(rows) < limit
        if self._refresh_again:
            self._refresh_again = False
            self.refresh()

    def _on_refresh_error(self, exc: BaseException) -> None:
        self._refreshing = False
        self.failed.emit(str(exc))

    def _count(self) -> None:
        generation, query = self._generation, self._query
        self.total = -1
        self.totalChanged.emit(-1)

        def done(n: int) -> None:
            if generation == self._generation:
                self.total = n
                self.totalChanged.emit(n)

        job_runner().call(lambda: self._services.results.count_detections(query), done,
                          lambda exc: self.failed.emit(str(exc)), context=self)

    # -- incremental fetching ---------------------------------------------------------------

    def canFetchMore(self, parent=QModelIndex()) -> bool:
        return not parent.isValid() and not self._exhausted and not self._fetching

    def fetchMore(self, parent=QModelIndex()) -> None:
        if self.canFetchMore(parent):
            self._fetch_page(first=False)

    def is_loading(self) -> bool:
        return self._fetching

    def _fetch_page(self, first: bool) -> None:
        self._fetching = True
        self.loadingChanged.emit()
        generation, query = self._generation, self._query
        after = self._rows[-1] if not first and self._rows else None

        def done(rows: list[DetectionRow]) -> None:
            if generation != self._generation:
                return  # a reply for a query the user has since changed
            self._fetching = False
            self._exhausted = len(rows) < PAGE_SIZE
            if rows:
                start = len(self._rows)
                self.beginInsertRows(QModelIndex(), start, start + len(rows) - 1)
                self._rows.extend(rows)
                self.endInsertRows()
            self.loadingChanged.emit()

        def error(exc: BaseException) -> None:
            if generation == self._generation:
                self._fetching = False
                self._exhausted = True
                self.loadingChanged.emit()
                self.failed.emit(str(exc))

        job_runner().call(
            lambda: self._services.results.fetch_detections(query, after, PAGE_SIZE),
            done, error, context=self)

    # -- Qt model API -----------------------------------------------------------------------

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(COLUMNS)

    def row(self, index: int) -> DetectionRow:
        return self._rows[index]

    def row_of_detection(self, detection_id: int) -> int:
        for i, r in enumerate(self._rows):
            if r.id == detection_id:
                return i
        return -1

    def headerData(self, section, orientation, role=Qt.DisplayRole):
        if orientation != Qt.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.DisplayRole:
            return COLUMNS[section][0]
        if role == Qt.ToolTipRole:
            return COLUMNS[section][2]
        return None

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        r = self._rows[index.row()]
        col = index.column()
        if role == Qt.DisplayRole:
            return self._display(r, col)
        if role == Qt.TextAlignmentRole and col in (0, 4, 8):
            return int(Qt.AlignRight | Qt.AlignVCenter)
        if role == Qt.ForegroundRole and col in (6, 7, 8) and self._label_below(r):
            # a label below the classification threshold is shown, but dimmed
            return QApplication.palette().brush(QPalette.Disabled, QPalette.Text)
        if role == Qt.ToolTipRole and col in (6, 7, 8) and self._label_below(r):
            return "Below the classification threshold"
        if role == Qt.UserRole:
            return r.id
        return None

    def _label_below(self, r: DetectionRow) -> bool:
        return r.top_score is not None and r.top_score < self._label_threshold

    _label_threshold = 0.0

    def set_label_threshold(self, value: float) -> None:
        self._label_threshold = value
        if self._rows:
            self.dataChanged.emit(self.index(0, 6), self.index(len(self._rows) - 1, 8))

    @staticmethod
    def _display(r: DetectionRow, col: int):
        if col == 0:
            return str(r.id)
        if col == 1:
            return r.night_date.isoformat() if r.night_date else "undated"
        if col == 2:
            return r.captured_at.strftime("%H:%M:%S") if r.captured_at else ""
        if col == 3:
            return r.image_path
        if col == 4:
            return _fmt_score(r.score)
        if col == 5:
            if r.binary_label is None:
                return ""
            word = "moth" if r.binary_label == "moth" else "non-moth"
            return f"{word} {_fmt_score(r.binary_score)}"
        if col == 6:
            return r.top_label or ""
        if col == 7:
            return r.top_rank or ""
        if col == 8:
            return _fmt_score(r.top_score)
        return None

