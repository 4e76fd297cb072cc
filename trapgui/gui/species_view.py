"""The Species tab: for the selected nights, how many individuals (insects tracked across a
night's images, fixtures left out) of each taxon were caught, in all and per night, with their
detections and MaxN beside them, each with a thumbnail of its best crop. The counts are
``db.counts`` (``services.tracking.species_summary``): the numbers of ``trapgui nights`` and
of every export at the same thresholds. Clicking a row lists the taxon's detections.

The thumbnails are decoded one by one on the thread pool (only the crop's region of the 4K
image is decoded) and cached by detection id.
"""

from __future__ import annotations

from PySide6.QtCore import QSize, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QIcon, QPixmap, QStandardItem, QStandardItemModel
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from trapgui.gui.image_loader import load_crop
from trapgui.gui.job_runner import job_runner
from trapgui.services.tracking_types import UNIDENTIFIED, TaxonIndividuals

THUMB = 56
REFRESH_INTERVAL_MS = 2000
MAX_NIGHT_COLUMNS = 14  # beyond this the per-night columns are noise; the total stays
LABEL_ROLE = Qt.UserRole + 1
FIXED_COLUMNS = ["Taxon", "Rank", "Individuals", "Detections", "MaxN"]
NIGHT_COL0 = len(FIXED_COLUMNS)


class _CountItem(QStandardItem):
    """A number that sorts as a number."""

    def __init__(self, n: int):
        super().__init__()
        self.setData(n, Qt.DisplayRole)
        self.setTextAlignment(Qt.AlignRight | Qt.AlignVCenter)
        self.setEditable(False)


def _header_item(title: str, tip: str) -> QStandardItem:
    """Header items are made here, not by setHorizontalHeaderLabels: PySide kept the wrapper of
    a model-made item it had handed out after model.clear() deleted the item, and a later Qt
    object at that address came back as that stale QStandardItem (a selectionModel(), in CI)."""
    item = QStandardItem(title)
    item.setToolTip(tip)
    return item


