"""A strip above the result tabs when the detection threshold is below the classification
floor: how many boxes at that threshold are "not classified yet", and "Classify them".

A run stores boxes from the detector's storage floor but classifies only those from its
classification floor (docs/engine.md, "Floors"). Lowering the detection threshold below that
floor shows boxes without labels; this bar says how many (``ProcessingService.
classification_coverage``, asked off the GUI thread) and classifies them on demand
(``ProcessingService.classify_below_floor_job`` on the job runner, with progress and Cancel).
It takes part in the window's views protocol (``set_selection``, ``set_threshold``,
``refresh``) so it counts over the same nights and threshold as the views, and it emits
``resultsChanged(image_ids, detections)`` for every committed batch so the views refresh.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from trapgui.core.errors import Cancelled, TrapguiError
from trapgui.core.jobs import BatchCommitted, RunProgress
from trapgui.gui.error_dialog import show_error
from trapgui.gui.job_runner import job_runner

log = logging.getLogger("trapgui.gui")
QUERY_DELAY_MS = 150  # a spin box held down asks once, not once per step


class UnclassifiedBar(QFrame):
    """Hidden unless boxes at the detection threshold wait for classification (or are being
    classified)."""

    resultsChanged = Signal(list, int)  # image ids, detections: as the run controller's committed
    classified = Signal(object)  # pipeline.classify_below_floor.ClassifySummary

    def __init__(self, services, parent: QWidget | None = None):
        super().__init__(parent)
        self.services = services
        self.setObjectName("unclassifiedBar")
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setAutoFillBackground(True)
        self.setBackgroundRole(self.backgroundRole().AlternateBase)
        self._deployment_id: int | None = None
        self._night_ids: list[int] = []
        self._threshold = services.settings.detection_threshold
        self._asked = 0  # number of the latest coverage query: older answers are dropped
        self.coverage = None  # the latest db.unclassified.ClassificationCoverage shown
        self.handle = None  # the classification job while it runs
        self._note = ""  # what the last job could not do (images it could not read)

        self.message = QLabel(self)
        self.message.setObjectName("unclassifiedMessage")
        self.message.setWordWrap(True)
        self.progress = QProgressBar(self)
        self.progress.setMaximumWidth(220)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.classify_button = QPushButton("Classify them", self)
        self.classify_button.setObjectName("classifyBelowFloorButton")
        self.classify_button.setToolTip("Classify these boxes now with the run's classifiers, "
                                        "in the background; nothing is detected again")
        self.classify_button.clicked.connect(self.classify)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setToolTip("Stop after the images in hand; what is classified stays")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.hide()
        layout = QHBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addWidget(self.message, 1)
        layout.addWidget(self.progress)
        layout.addWidget(self.classify_button)
        layout.addWidget(self.cancel_button)
        self._query_timer = QTimer(self, singleShot=True, interval=QUERY_DELAY_MS)
        self._query_timer.timeout.connect(self._ask)
        self.hide()

    # ---- the window's views protocol ------------------------------------------------------
    def set_selection(self, deployment_id: int | None, night_ids: list[int]) -> None:
        self._deployment_id, self._night_ids = deployment_id, list(night_ids)
        self._query_timer.start()

    def set_threshold(self, detection: float, classification: float) -> None:
        self._threshold = detection
        self._query_timer.start()

    def refresh(self) -> None:
        self._query_timer.start()

    @property
    def running(self) -> bool:
        return self.handle is not None and self.handle.running

    # ---- how many are not classified -------------------------------------------------------
    def _scope(self) -> dict:
        if self._night_ids:
            return {"night_ids": tuple(self._night_ids)}
        return {"deployment_id": self._deployment_id}

    def _scope_words(self) -> str:
        if self._night_ids:
            n = len(self._night_ids)
            return "in the selected night" if n == 1 else f"in the {n} selected nights"
        return "of this trap" if self._deployment_id is not None else "in the catalogue"

    def _ask(self) -> None:
        self._asked += 1
        number, threshold, scope = self._asked, self._threshold, self._scope()
        processing = self.services.processing
        job_runner().call(lambda: processing.classification_coverage(threshold, **scope),
                          lambda cover: self._show(number, cover),
                          lambda exc: log.warning("counting unclassified boxes failed: %s", exc),
                          context=self, name="counting boxes not classified yet")

    def _show(self, number: int, cover) -> None:
        if number != self._asked:
            return  # the threshold or the selection changed meanwhile
        self.coverage = cover
        if self.running:
            return  # the job's progress owns the bar until it ends
        waiting = cover.below_classification_floor and cover.unclassified > 0
        if not waiting:
            self.hide()
            return
        boxes = "box" if cover.unclassified == 1 else "boxes"
        text = (f"{cover.unclassified:,} {boxes} scoring {cover.threshold:.2f} or more "
                f"{self._scope_words()} {'is' if cover.unclassified == 1 else 'are'} not "
                f"classified yet: this model configuration classifies from "
                f"{cover.classification_floor:.2f}.")
        if cover.below_storage_floor:
            text += f" Boxes below {cover.storage_floor:.2f} were not stored."
        if self._note:
            text += " " + self._note
        self.message.setText(text)
        self.classify_button.setEnabled(True)
        self.classify_button.show()
        self.progress.hide()
        self.cancel_button.hide()
        self.show()

    # ---- classifying them ------------------------------------------------------------------
    def classify(self) -> None:
        if self.running:
            return
        threshold, scope = self._threshold, self._scope()
        processing = self.services.processing

        def job(emit, control):  # the job reads the catalogue: built on the job's thread
            return processing.classify_below_floor_job(threshold, **scope)(emit, control)

        self.classify_button.hide()
        self.progress.setRange(0, 0)  # busy until the first progress: loading the classifiers
        self.progress.setFormat("loading the classifiers…")
        self.progress.show()
        self.cancel_button.setEnabled(True)
        self.cancel_button.show()
        self.message.setText(f"Classifying the boxes scoring {threshold:.2f} or more "
                             f"{self._scope_words()}…")
        self.handle = job_runner().start(job, name="classifying boxes below the floor",
                                         on_event=self._on_event, on_done=self._done,
                                         on_error=self._failed, context=self,
                                         low_priority=True)

    def cancel(self) -> None:
        if self.running:
            self.handle.cancel()
            self.cancel_button.setEnabled(False)
            self.progress.setFormat("stopping…")

    def _on_event(self, event) -> None:
        if isinstance(event, RunProgress) and event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.done + event.failed)
            self.progress.setFormat(f"%v / %m images · {event.detections:,} boxes")
        elif isinstance(event, BatchCommitted):
            self.resultsChanged.emit(list(event.image_ids), int(event.detections))

    def _done(self, summary) -> None:
        self.handle = None
        self.progress.hide()
        self.cancel_button.hide()
        self.classified.emit(summary)
        self.resultsChanged.emit([], summary.classified)
        self._note = (f"Last time {summary.failed_images:,} images could not be read."
                      if summary.failed_images else "")
        self._ask()

    def _failed(self, exc: BaseException) -> None:
        self.handle = None
        self.progress.hide()
        self.cancel_button.hide()
        if isinstance(exc, TrapguiError) and not isinstance(exc, Cancelled):
            show_error(self, "Cannot classify these boxes", exc)  # others: the runner says
        self._ask()
