"""The review grid's model: a plain-Python list of a night's occurrences (``ReviewRow``s of
``services.review``) and their best crops, filtered and sorted in Python.

Like the crop strip, it creates no Qt item objects: a reload resets the model over a new
list, an action's answer replaces rows in place (``dataChanged``), so the grid keeps its
cursor and the person's place. Reviewed occurrences stay visible under the "not yet
reviewed" filter until the next reload: hiding what one just confirmed loses one's place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from PySide6.QtCore import QAbstractListModel, QModelIndex, Qt
from PySide6.QtGui import QPixmap

ROW_ROLE = Qt.ItemDataRole.UserRole + 1  # the ReviewRow
CROP_ROLE = Qt.ItemDataRole.UserRole + 2  # its QPixmap, or None while loading

SORTS = {
    "time": ("First seen", lambda r: (r.first_seen is None, r.first_seen, r.id)),
    "label": ("Label", lambda r: ((r.final_label or "~").lower(), -(r.machine_score or 0), r.id)),
    "confidence": ("Confidence (lowest first)", lambda r: (r.machine_score if r.machine_score
                                                           is not None else -1.0, r.id)),
    # the key is the model's: the order comes from services.review.similarity_order
    "appearance": ("Appearance (look-alikes together)", None),
}


class ReviewModel(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list = []
        self._all: list = []
        self._at_all: dict[int, int] = {}
        self._at_shown: dict[int, int] = {}
        self.reviewed_count = 0
        self._crops: dict[int, QPixmap] = {}  # best detection id -> crop
        # best detection id -> occurrences listed with it: a crop's arrival repaints those
        # rows without walking the night
        self._with_crop: dict[int, set[int]] = {}
        self._unreviewed_only = False
        self._checks_only = False  # only decisions of another configuration to look at
        self.checks_count = 0
        self._sort = "time"
        self._appearance: dict[int, int] = {}  # occurrence id -> place in the appearance order
        self.crop_wanted: Callable[[object], None] | None = None

    # ---- contents -----------------------------------------------------------------------
    def set_rows(self, rows: Sequence) -> None:
        self._all = list(rows)
        self._rebuild()

    def replace_rows(self, rows: Sequence) -> None:
        """The night read again (a run, re-tracking, a correction elsewhere): what is listed now
        stays listed under the "not yet reviewed" filter, as after an action."""
        keep = set(self._at_shown)
        self._all = list(rows)
        self._rebuild(keep)

    def set_filter(self, unreviewed_only: bool) -> None:
        self._unreviewed_only = unreviewed_only
        self._rebuild()

    def set_checks_only(self, checks_only: bool) -> None:
        """Only the occurrences a decision of another model configuration could not be
        carried onto ("Carried decisions to check"); like the other filter, what one decides
        now stays until the next reload."""
        self._checks_only = checks_only
        self._rebuild()

    def set_sort(self, key: str) -> None:
        self._sort = key if key in SORTS else "time"
        self._rebuild()

    def set_appearance_order(self, occurrence_ids: Sequence[int]) -> None:
        """The appearance sort's order (occurrences without an embedding follow, by time)."""
        self._appearance = {occ: k for k, occ in enumerate(occurrence_ids)}
        if self._sort == "appearance":
            self._rebuild(set(self._at_shown))  # a new order hides nothing listed

    def has_appearance_order(self) -> bool:
        return bool(self._appearance)

    def _sort_key(self):
        if self._sort != "appearance":
            return SORTS[self._sort][1]
        rank, by_time = self._appearance, SORTS["time"][1]
        return lambda r: (r.id not in rank, rank.get(r.id, 0), *by_time(r))

    def _rebuild(self, keep: set[int] = frozenset()) -> None:
        shown = [r for r in self._all
                 if r.id in keep or (not (self._unreviewed_only and r.reviewed)
                                     and not (self._checks_only and not r.needs_check))]
        shown.sort(key=self._sort_key())
        self.beginResetModel()
        self.rows = shown
        self._index()
        self.endResetModel()

    def _index(self) -> None:
        # id -> position, so an action's answer costs O(rows it touched), not O(night)
        self._at_all = {r.id: k for k, r in enumerate(self._all)}
        self._at_shown = {r.id: k for k, r in enumerate(self.rows)}
        self.reviewed_count = sum(1 for r in self._all if r.reviewed)
        self._with_crop = {}
        for r in self.rows:
            if r.best_detection_id is not None:
                self._with_crop.setdefault(r.best_detection_id, set()).add(r.id)
        self.checks_count = sum(1 for r in self._all if r.needs_check)

    def update_rows(self, fresh: Iterable, gone: Iterable[int] = ()) -> None:
        """Rows an action changed, in place; ``gone``: occurrences no longer listed (merged
        away, or without detections). New ones (a split) are appended."""
        by_id = {r.id: r for r in fresh}
        gone = set(gone) - set(by_id)
        if gone or any(i not in self._at_shown for i in by_id):
            self._all = ([by_id.get(r.id, r) for r in self._all if r.id not in gone]
                         + [r for i, r in by_id.items() if i not in self._at_all])
            shown = self._at_shown
            self.beginResetModel()
            self.rows = ([by_id.get(r.id, r) for r in self.rows if r.id not in gone]
                         + [r for i, r in by_id.items() if i not in shown])
            self._index()
            self.endResetModel()
            return
        for occ_id, r in by_id.items():
            k = self._at_all[occ_id]
            self.reviewed_count += int(r.reviewed) - int(self._all[k].reviewed)
            self.checks_count += int(bool(r.needs_check)) - int(bool(self._all[k].needs_check))
            old = self._all[k]
            self._all[k] = r
            if old.best_detection_id != r.best_detection_id:
                self._with_crop.get(old.best_detection_id, set()).discard(occ_id)
                if r.best_detection_id is not None:
                    self._with_crop.setdefault(r.best_detection_id, set()).add(occ_id)
            row = self._at_shown[occ_id]
            self.rows[row] = r
            index = self.index(row)
            self.dataChanged.emit(index, index)

    def all_rows(self) -> list:
        return list(self._all)

    def row_of(self, occurrence_id: int) -> int:
        return self._at_shown.get(occurrence_id, -1)

    # ---- crops --------------------------------------------------------------------------
    def set_crop(self, detection_id: int, pixmap: QPixmap) -> None:
        self._crops[detection_id] = pixmap
        for occ_id in self._with_crop.get(detection_id, ()):
            index = self.index(self._at_shown[occ_id])
            self.dataChanged.emit(index, index, [CROP_ROLE])

    def has_crop(self, detection_id: int | None) -> bool:
        return detection_id in self._crops

    def tile(self, row: int) -> tuple:
        """(ReviewRow, crop or None while loading) of a listed row, for the delegate's paint:
        ``data``'s two roles without two round trips through Qt. A crop not loaded yet is
        asked for (off the GUI thread)."""
        if not 0 <= row < len(self.rows):
            return None, None
        r = self.rows[row]
        crop = self._crops.get(r.best_detection_id)
        if crop is None and self.crop_wanted is not None and r.best_detection_id is not None:
            self.crop_wanted(r)
        return r, crop

    # ---- QAbstractListModel -------------------------------------------------------------
    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        r = self.rows[index.row()]
        if role == ROW_ROLE:
            return r
        if role == CROP_ROLE:
            crop = self._crops.get(r.best_detection_id)
            if crop is None and self.crop_wanted is not None and r.best_detection_id is not None:
                self.crop_wanted(r)  # painted, not loaded yet: ask for it (off the GUI thread)
            return crop
        if role == Qt.ItemDataRole.DisplayRole:
            return r.final_label or "unidentified"
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(r)
        return None


def tooltip(r) -> str:
    machine = (f"{r.machine_label} ({r.machine_score:.2f})" if r.machine_label and
               r.machine_score is not None else r.machine_label or "no label")
    lines = [f"Occurrence {r.id} · {r.n_detections} detection{'s' if r.n_detections != 1 else ''}",
             f"Machine: {machine}"]
    if r.review_state:
        who = f" by {r.identified_by}" if r.identified_by else ""
        lines.append(f"Review: {r.review_state}{who}"
                     + (f" as {r.review_label}" if r.review_label else ""))
    if r.carried_from:
        lines.append(f"Decision carried from occurrence {r.carried_from} of another model "
                     "configuration (the same insect, matched by its boxes)")
    if r.fixture:
        lines.append("Fixture" + (" (a person's decision)" if r.fixture_reviewed else ""))
    if r.needs_check:
        lines.append(r.needs_check)
    if r.first_seen:
        lines.append(f"First seen {r.first_seen:%H:%M:%S}")
    return "\n".join(lines)
