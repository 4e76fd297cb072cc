"""The Detections tab: a filter bar over the detections table.

Filters (label, rank, below-threshold rows) and sorting all become one ``DetectionQuery``;
live refreshes during a run are throttled to one per second and keep the selected detection
and the scroll position.
"""

from __future__ import annotations

from dataclasses import replace

from PySide6.QtCore import QStringListModel, Qt, QTimer, Signal, Slot
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QCompleter,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from trapgui.gui.detections_table_model import COLUMNS, DetectionsTableModel
from trapgui.gui.job_runner import job_runner
from trapgui.services.results_types import DetectionQuery

REFRESH_INTERVAL_MS = 1000
_RANKS = [("Any rank", None), ("Species", "species"), ("Order", "order"),
          ("Moth / non-moth", "binary")]


class DetectionsView(QWidget):
    openImageRequested = Signal(int, int)  # image id, detection id
    detectionSelected = Signal(int, int)  # image id, detection id

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._deployment_id: int | None = None
        self._night_ids: list[int] = []
        self._det_threshold = 0.5
        self._cls_threshold = 0.5
        self._exact_label: str | None = None
        self._restore: tuple[int | None, int] | None = None

        self.model = DetectionsTableModel(services, self)
        self.table = QTableView(self)
        self.table.setModel(self.model)
        self.table.setSortingEnabled(True)
        self.table.horizontalHeader().setSortIndicator(0, Qt.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.verticalHeader().setDefaultSectionSize(
            self.table.fontMetrics().height() + 8)  # uniform rows: no per-row size queries
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.Interactive)
        header.setStretchLastSection(False)
        header.setSectionResizeMode(3, QHeaderView.Stretch)  # the image name takes the slack
        for col, width in enumerate((70, 90, 80, 240, 80, 110, 220, 70, 90)):
            self.table.setColumnWidth(col, width)
        self.table.setToolTip("Double-click a row to open its image at that detection")
        self.table.doubleClicked.connect(self._on_double_click)
        self.table.activated.connect(self._on_double_click)  # Enter key
        self.table.selectionModel().currentRowChanged.connect(self._on_current)

        self.label_edit = QLineEdit(self)
        self.label_edit.setPlaceholderText("Filter by label…")
        self.label_edit.setClearButtonEnabled(True)
        self.label_edit.setToolTip("Show only detections whose label contains this text "
                                   "(labels below the classification threshold are left out)")
        self._labels = QStringListModel(self)
        completer = QCompleter(self._labels, self)
        completer.setCaseSensitivity(Qt.CaseInsensitive)
        completer.setFilterMode(Qt.MatchContains)
        self.label_edit.setCompleter(completer)
        self._label_timer = QTimer(self, singleShot=True, interval=250)
        self._label_timer.timeout.connect(self._apply_label_text)
        self.label_edit.textEdited.connect(lambda _t: self._label_timer.start())
        self.label_edit.returnPressed.connect(self._apply_label_text)

        self.rank_combo = QComboBox(self)
        for text, value in _RANKS:
            self.rank_combo.addItem(text, value)
        self.rank_combo.setToolTip("Show only labels of this taxonomic rank")
        self.rank_combo.currentIndexChanged.connect(lambda _i: self._requery())

        self.below_check = QCheckBox("Include below threshold", self)
        self.below_check.setToolTip("Also list detections scoring below the detection threshold")
        self.below_check.toggled.connect(lambda _c: self._requery())

        self.status = QLabel(self)
        self.status.setTextInteractionFlags(Qt.TextSelectableByMouse)

        bar = QHBoxLayout()
        bar.addWidget(self.label_edit, 2)
        bar.addWidget(self.rank_combo)
        bar.addWidget(self.below_check)
        bar.addStretch(1)
        bar.addWidget(self.status)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(bar)
        layout.addWidget(self.table)

        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_INTERVAL_MS)
        self._refresh_timer.timeout.connect(self._do_refresh)
        self.model.modelAboutToBeReset.connect(self._remember_position)
        self.model.modelReset.connect(self._restore_position)
        self.model.totalChanged.connect(lambda _n: self._update_status())
        self.model.rowsInserted.connect(lambda *_a: self._update_status())
        self.model.rowsInserted.connect(lambda *_a: self._update_columns())
        self.model.modelReset.connect(self._update_columns)
        self.model.loadingChanged.connect(self._update_status)
        self.model.failed.connect(self._on_failed)
        self._error: str | None = None

    # -- the interface every results view implements ----------------------------------------

    @Slot(object, list)
    def set_selection(self, deployment_id: int | None, night_ids: list[int]) -> None:
        self._deployment_id = deployment_id
        self._night_ids = list(night_ids)
        self._requery()
        self._load_labels()

    @Slot(float, float)
    def set_threshold(self, detection: float, classification: float) -> None:
        self._det_threshold = detection
        self._cls_threshold = classification
        self.model.set_label_threshold(classification)
        self._requery()

    @Slot()
    def refresh(self) -> None:
        """New results were committed: re-read within a second (at most once a second)."""
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    @Slot(str)
    def filter_label(self, label: str) -> None:
        """Show exactly this label (from the species summary)."""
        self._exact_label = label or None
        self.label_edit.setText(label)
        self._requery()

    set_label_filter = filter_label  # the name the main window looks for

    # -- internals --------------------------------------------------------------------------

    def current_query(self) -> DetectionQuery:
        old = self.model.query
        text = self.label_edit.text().strip()
        exact = self._exact_label if self._exact_label == text else None
        return DetectionQuery(
            deployment_id=self._deployment_id,
            night_ids=tuple(self._night_ids),
            min_score=0.0 if self.below_check.isChecked() else self._det_threshold,
            min_label_score=self._cls_threshold,
            label=exact,
            label_contains=None if exact is not None else (text or None),
            rank=self.rank_combo.currentData(),
            sort=old.sort,
            descending=old.descending,
        )

    def _apply_label_text(self) -> None:
        self._label_timer.stop()
        self._requery()

    def _requery(self) -> None:
        query = self.current_query()
        if query != self.model.query or self.model.rowCount() == 0:
            self._error = None
            self.model.set_query(query)

    def _do_refresh(self) -> None:
        self.model.refresh()

    def _load_labels(self) -> None:
        query = replace(self.current_query(), label=None, label_contains=None)
        job_runner().call(lambda: self._services.results.labels(query),
                          self._labels.setStringList, lambda exc: None, context=self)

    def _remember_position(self) -> None:
        current = self.table.currentIndex()
        det = self.model.row(current.row()).id if current.isValid() else None
        self._restore = (det, self.table.verticalScrollBar().value())

    def _restore_position(self) -> None:
        if self._restore is None:
            return
        det, scroll = self._restore
        self._restore = None
        # only a live refresh keeps the position; a new query starts at the top
        if self.model.rowCount() == 0:
            return
        if det is not None:
            row = self.model.row_of_detection(det)
            if row >= 0:
                self.table.selectRow(row)
        self.table.verticalScrollBar().setValue(scroll)

    def _update_columns(self) -> None:
        """Without any classifier result the label columns are only empty space: hide them
        (the status line says why) until a labelled row shows up."""
        rows = min(self.model.rowCount(), 2000)
        labelled = rows == 0 or any(
            self.model.row(i).binary_label is not None or self.model.row(i).top_label is not None
            for i in range(rows))
        self._labelled = labelled
        for col in range(5, len(COLUMNS)):
            self.table.setColumnHidden(col, not labelled)
        self._update_status()

    _labelled = True

    def _on_double_click(self, index) -> None:
        if index.isValid():
            r = self.model.row(index.row())
            self.openImageRequested.emit(r.image_id, r.id)

    def _on_current(self, current, _previous) -> None:
        if current.isValid():
            r = self.model.row(current.row())
            self.detectionSelected.emit(r.image_id, r.id)

    def _on_failed(self, message: str) -> None:
        self._error = message
        self._update_status()

    def _update_status(self) -> None:
        if self._error:
            self.status.setText(f"Could not read the detections: {self._error}")
            return
        total, shown = self.model.total, self.model.rowCount()
        if total < 0:
            text = "Counting…" if shown == 0 else f"{shown:,} shown, counting…"
        elif total == 0:
            text = ("No detections yet" if not self.model.is_loading() else "Loading…")
        else:
            text = f"{total:,} detections" + (f" ({shown:,} loaded)" if shown < total else "")
        thr = ("all scores" if self.below_check.isChecked()
               else f"score ≥ {self._det_threshold:.2f}")
        hint = "" if self._labelled else " · not classified (no classifier has run on them)"
        self.status.setText(f"{text} · {thr}{hint}")


__all__ = ["DetectionsView", "COLUMNS"]
