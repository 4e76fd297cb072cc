"""The Occurrences tab: the individuals of the selected night(s), one row each (label, score,
frames, first/last seen, fixture), with the selected one's crops across its frames and its
image beside them. Selecting an individual shows its best detection on its image; the
previous/next frame buttons (keys "," and ".") step through the frames it was detected in.

Everything is read through ``services.tracking`` on the job runner; crops are decoded there
too (only each box's region of the image).
"""

from __future__ import annotations

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (QAbstractItemView, QCheckBox, QHBoxLayout, QHeaderView, QLabel,
                               QMenu, QPushButton, QSplitter, QTableView, QVBoxLayout, QWidget)

from trapgui.gui.error_dialog import show_error

from trapgui.gui.image_loader import load_crop
from trapgui.gui.image_viewer import ImageViewer
from trapgui.gui.job_runner import job_runner
from trapgui.gui.occurrence_frames import THUMB, FrameCrop, OccurrenceFrames
from trapgui.gui.occurrences_model import OccurrencesModel

MAX_NIGHTS = 31  # more selected nights than a month: the first month's individuals
MAX_FRAMES = 200  # crops decoded for one individual's strip (its frames stay steppable)
REFRESH_MS = 2000


class OccurrencesView(QWidget):
    frameShown = Signal(int, int)  # image id, detection id of the frame shown
    countsChanged = Signal()  # a person's fixture decision changed what counts

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._night_ids: list[int] = []
        self._det, self._cls = services.settings.detection_threshold, \
            services.settings.classification_threshold
        self._generation = 0
        self._frames_generation = 0
        self._frames: list = []  # the selected individual's detections (frame order)
        self._frame = -1
        self._shown: int | None = None  # the occurrence whose frames are shown
        self.pipeline_id: int | None = None

        self.heading = QLabel("Select a night to see its individuals.", self)
        self.heading.setWordWrap(True)
        self.fixtures_check = QCheckBox("Show fixtures", self)
        self.fixtures_check.setChecked(True)
        self.fixtures_check.setToolTip("List the screws, stains and labels tracking flagged as "
                                       "fixtures too (greyed; never counted)")
        self.fixtures_check.toggled.connect(lambda _c: self.reload())
        self.model = OccurrencesModel(self)
        self.table = QTableView(self)
        self.table.setObjectName("occurrencesTable")
        self.table.setModel(self.model)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        # widths from the first 100 rows: measuring all of a night's 5,000 on every refresh
        # held the GUI thread for half a second
        self.table.horizontalHeader().setResizeContentsPrecision(100)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.setToolTip("One row per individual; select one to see it on its images")
        self.table.selectionModel().currentRowChanged.connect(lambda cur, _p: self._chosen(cur.row()))
        self.table.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        self.table.customContextMenuRequested.connect(self._context_menu)

        self.viewer = ImageViewer(services, self)
        self.viewer.crops.hide()  # the individual's own strip is below
        splitter = QSplitter(Qt.Orientation.Horizontal, self)
        splitter.addWidget(self.table)
        splitter.addWidget(self.viewer)
        splitter.setStretchFactor(0, 2)
        splitter.setStretchFactor(1, 3)
        self._splitter = splitter
        self._sized = False  # the user moved the splitter: their sizes stay
        splitter.splitterMoved.connect(self._user_sized)
        # rows arrive after the first show (read off the GUI thread): fit the columns then
        self.model.modelReset.connect(self._fit_table)

        self.frames = OccurrenceFrames(self)
        self.frames.setToolTip("The individual's crops across the frames it was detected in; "
                               "click one to see that frame")
        self.frames.frameChosen.connect(self.show_frame)
        self.prev_frame = QPushButton("◀ Frame", self)
        self.prev_frame.setToolTip("The individual's previous frame (,)")
        self.next_frame = QPushButton("Frame ▶", self)
        self.next_frame.setToolTip("The individual's next frame (.)")
        self.prev_frame.clicked.connect(lambda: self.step_frame(-1))
        self.next_frame.clicked.connect(lambda: self.step_frame(1))
        self.frame_label = QLabel("", self)
        for key, delta in ((Qt.Key.Key_Comma, -1), (Qt.Key.Key_Period, 1)):
            shortcut = QShortcut(QKeySequence(key), self)
            shortcut.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda d=delta: self.step_frame(d))

        top = QHBoxLayout()
        top.addWidget(self.heading, 1)
        top.addWidget(self.fixtures_check)
        buttons = QVBoxLayout()
        buttons.addWidget(self.prev_frame)
        buttons.addWidget(self.next_frame)
        buttons.addWidget(self.frame_label)
        buttons.addStretch(1)
        strip = QHBoxLayout()
        strip.addLayout(buttons)
        strip.addWidget(self.frames, 1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(top)
        layout.addWidget(splitter, 1)
        layout.addLayout(strip)
        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_MS)
        self._refresh_timer.timeout.connect(self.reload)
        self._update_frame_buttons()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt API
        super().showEvent(event)
        self._fit_table()

    def _user_sized(self, *_args) -> None:
        self._sized = True

    def _fit_table(self) -> None:
        """The table as wide as its columns (at most half the width), the image the rest."""
        if self._sized or not self.isVisible():
            return
        self.table.resizeColumnsToContents()
        width = self._splitter.width()
        header = self.table.horizontalHeader()
        table = min(header.length() + self.table.verticalScrollBar().sizeHint().width() + 8,
                    width // 2)
        self._splitter.setSizes([max(table, 300), max(width - table, 300)])

    # ---- the interface every results view implements --------------------------------------
    def set_selection(self, deployment_id: int | None, night_ids: list[int]) -> None:
        self._night_ids = [n for n in night_ids if isinstance(n, int)]
        self.reload()

    def set_threshold(self, detection: float, classification: float) -> None:
        self._det, self._cls = detection, classification
        self.viewer.set_threshold(detection, classification)
        self.reload()

    def refresh(self) -> None:
        if not self._refresh_timer.isActive():
            self._refresh_timer.start()

    # ---- loading -----------------------------------------------------------------------------
    def reload(self) -> None:
        self._refresh_timer.stop()
        self._generation += 1
        gen, nights, det = self._generation, self._night_ids[:MAX_NIGHTS], self._det
        if not nights:
            self._show(gen, (None, []))
            return
        services, fixtures = self._services, self.fixtures_check.isChecked()

        def query():
            pid = services.catalogue.current_pipeline_id()
            if pid is None:
                return None, []
            rows = []
            for night_id in nights:
                rows += services.tracking.night_occurrences(pid, night_id, min_score=det,
                                                            include_fixtures=fixtures)
            return pid, rows

        job_runner().call(query, lambda r: self._show(gen, r), self._failed, context=self)

    def _failed(self, exc: BaseException) -> None:
        self.heading.setText(f"Could not read the individuals: {exc}")

    def _show(self, gen: int, result) -> None:
        if gen != self._generation:
            return
        self.pipeline_id, rows = result
        before = self.current_occurrence()
        self.model.replace(rows, self._cls)
        counted = sum(1 for r in rows if not r.fixture)
        fixtures = len(rows) - counted
        n = len(self._night_ids)
        where = "the selected night" if n == 1 else f"{n} selected nights"
        if not self._night_ids:
            text = "Select a night to see its individuals."
        elif self.pipeline_id is None:
            text = "Nothing is processed yet: process the night to track its insects."
        elif not rows:
            text = (f"No individuals in {where} at detection score ≥ {self._det:.2f} yet "
                    "(a night is tracked once its images are processed).")
        else:
            text = (f"<b>{counted:,} individual{'s' if counted != 1 else ''}</b> in {where} "
                    f"(detection score ≥ {self._det:.2f}, labels from {self._cls:.2f})")
            if fixtures:
                text += f" · {fixtures:,} fixture{'s' if fixtures != 1 else ''}, not counted"
            if n > MAX_NIGHTS:
                text += f" · the first {MAX_NIGHTS} nights shown"
        self.heading.setText(text)
        row = self.model.row_of(before) if before is not None else -1
        if row < 0 and rows:
            row = 0
        if row >= 0:
            self.table.selectRow(row)
        else:
            self._set_frames([])

    # ---- a person's fixture decision --------------------------------------------------------
    def _context_menu(self, pos) -> None:
        row = self.table.indexAt(pos).row()
        if not 0 <= row < len(self.model.rows):
            return
        occ = self.model.rows[row]
        menu = QMenu(self)
        if occ.fixture:
            menu.addAction("Not a fixture (count it)", lambda: self.set_fixture(occ.id, False))
        else:
            menu.addAction("A fixture (leave it out of counts)",
                           lambda: self.set_fixture(occ.id, True))
        if occ.fixture_reviewed:
            menu.addAction("Let tracking decide", lambda: self.set_fixture(occ.id, None))
        menu.popup(self.table.viewport().mapToGlobal(pos))

    def set_fixture(self, occurrence_id: int, fixture: bool | None) -> None:
        """Keep a person's decision (re-tracks the night off the GUI thread), then reload."""
        services = self._services

        def done(_summary) -> None:
            self.countsChanged.emit()
            self.reload()

        job_runner().call(lambda: services.tracking.set_fixture(occurrence_id, fixture), done,
                          lambda exc: show_error(self, "Cannot change the fixture flag", exc),
                          context=self)

    # ---- one individual --------------------------------------------------------------------
    def current_occurrence(self) -> int | None:
        row = self.table.currentIndex().row()
        return self.model.rows[row].id if 0 <= row < len(self.model.rows) else None

    def select_occurrence(self, occurrence_id: int) -> None:
        row = self.model.row_of(occurrence_id)
        if row >= 0:
            self.table.selectRow(row)

    def _chosen(self, row: int) -> None:
        if not 0 <= row < len(self.model.rows):
            self._set_frames([])
            return
        occ = self.model.rows[row]
        if occ.id == self._shown and occ.n_detections == len(self._frames):
            return  # a refresh (results committed): keep the frame the person is on
        self._shown = occ.id
        self._frames_generation += 1
        gen, services = self._frames_generation, self._services

        def query():
            return services.tracking.occurrence_detections(occ.id)

        job_runner().call(query, lambda dets: self._frames_read(gen, occ, dets), self._failed,
                          context=self)

    def _frames_read(self, gen: int, occ, detections: list) -> None:
        if gen != self._frames_generation:
            return
        self._frames = list(detections)
        best = next((i for i, d in enumerate(detections) if d.is_best), 0)
        self.frames.set_frames([FrameCrop(d.detection_id, d.image_id, _caption(d), _tip(d), None)
                                for d in detections])
        self.show_frame(best if detections else -1)
        todo = detections[:MAX_FRAMES]

        def crops():
            out = []
            for d in todo:
                try:
                    image = load_crop(d.image_path, d.box, THUMB)
                except Exception:  # noqa: BLE001 - a missing or broken file: no crop, no stop
                    image = None
                out.append(FrameCrop(d.detection_id, d.image_id, _caption(d), _tip(d), image))
            return out

        job_runner().call(crops, lambda c: self._crops_read(gen, c), lambda _e: None, context=self)

    def _crops_read(self, gen: int, crops: list) -> None:
        if gen != self._frames_generation:
            return
        rest = [FrameCrop(d.detection_id, d.image_id, _caption(d), _tip(d), None)
                for d in self._frames[len(crops):]]
        current = self._frame
        self.frames.set_frames(crops + rest)
        self.frames.select_row(current)

    def _set_frames(self, detections: list) -> None:
        self._shown = None
        self._frames_generation += 1
        self._frames = list(detections)
        self.frames.set_frames([])
        self._frame = -1
        self._update_frame_buttons()

    def show_frame(self, row: int) -> None:
        """Show frame ``row`` of the selected individual on its image, its box selected."""
        if not 0 <= row < len(self._frames):
            self._frame = -1
            self._update_frame_buttons()
            return
        self._frame = row
        d = self._frames[row]
        self.frames.select_row(row)
        self.viewer.show_image(d.image_id, d.detection_id)
        self._update_frame_buttons()
        self.frameShown.emit(d.image_id, d.detection_id)

    def step_frame(self, delta: int) -> None:
        if self._frames:
            self.show_frame(max(0, min(len(self._frames) - 1, self._frame + delta)))

    def current_frame(self) -> int:
        return self._frame

    def _update_frame_buttons(self) -> None:
        n = len(self._frames)
        self.prev_frame.setEnabled(self._frame > 0)
        self.next_frame.setEnabled(0 <= self._frame < n - 1)
        self.frame_label.setText(f"Frame {self._frame + 1} of {n}" if n and self._frame >= 0
                                 else "")


def _caption(d) -> str:
    return f"{d.captured:%H:%M:%S}" if d.captured else "no time"


def _tip(d) -> str:
    tip = f"Detection score {d.score:.2f}"
    if d.label:
        tip += f"\n{d.label}" + (f" ({d.label_score:.2f})" if d.label_score is not None else "")
    if d.is_best:
        tip += "\nThe individual's best crop"
    return tip
