"""The Occurrences view's table: one row per individual (a track across a night's images) of
``services.tracking.night_occurrences``. A plain-Python list behind a QAbstractTableModel, reset
on each load (no Qt item objects to create or tear down)."""

from __future__ import annotations

from PySide6.QtCore import QAbstractTableModel, QModelIndex, Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication

COLUMNS = ("Individual", "Label", "Score", "Frames", "First seen", "Last seen", "Fixture")
TIPS = ("The occurrence's number in the catalogue (the occurrence_id of the exports)",
        "The individual's label: a score-weighted vote over its detections",
        "The vote's score", "Images it was detected in (its detections)",
        "Camera time of its first detection", "Camera time of its last detection",
        "Fixtures (screws, stains, labels at the same place night after night) are left out "
        "of every count")
OCCURRENCE_ROLE = Qt.ItemDataRole.UserRole


class OccurrencesModel(QAbstractTableModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list = []
        self.label_threshold = 0.5

    def replace(self, rows: list, label_threshold: float) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.label_threshold = label_threshold
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal or not 0 <= section < len(COLUMNS):
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole:
            return TIPS[section]
        return None

    def identified(self, row) -> bool:
        return row.label is not None and (row.label_score or 0.0) >= self.label_threshold

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        r, col = self.rows[index.row()], index.column()
        if role == OCCURRENCE_ROLE:
            return r
        if role == Qt.ItemDataRole.DisplayRole:
            return self._text(r, col)
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (0, 2, 3):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ForegroundRole and (r.fixture or (col == 1 and not self.identified(r))):
            return QApplication.palette().brush(QPalette.ColorRole.PlaceholderText)
        if role == Qt.ItemDataRole.ToolTipRole:
            return self._tip(r, col)
        return None

    def _text(self, r, col: int) -> str:
        if col == 0:
            return f"{r.id}"
        if col == 1:
            if r.label is None:
                return "Not identified"
            return r.label if self.identified(r) else f"({r.label})"
        if col == 2:
            return "" if r.label_score is None else f"{r.label_score:.2f}"
        if col == 3:
            return f"{r.n_detections:,}"
        if col in (4, 5):
            when = r.first_seen if col == 4 else r.last_seen
            # the night is selected: its clock times are what tell individuals apart
            return "" if when is None else f"{when:%H:%M:%S}"
        if col == 6:
            if not r.fixture:
                return "no, by you" if r.fixture_reviewed else ""
            return "yes, by you" if r.fixture_reviewed else "yes"
        return ""

    def _tip(self, r, col: int) -> str | None:
        if col in (4, 5):
            when = r.first_seen if col == 4 else r.last_seen
            return None if when is None else f"{when:%a %d %b %Y %H:%M:%S}"
        if col == 1 and r.label is not None and not self.identified(r):
            return (f"The vote says {r.label} ({r.label_score:.2f}), below the classification "
                    f"threshold {self.label_threshold:.2f}: counted as not identified")
        if col == 6 and r.fixture:
            return r.fixture_reason or "Flagged as a fixture"
        if r.best_score is not None:
            return f"Best detection scores {r.best_score:.2f}; click to see it on its image"
        return None

    def row_of(self, occurrence_id: int) -> int:
        return next((i for i, r in enumerate(self.rows) if r.id == occurrence_id), -1)
