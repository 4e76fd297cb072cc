"""An occurrence's frames: its detections in frame order as crops. The person picks the first
frame of a second individual (split), a box that is no insect at all (delete the false
box), a frame of another individual (move it to that occurrence), or a frame where the
detector missed an insect (draw its box). Detections and crops are read on the job runner."""

from __future__ import annotations

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QColor, QPixmap
from PySide6.QtWidgets import (QAbstractItemView, QDialog, QDialogButtonBox, QLabel, QListView,
                               QVBoxLayout)

from trapgui.gui.image_loader import load_crop
from trapgui.gui.job_runner import job_runner

THUMB = 112


class _Frames(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.frames: list = []  # OccurrenceDetectionRow, frame order
        self.crops: dict[int, QPixmap] = {}

    def set_frames(self, frames) -> None:
        self.beginResetModel()
        self.frames = list(frames)
        self.endResetModel()

    def set_crop(self, row: int, pixmap: QPixmap) -> None:
        self.crops[row] = pixmap
        index = self.index(row)
        self.dataChanged.emit(index, index)

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.frames)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        f = self.frames[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            when = f"{f.captured:%H:%M:%S}" if f.captured else "?"
            return f"{index.row() + 1}. {when}"
        if role == Qt.ItemDataRole.DecorationRole:
            crop = self.crops.get(index.row())
            if crop is None:  # a blank of the crop's size until it is decoded
                crop = QPixmap(THUMB, THUMB)
                crop.fill(QColor("#e8e8e8"))
            return crop
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"Detection {f.detection_id} · score {f.score:.2f}"
        return None


class ReviewSplitDialog(QDialog):
    chosen = Signal(int)  # the first detection of the second individual
    deleteRequested = Signal(int)  # a false box's detection
    moveRequested = Signal(int)  # a detection of another individual
    boxRequested = Signal(object)  # the frame (OccurrenceDetectionRow) to draw a missed box on
    framesLoaded = Signal(int)

    def __init__(self, services, occurrence_id: int, parent=None):
        super().__init__(parent)
        self.setWindowTitle(f"Frames of occurrence {occurrence_id}")
        self._services = services
        self.info = QLabel("Reading its frames…", self)
        self.info.setWordWrap(True)
        self.model = _Frames(self)
        self.list = QListView(self)
        self.list.setModel(self.model)
        self.list.setViewMode(QListView.ViewMode.IconMode)
        self.list.setFlow(QListView.Flow.LeftToRight)
        self.list.setWrapping(False)
        self.list.setMovement(QListView.Movement.Static)
        self.list.setIconSize(QSize(THUMB, THUMB))
        line = self.fontMetrics().height()
        self.list.setGridSize(QSize(THUMB + 18, THUMB + 2 * line + 10))
        self.list.setSpacing(4)
        self.list.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.list.setFixedHeight(THUMB + 2 * line + 34)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.split = buttons.addButton("Split here", QDialogButtonBox.ButtonRole.AcceptRole)
        self.split.setEnabled(False)
        self.split.setToolTip("From this frame on, the detections are another individual")
        self.split.clicked.connect(self._accept)
        self.delete = buttons.addButton("Delete this box", QDialogButtonBox.ButtonRole.ActionRole)
        self.delete.setToolTip("The box shows no insect (a stain, a shadow): it counts nowhere")
        self.delete.setEnabled(False)
        self.delete.clicked.connect(self._delete)
        self.move = buttons.addButton("Move to…", QDialogButtonBox.ButtonRole.ActionRole)
        self.move.setToolTip("This frame shows another individual: move its detection to "
                             "another occurrence of the night")
        self.move.setEnabled(False)
        self.move.clicked.connect(self._move)
        self.draw = buttons.addButton("Draw a missed box…", QDialogButtonBox.ButtonRole.ActionRole)
        self.draw.setToolTip("The detector missed an insect on this frame: draw its box")
        self.draw.setEnabled(False)
        self.draw.clicked.connect(self._draw)
        buttons.rejected.connect(self.reject)
        self.list.selectionModel().currentChanged.connect(self._current_changed)
        self.list.activated.connect(lambda _i: self._accept())
        layout = QVBoxLayout(self)
        layout.addWidget(self.info)
        layout.addWidget(self.list)
        layout.addWidget(buttons)
        self.resize(820, self.sizeHint().height())
        job_runner().call(lambda: services.tracking.occurrence_detections(occurrence_id),
                          self._loaded,
                          lambda exc: self.info.setText(f"Its frames could not be read: {exc}"),
                          context=self, name="review: frames")

    def _loaded(self, frames) -> None:
        self.model.set_frames(frames)
        if len(frames) < 2:
            self.info.setText("It has a single frame: there is nothing to split.")
        else:
            self.info.setText(f"{len(frames)} frames. Choose the first frame of the second "
                              "individual (Enter or “Split here”); frames before it stay.")
            self.list.setCurrentIndex(self.model.index(len(frames) // 2))
        if len(frames) == 1:
            self.info.setText("It has a single frame: nothing to split; move it to another "
                              "occurrence or draw a box the detector missed.")
            self.list.setCurrentIndex(self.model.index(0))
        self.list.setFocus()
        for row, f in enumerate(frames):
            job_runner().call(lambda f=f: load_crop(f.image_path, f.box, THUMB),
                              lambda image, row=row: self.model.set_crop(row, QPixmap.fromImage(image)),
                              lambda _exc: None, context=self, name="review: frame crop")
        self.framesLoaded.emit(len(frames))

    def _current_changed(self, current, _previous) -> None:
        self.split.setEnabled(current.isValid() and current.row() > 0)
        self.delete.setEnabled(current.isValid() and len(self.model.frames) > 1)
        self.move.setEnabled(current.isValid())
        self.draw.setEnabled(current.isValid())

    def _current_frame(self):
        index = self.list.currentIndex()
        return self.model.frames[index.row()] if index.isValid() else None

    def _move(self) -> None:
        frame = self._current_frame()
        if frame is not None:
            self.moveRequested.emit(frame.detection_id)
            self.accept()

    def _draw(self) -> None:
        frame = self._current_frame()
        if frame is not None:
            self.boxRequested.emit(frame)
            self.accept()

    def _delete(self) -> None:
        index = self.list.currentIndex()
        if index.isValid():
            self.deleteRequested.emit(self.model.frames[index.row()].detection_id)
            self.accept()

    def selected_detection(self) -> int | None:
        index = self.list.currentIndex()
        if not index.isValid() or index.row() == 0:
            return None
        return self.model.frames[index.row()].detection_id

    def _accept(self) -> None:
        detection = self.selected_detection()
        if detection is None:
            return
        self.chosen.emit(detection)
        self.accept()
