"""Review mode: one night's occurrences as a grid of best crops, reviewed from the keyboard.

Every action is saved at once through ``services.review`` on the job runner (one action at a
time, in the order given, so an undo never overtakes the action it undoes); the grid moves on
immediately and the touched rows are replaced when the answer arrives. Nothing here touches
the database, and crops are decoded off the GUI thread, a few at a time, as they are painted.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QKeySequence, QPixmap, QShortcut
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel,
                               QPushButton, QVBoxLayout, QWidget)

from trapgui.gui.error_dialog import show_error
from trapgui.gui.image_loader import load_crop
from trapgui.gui.job_runner import job_runner
from trapgui.gui.review_carry_filter import CarryCheckFilter
from trapgui.gui.review_delegate import CROP
from trapgui.gui.review_grid import ReviewGrid
from trapgui.gui.review_model import SORTS, ReviewModel
from trapgui.gui.review_picker import RelabelPicker

CROPS_IN_FLIGHT = 3
# actions that change which detections make which occurrence (and so their mean appearance)
MEMBERSHIP_KINDS = frozenset({"merge", "split", "move", "add box", "delete box"})
KEYS_HELP = ("Enter confirm · Delete/R not an insect · F fixture · type a name or L to relabel · "
             "M merge the selected into one · S its frames: split, move one, delete a false "
             "box · B draw a missed insect · "
             "arrows next/previous · "
             "Ctrl+Z undo · "
             "Shift/Ctrl+click several")


class ReviewView(QWidget):
    actionApplied = Signal(object)  # the ReviewOutcome, once saved and shown
    loaded = Signal(int)  # occurrences listed
    appearanceOrdered = Signal(int)  # occurrences with an embedding, once the order is shown
    nightRefreshed = Signal(bool)  # a refresh's answer: True when the night had changed

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._night: int | None = None
        self._pipeline: int | None = None
        self._generation = 0
        self._choices: list = []
        self._actions: deque = deque()
        self._acting = False
        self._crop_queue: deque = deque()
        self._crops_asked: set[int] = set()
        self._crops_in_flight = 0
        self.picker: RelabelPicker | None = None
        self._picking: list[int] = []
        self.splitter = None
        self.mover = None
        self.boxer = None
        self._version = None  # services.review.night_version of the rows listed
        self._refreshing = False
        self._refresh_wanted = False
        self._applied_count = 0  # actions shown: a refresh read before one is stale
        self._order_generation = 0

        self.title = QLabel("Select one night on the left to review its individuals.", self)
        self.title.setObjectName("reviewTitle")
        self.title.setWordWrap(True)
        self.unreviewed = QCheckBox("Not yet reviewed only", self)
        self.unreviewed.setToolTip("Hide the occurrences a person already decided (takes effect "
                                   "at once; what you review now stays until you reload)")
        self.sort = QComboBox(self)
        for key, (text, _k) in SORTS.items():
            self.sort.addItem(text, key)
        self.sort.setToolTip("Order of the grid")
        self.bulk_label = QComboBox(self)
        self.bulk_label.setMinimumContentsLength(14)
        self.bulk_label.setToolTip("A machine label of this night")
        self.bulk_score = QDoubleSpinBox(self)
        self.bulk_score.setRange(0.0, 1.0)
        self.bulk_score.setSingleStep(0.05)
        self.bulk_score.setValue(0.9)
        self.bulk_score.setToolTip("Lowest machine score to confirm")
        self.bulk_button = QPushButton("Confirm all", self)
        self.bulk_button.setToolTip("Confirm every not yet reviewed occurrence of this label "
                                    "scoring at least this much in this night (one undo)")
        self.undo_button = QPushButton("Undo", self)
        self.undo_button.setToolTip("Undo the latest review action of this night (Ctrl+Z)")
        self.agreement_button = QPushButton("Agreement…", self)
        self.agreement_button.setToolTip("How often the review agreed with the machine")
        self.reload_button = QPushButton("Reload", self)
        self.reload_button.setToolTip("Read the night again (applies the filter to what you "
                                      "reviewed, shows new individuals)")
        self.grid = ReviewGrid(self)
        self.model = ReviewModel(self)
        self.model.crop_wanted = self._want_crop
        self.grid.setModel(self.model)
        self.keys = QLabel(KEYS_HELP, self)
        self.keys.setObjectName("reviewKeys")
        self.keys.setWordWrap(True)
        self.status = QLabel("", self)
        self.status.setObjectName("reviewStatus")
        self.status.setWordWrap(True)

        bar = QHBoxLayout()
        bar.addWidget(self.unreviewed)
        self.carry_filter = CarryCheckFilter(self.model, self)
        bar.addWidget(self.carry_filter)
        bar.addSpacing(12)
        bar.addWidget(QLabel("Sort by", self))
        bar.addWidget(self.sort)
        bar.addSpacing(12)
        bar.addWidget(self.bulk_button)
        bar.addWidget(self.bulk_label)
        bar.addWidget(QLabel("scoring ≥", self))
        bar.addWidget(self.bulk_score)
        bar.addStretch(1)
        bar.addWidget(self.undo_button)
        bar.addWidget(self.agreement_button)
        bar.addWidget(self.reload_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.title)
        layout.addLayout(bar)
        layout.addWidget(self.keys)
        layout.addWidget(self.grid, 1)
        layout.addWidget(self.status)

        self.unreviewed.toggled.connect(self.model.set_filter)
        self.sort.currentIndexChanged.connect(lambda _i: self._sort_changed())
        self.bulk_button.clicked.connect(self.confirm_all_of_label)
        self.undo_button.clicked.connect(self.undo)
        self.reload_button.clicked.connect(self._load)
        self.agreement_button.clicked.connect(self.open_agreement)
        self.grid.confirmRequested.connect(self.confirm)
        self.grid.rejectRequested.connect(self.reject)
        self.grid.fixtureRequested.connect(self.mark_fixture)
        self.grid.relabelRequested.connect(self.open_picker)
        self.grid.undoRequested.connect(self.undo)
        self.grid.mergeRequested.connect(self.merge_selected)
        self.grid.splitRequested.connect(self.open_split)
        self.grid.boxRequested.connect(self.open_box_on_best)
        undo = QShortcut(QKeySequence(QKeySequence.StandardKey.Undo), self)
        undo.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        undo.activated.connect(self.undo)
        self._set_enabled(False)

    # ---- the interface every results view implements ------------------------------------
    @Slot(object, list)
    def set_selection(self, deployment_id, night_ids: list) -> None:
        night = night_ids[0] if len(night_ids) == 1 else None
        if night == self._night:
            return
        self._night = night
        if night is None:
            self._generation += 1
            self.model.set_rows([])
            self._set_enabled(False)
            self.title.setText("Select one night on the left to review its individuals."
                               if len(night_ids) != 1 else "")
            return
        self._load()

    def set_threshold(self, detection: float, classification: float) -> None:
        """Review shows every occurrence: a threshold must not hide one from the person."""

    def refresh(self) -> None:
        """New results, re-tracking or a correction in another view: when the night's
        occurrences changed, read them again in the background and show them without losing
        the person's place (the current occurrence stays current and visible; what is listed
        stays listed), and order them again by appearance when their members changed."""
        if self._night is None:
            return
        if not self.model.rows and not self.busy() and not self._refreshing:
            self._load()
            return
        self._refresh_wanted = True
        self._refresh_rows()

    def _refresh_rows(self) -> None:
        if (not self._refresh_wanted or self._refreshing or self.busy()
                or self._pipeline is None or self._night is None):
            return
        self._refresh_wanted = False
        self._refreshing = True
        gen, pipeline, night, known = self._generation, self._pipeline, self._night, self._version
        applied, services = self._applied_count, self._services

        def read():
            review = services.review
            version = review.night_version(pipeline, night)
            return version, None if version == known else review.night_rows(pipeline, night)

        job_runner().call(read, lambda result: self._rows_refreshed(gen, applied, result),
                          self._refresh_failed, context=self, name="review: refresh night")

    def _rows_refreshed(self, gen: int, applied: int, result) -> None:
        self._refreshing = False
        if gen != self._generation:
            return
        if applied != self._applied_count or self.busy():
            # an action was saved meanwhile: these rows may be older than its answer
            self._refresh_wanted = True
            self._refresh_rows()
            return
        version, rows = result
        self._version = version
        if rows is not None:
            members = self._membership()
            self._keeping_place(lambda: self.model.replace_rows(rows))
            self._fill_bulk_labels()
            self._set_enabled(bool(rows))
            self._update_title()
            if self.sort.currentData() == "appearance" and self._membership() != members:
                self._order_by_appearance()
        self.nightRefreshed.emit(rows is not None)
        self._refresh_rows()

    def _refresh_failed(self, exc: BaseException) -> None:
        self._refreshing = False
        self.status.setText(f"The night could not be read again: {exc}")

    def _membership(self) -> frozenset:
        return frozenset((r.id, r.n_detections) for r in self.model.all_rows())

    def _keeping_place(self, change: Callable[[], None]) -> None:
        """Apply ``change`` to the model (a reset) and give the person their place back: the
        same current occurrence (or the one now holding its best detection, after
        re-tracking), the same selection, scrolled into view."""
        current = self.grid.currentIndex()
        rows = self.model.rows
        was = current.row() if current.isValid() else -1
        cur = rows[was] if 0 <= was < len(rows) else None
        selected = set(self.selected_ids())
        change()
        rows = self.model.rows
        if not rows or was < 0:
            return
        row = self.model.row_of(cur.id) if cur is not None else -1
        if row < 0 and cur is not None and cur.best_detection_id is not None:
            row = next((k for k, r in enumerate(rows)
                        if r.best_detection_id == cur.best_detection_id), -1)
        if row < 0:
            row = min(was, len(rows) - 1)
        index = self.model.index(row)
        selection = self.grid.selectionModel()
        selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.ClearAndSelect)
        for occ in selected - {rows[row].id}:
            k = self.model.row_of(occ)
            if k >= 0:
                selection.select(self.model.index(k), QItemSelectionModel.SelectionFlag.Select)
        self.grid.scrollTo(index)

    # ---- loading ----------------------------------------------------------------------------
    def _load(self) -> None:
        if self._night is None:
            return
        self._generation += 1
        # services.review is touched on the runner's thread only: its first use imports
        # SQLAlchemy, which must not happen on the GUI thread
        gen, night, services = self._generation, self._night, self._services
        self._crop_queue.clear()
        self.model.set_appearance_order([])  # recomputed for what is read
        self.title.setText("Loading the night's individuals…")

        def query():
            review = services.review
            pipeline = review.default_pipeline(night)
            version = review.night_version(pipeline, night) if pipeline is not None else None
            rows = review.night_rows(pipeline, night) if pipeline is not None else []
            return (pipeline, rows, review.taxon_choices(pipeline), review.reviewer()), version

        job_runner().call(query, lambda result: self._loaded(gen, result), self._failed,
                          context=self, name="review: load night")

    def _loaded(self, gen: int, result) -> None:
        if gen != self._generation:
            return
        result, self._version = result
        self._pipeline, rows, self._choices, reviewer = result
        current = self.grid.currentIndex().row()
        self.model.set_rows(rows)
        self._fill_bulk_labels()
        self._set_enabled(bool(rows))
        if self.sort.currentData() == "appearance":
            self._order_by_appearance()
        if rows:
            self.grid.setCurrentIndex(self.model.index(max(0, min(current, len(rows) - 1))))
        self._update_title(reviewer)
        self.loaded.emit(len(rows))

    def _update_title(self, reviewer: str | None = None) -> None:
        if reviewer is not None:
            self._reviewer = reviewer
        rows = self.model.rows or self.model.all_rows()
        total = len(self.model.all_rows())
        if self._pipeline is None:
            self.title.setText("Nothing to review in this night yet: process its images first.")
            return
        if not rows:
            self.title.setText("No individuals in this night (`Processing ▸ Process` finds and "
                               "tracks them).")
            return
        done = self.model.reviewed_count
        self.title.setText(f"<b>{total:,} individuals</b> · {done:,} reviewed · "
                           f"{total - done:,} to go · reviewer: "
                           f"<b>{getattr(self, '_reviewer', '')}</b> (Tools ▸ Settings)")

    def _fill_bulk_labels(self) -> None:
        current = self.bulk_label.currentText()
        labels = sorted({r.machine_label for r in self.model.all_rows() if r.machine_label})
        self.bulk_label.clear()
        self.bulk_label.addItems(labels)
        if current in labels:
            self.bulk_label.setCurrentText(current)

    def _failed(self, exc: BaseException) -> None:
        self.title.setText(f"The night could not be read: {exc}")

    def _set_enabled(self, on: bool) -> None:
        for w in (self.bulk_button, self.bulk_label, self.bulk_score, self.undo_button,
                  self.unreviewed, self.sort):
            w.setEnabled(on)

    # ---- appearance order, off the GUI thread ----------------------------------------------
    def _sort_changed(self) -> None:
        key = self.sort.currentData()
        # the appearance order follows when computed
        self._keeping_place(lambda: self.model.set_sort(key))
        if key == "appearance":
            self._order_by_appearance()

    def _order_by_appearance(self) -> None:
        if self._night is None or self._pipeline is None:
            return
        gen, pipeline, night, services = self._generation, self._pipeline, self._night, \
            self._services
        self._order_generation += 1
        asked = self._order_generation
        self.status.setText("Ordering the night by appearance…")

        def ordered(order) -> None:
            if gen != self._generation or asked != self._order_generation:
                return  # the night, or its occurrences, changed since: a newer order follows
            self._keeping_place(lambda: self.model.set_appearance_order(order))
            total = len(self.model.all_rows())
            self.status.setText(
                f"Ordered by appearance: look-alikes side by side ({len(order):,} of {total:,} "
                "individuals have an embedding; the others follow by time)." if order else
                "No embeddings in this night (process it with an embedding model to sort by "
                "appearance): ordered by time.")
            self.appearanceOrdered.emit(len(order))

        job_runner().call(lambda: services.review.similarity_order(pipeline, night), ordered,
                          lambda exc: self.status.setText(f"Not ordered by appearance: {exc}"),
                          context=self, name="review: appearance order")

    # ---- crops, off the GUI thread --------------------------------------------------------
    def _want_crop(self, row) -> None:
        if row.best_detection_id in self._crops_asked or row.best_image_path is None:
            return
        self._crops_asked.add(row.best_detection_id)
        self._crop_queue.append(row)
        QTimer.singleShot(0, self._pump_crops)

    def _pump_crops(self) -> None:
        while self._crops_in_flight < CROPS_IN_FLIGHT and self._crop_queue:
            row = self._crop_queue.popleft()
            self._crops_in_flight += 1
            path, box, det = row.best_image_path, row.best_box, row.best_detection_id

            def done(image, det=det) -> None:
                self._crops_in_flight -= 1
                if image.width() > CROP or image.height() > CROP:
                    image = image.scaled(CROP, CROP, Qt.AspectRatioMode.KeepAspectRatio,
                                         Qt.TransformationMode.SmoothTransformation)
                self.model.set_crop(det, QPixmap.fromImage(image))
                self._pump_crops()

            def failed(_exc, det=det) -> None:
                self._crops_in_flight -= 1
                self.model.set_crop(det, QPixmap())  # missing file: "no image"
                self._pump_crops()

            job_runner().call(lambda p=path, b=box: load_crop(p, b, CROP), done, failed,
                              context=self, name="review: crop")

    # ---- actions ----------------------------------------------------------------------------
    def selected_ids(self) -> list[int]:
        rows = sorted({i.row() for i in self.grid.selectionModel().selectedIndexes()})
        current = self.grid.currentIndex()
        if not rows and current.isValid():
            rows = [current.row()]
        return [self.model.rows[r].id for r in rows if r < len(self.model.rows)]

    @Slot()
    def confirm(self) -> None:
        self._act(lambda review, ids: review.confirm(ids))

    @Slot()
    def reject(self) -> None:
        self._act(lambda review, ids: review.reject(ids))

    @Slot()
    def mark_fixture(self) -> None:
        self._act(lambda review, ids: review.mark_fixture(ids, True))

    def relabel(self, label: str, rank: str | None = None) -> None:
        pipeline = self._pipeline
        self._act(lambda review, ids: review.relabel(ids, label, rank, pipeline_id=pipeline),
                  refresh_choices=True)

    @Slot(str)
    def open_picker(self, typed: str = "") -> None:
        ids = self.selected_ids()
        if not ids:
            return
        if self.picker is None:  # one picker, kept: its completer is built once per choice list
            self.picker = RelabelPicker(self._choices, self)
            self.picker.chosen.connect(lambda label, rank: self._relabel_ids(
                self._picking, label, rank))
            self.picker.finished.connect(lambda _r: self.grid.setFocus())
        elif self.picker.choices is not self._choices:
            self.picker.set_choices(self._choices)
        self._picking = ids
        # taxon names start with a capital: "n" starts "Noctuidae"
        self.picker.start(typed[:1].upper() + typed[1:], len(ids))
        self.picker.open()
        self.picker.edit.setFocus()
        self.picker.edit.end(False)

    def _relabel_ids(self, ids: list[int], label: str, rank) -> None:
        pipeline = self._pipeline
        self._act(lambda review, _ids: review.relabel(ids, label, rank, pipeline_id=pipeline),
                  ids=ids, refresh_choices=True)

    @Slot()
    def merge_selected(self) -> None:
        """The selected occurrences are one individual: merged into the current one (else the
        first selected)."""
        ids = self.selected_ids()
        if len(ids) < 2:
            self.status.setText("Select two or more occurrences (Shift/Ctrl+click) to merge them.")
            return
        current = self.grid.currentIndex()
        target = self.model.rows[current.row()].id if current.isValid() else ids[0]
        target = target if target in ids else ids[0]
        others = [i for i in ids if i != target]
        self._act(lambda review, _ids: review.merge(target, others), ids=ids, advance=False,
                  focus_result=True)

    @Slot()
    def open_split(self) -> None:
        """Split the current occurrence at a frame the person picks."""
        from trapgui.gui.review_split_dialog import ReviewSplitDialog

        current = self.grid.currentIndex()
        if not current.isValid():
            return
        occ = self.model.rows[current.row()].id
        self.splitter = ReviewSplitDialog(self._services, occ, self)
        self.splitter.chosen.connect(lambda det: self._act(
            lambda review, _ids: review.split(occ, at_detection=det), ids=[occ], advance=False,
            focus_result=True))
        self.splitter.deleteRequested.connect(lambda det: self._act(
            lambda review, _ids: review.delete_box(det), ids=[occ], advance=False,
            focus_result=True))
        self.splitter.moveRequested.connect(lambda det: self.open_move(det, occ))
        self.splitter.boxRequested.connect(lambda frame: self.open_box(
            frame.image_id, frame.image_path, occ))
        self.splitter.finished.connect(lambda _r: self.grid.setFocus())
        self.splitter.open()

    def open_move(self, detection_id: int, from_occurrence: int) -> None:
        """Move one detection to another occurrence of the night, picked from a list."""
        from trapgui.gui.review_move_dialog import ReviewMoveDialog

        self.mover = ReviewMoveDialog(self.model.all_rows(), detection_id, from_occurrence, self)
        self.mover.chosen.connect(lambda target: self._act(
            lambda review, _ids: review.move_detection(detection_id, target),
            ids=[from_occurrence, target], advance=False, focus_result=True))
        self.mover.finished.connect(lambda _r: self.grid.setFocus())
        self.mover.open()

    @Slot()
    def open_box_on_best(self) -> None:
        current = self.grid.currentIndex()
        if not current.isValid():
            return
        row = self.model.rows[current.row()]
        if row.best_image_id is None or row.best_image_path is None:
            self.status.setText("This occurrence has no frame to draw on.")
            return
        self.open_box(row.best_image_id, row.best_image_path, row.id)

    def open_box(self, image_id: int, image_path: str, occurrence_id: int | None) -> None:
        """Draw a box around an insect the detector missed on a frame: a detection by a person
        of a new occurrence (or of ``occurrence_id`` when the person says so)."""
        from trapgui.gui.review_box_dialog import ReviewBoxDialog

        pipeline = self._pipeline
        if pipeline is None:
            return
        self.boxer = ReviewBoxDialog(self._services, pipeline, image_id, image_path,
                                     occurrence_id, self)
        self.boxer.boxDrawn.connect(lambda image, box, occ: self._act(
            lambda review, _ids: review.add_box(image, pipeline, box, occurrence_id=occ),
            ids=[occ] if occ is not None else [], advance=False, focus_result=True))
        self.boxer.finished.connect(lambda _r: self.grid.setFocus())
        self.boxer.open()

    @Slot()
    def confirm_all_of_label(self) -> None:
        label = self.bulk_label.currentText()
        if not label or self._night is None or self._pipeline is None:
            return
        pipeline, night, score = self._pipeline, self._night, self.bulk_score.value()
        self._act(lambda review, _ids: review.confirm_label_above(pipeline, night, label, score),
                  ids=[], advance=False)

    @Slot()
    def undo(self) -> None:
        if self._night is None:
            return
        night = self._night
        self._act(lambda review, _ids: review.undo(night), ids=[], advance=False,
                  focus_result=True)

    def _act(self, fn: Callable, *, ids: list[int] | None = None, advance: bool = True,
             refresh_choices: bool = False, focus_result: bool = False) -> None:
        """Queue one action: saved on the runner (in order), the grid moves on now."""
        ids = self.selected_ids() if ids is None else ids
        if self._night is None or self._pipeline is None or (ids == [] and advance):
            return
        pipeline, night, services = self._pipeline, self._night, self._services

        def work():
            review = services.review
            outcome = fn(review, ids)
            touched = set(outcome.occurrence_ids) | set(ids) | set(outcome.created_ids)
            choices = review.taxon_choices(pipeline) if refresh_choices else None
            return outcome, review.rows(pipeline, night, touched), touched, choices

        self._actions.append((work, focus_result))
        if advance:
            self.grid.move_next()
        self._next_action()

    def _next_action(self) -> None:
        if self._acting or not self._actions:
            return
        self._acting = True
        work, focus = self._actions.popleft()
        gen = self._generation
        job_runner().call(work, lambda result: self._applied(gen, result, focus),
                          self._action_failed, context=self, name="review: action")

    def _applied(self, gen: int, result, focus: bool) -> None:
        self._acting = False
        outcome, rows, touched, choices = result
        if gen == self._generation:
            self._applied_count += 1
            self.model.update_rows(rows, gone=touched - {r.id for r in rows})
            if focus and outcome.occurrence_ids:
                row = next((r for r in map(self.model.row_of, outcome.occurrence_ids)
                            if r >= 0), -1)
                if row >= 0:
                    self.grid.setCurrentIndex(self.model.index(row))
                    self.grid.scrollTo(self.model.index(row))
            self._update_title()  # the bulk labels are the machine's: review never changes them
            if outcome.kind in MEMBERSHIP_KINDS and self.sort.currentData() == "appearance":
                self._order_by_appearance()  # the grid keeps the person's place meanwhile
        if choices is not None:
            self._choices = choices
        self.status.setText(outcome.summary + ("." if not outcome.summary.endswith(".") else "")
                            + ("  Ctrl+Z undoes it." if outcome.action_id else ""))
        self.actionApplied.emit(outcome)
        self._next_action()
        self._refresh_rows()  # a refresh asked for while actions were being saved

    def _action_failed(self, exc: BaseException) -> None:
        self._acting = False
        self._actions.clear()  # what followed was meant after it: do not apply it blindly
        self.status.setText(f"Not saved: {exc}")
        show_error(self, "Review action not saved", exc)

    def busy(self) -> bool:
        return self._acting or bool(self._actions)

    # ---- agreement --------------------------------------------------------------------------
    @Slot()
    def open_agreement(self) -> None:
        from trapgui.gui.review_agreement_dialog import ReviewAgreementDialog

        if self._pipeline is None:
            return
        dialog = ReviewAgreementDialog(self._services, self._pipeline, self._night, self)
        dialog.open()