class SpeciesSummaryView(QWidget):
    showDetectionsRequested = Signal(str)  # label

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._deployment_id: int | None = None
        self._night_ids: list[int] = []
        self._det_threshold = 0.5
        self._cls_threshold = 0.5
        self._generation = 0
        self._thumbs: dict[int, QPixmap] = {}
        self._counts: list[TaxonIndividuals] = []

        self.summary = QLabel("Select a trap or nights to see what was found.", self)
        self.summary.setWordWrap(True)
        self.model = QStandardItemModel(self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setIconSize(QSize(THUMB, THUMB))
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.setSortingEnabled(True)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(THUMB + 6)
        self.table.setToolTip("Click a row to list its detections")
        self.table.clicked.connect(self._on_clicked)
        self.table.activated.connect(self._on_clicked)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_INTERVAL_MS)
        self._refresh_timer.timeout.connect(self._load)

    # -- the interface every results view implements ----------------------------------------

    @Slot(object, list)
    def set_selection(self, deployment_id: int | None, night_ids: list[int]) -> None:
        self._deployment_id = deployment_id
        self._night_ids = list(night_ids)
        self._load()

    @Slot(float, float)
    def set_threshold(self, detection: float, classification: float) -> None:
        self._det_threshold, self._cls_threshold = detection, classification
        self._load()

    @Slot()
    def refresh(self) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    # -- loading ----------------------------------------------------------------------------

    def _load(self) -> None:
        self._refresh_timer.stop()
        self._generation += 1
        gen = self._generation
        dep, nights = self._deployment_id, list(self._night_ids)
        det, cls = self._det_threshold, self._cls_threshold
        if dep is None and not nights:
            self._show(gen, ([], []))
            return
        services = self._services

        def query():
            pid = services.catalogue.current_pipeline_id()
            return (services.tracking.species_summary(pid, dep, nights, min_score=det,
                                                      min_label_score=cls),
                    services.results.nights(nights))

        job_runner().call(query, lambda r: self._show(gen, r), self._failed, context=self)

    def _failed(self, exc: BaseException) -> None:
        self.summary.setText(f"Could not read the species counts: {exc}")

    def _show(self, gen: int, result) -> None:
        if gen != self._generation:
            return
        counts, nights = result
        self._counts = counts
        selected = self.selected_label()
        header = self.table.horizontalHeader()
        sort_col, sort_order = header.sortIndicatorSection(), header.sortIndicatorOrder()
        night_cols = nights if len(nights) <= MAX_NIGHT_COLUMNS else []
        self.model.clear()
        det, cls = self._det_threshold, self._cls_threshold
        tips = (f"The taxon of the individuals (their label scores ≥ {cls:.2f}, the "
                "classification threshold)", "The taxon's rank",
                "Individuals: insects tracked across a night's images (fixtures left out) with "
                f"a detection scoring ≥ {det:.2f}, summed over the nights",
                f"Their detections scoring ≥ {det:.2f}: one insect resting on the sheet is "
                "detected in many images", "MaxN: the most individuals of the taxon in any "
                "one image of a night")
        tips += tuple(f"Individuals on the night of {n.date:%A %d %B %Y}" for n in night_cols)
        titles = FIXED_COLUMNS + [f"{n.date:%d %b}" for n in night_cols]
        for col, (title, tip) in enumerate(zip(titles, tips)):
            self.model.setHorizontalHeaderItem(col, _header_item(title, tip))
        for c in counts:
            label_item = QStandardItem(c.label)
            label_item.setEditable(False)
            label_item.setData(c.label, LABEL_ROLE)
            if not c.identified:
                label_item.setToolTip("Individuals with no label above the classification "
                                      "threshold (or no classifier run)")
            elif c.best_score is not None:
                label_item.setToolTip(f"{c.label}: best individual's label scores "
                                      f"{c.best_score:.2f}")
            if c.best_detection_id in self._thumbs:
                label_item.setIcon(QIcon(self._thumbs[c.best_detection_id]))
            rank_item = QStandardItem(c.rank or "")
            rank_item.setEditable(False)
            row = [label_item, rank_item, _CountItem(c.individuals), _CountItem(c.detections),
                   _CountItem(c.max_n)]
            row += [_CountItem(c.per_night.get(n.id, 0)) for n in night_cols]
            self.model.appendRow(row)
        header.setSectionResizeMode(0, QHeaderView.Stretch)
        for col in range(1, self.model.columnCount()):
            header.setSectionResizeMode(col, QHeaderView.ResizeToContents)
        if 0 <= sort_col < self.model.columnCount() and sort_col != 0:
            self.table.sortByColumn(sort_col, sort_order)
        else:
            header.setSortIndicator(-1, Qt.AscendingOrder)  # the service's order: most first
        if selected:
            self._select_label(selected)
        total = sum(c.individuals for c in counts)
        detections = sum(c.detections for c in counts)
        taxa = sum(1 for c in counts if c.identified)
        n_nights = len(nights) if nights else "all"
        thresholds = f"detection score ≥ {det:.2f}, label score ≥ {cls:.2f}"
        if not counts:
            text = ("No individuals above the thresholds in the selected nights yet (nights "
                    "are tracked once their images are processed).")
        elif taxa == 0:
            text = (f"{total:,} individuals ({detections:,} detections; {thresholds}), none "
                    "identified yet. To name them, choose a species or order classifier in "
                    "Tools ▸ Settings and get it in Tools ▸ Models, then process again.")
        else:
            text = (f"{taxa} tax{'a' if taxa != 1 else 'on'} · {total:,} individuals "
                    f"({detections:,} detections; {thresholds}) · {n_nights} "
                    f"night{'s' if n_nights != 1 else ''}")
        self.summary.setText(text)
        self._load_thumbnails(gen)

    def _load_thumbnails(self, gen: int) -> None:
        todo = [c for c in self._counts
                if c.best_detection_id is not None and c.best_detection_id not in self._thumbs]
        if not todo or gen != self._generation:
            return
        c = todo[0]
        box = c.best_box
        path = c.best_image_path

        def done(image) -> None:
            self._thumbs[c.best_detection_id] = QPixmap.fromImage(image)
            self._set_icon(c)
            self._load_thumbnails(gen)

        def failed(_exc) -> None:
            self._thumbs[c.best_detection_id] = QPixmap()  # missing file: no thumbnail
            self._load_thumbnails(gen)

        # one at a time: a hundred 4K decodes at once would starve the detail views
        job_runner().call(lambda: load_crop(path, box, THUMB),
                          done, failed, context=self)

    def _set_icon(self, c: TaxonIndividuals) -> None:
        for row in range(self.model.rowCount()):
            item = self.model.item(row, 0)
            rank = self.model.item(row, 1).text()
            if item.data(LABEL_ROLE) == c.label and rank == (c.rank or ""):
                item.setIcon(QIcon(self._thumbs[c.best_detection_id]))

    # -- selection --------------------------------------------------------------------------

    def selected_label(self) -> str | None:
        index = self.table.currentIndex()
        if not index.isValid():
            return None
        return self.model.item(index.row(), 0).data(LABEL_ROLE)

    def _select_label(self, label: str) -> None:
        for row in range(self.model.rowCount()):
            if self.model.item(row, 0).data(LABEL_ROLE) == label:
                self.table.selectRow(row)
                return

    def labels(self) -> list[str]:
        return [self.model.item(r, 0).data(LABEL_ROLE) for r in range(self.model.rowCount())]

    def _on_clicked(self, index) -> None:
        if not index.isValid():
            return
        label = self.model.item(index.row(), 0).data(LABEL_ROLE)
        if label and label != UNIDENTIFIED:
            self.showDetectionsRequested.emit(label)
