"""A strip of one individual's crops across the night's frames, in capture order; the
current frame is selected. Crops are cut by ``image_loader.load_crop`` (only the box's
region of each image is decoded) on the job runner, then shown all at once."""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QModelIndex, QSize, Qt, Signal
from PySide6.QtGui import QIcon, QImage, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView

THUMB = 80


@dataclass(frozen=True)
class FrameCrop:
    detection_id: int
    image_id: int
    caption: str
    tip: str
    image: QImage | None  # None: the file could not be read


class _FramesModel(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.frames: list[FrameCrop] = []
        self._icons: list[QIcon] = []

    def replace(self, frames: list[FrameCrop]) -> None:
        self.beginResetModel()
        self.frames = frames
        self._icons = [QIcon(QPixmap.fromImage(f.image)) if f.image is not None else QIcon()
                       for f in frames]
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: N802 - Qt API
        return 0 if parent.isValid() else len(self.frames)

    def data(self, index: QModelIndex, role=Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or index.row() >= len(self.frames):
            return None
        frame = self.frames[index.row()]
        if role == Qt.ItemDataRole.DisplayRole:
            return frame.caption
        if role == Qt.ItemDataRole.DecorationRole:
            return self._icons[index.row()]
        if role == Qt.ItemDataRole.ToolTipRole:
            return frame.tip
        if role == Qt.ItemDataRole.UserRole:
            return frame.detection_id
        return None


class OccurrenceFrames(QListView):
    """Emits ``frameChosen(row)`` when a person clicks a crop."""

    frameChosen = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self._model = _FramesModel(self)
        self.setModel(self._model)
        self.setViewMode(QListView.ViewMode.IconMode)
        self.setFlow(QListView.Flow.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Movement.Static)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(3)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setFixedHeight(THUMB + self.fontMetrics().height() + 30)
        self.clicked.connect(lambda index: self.frameChosen.emit(index.row()))

    def set_frames(self, frames: list[FrameCrop]) -> None:
        self._model.replace(frames)

    def frames(self) -> list[FrameCrop]:
        return list(self._model.frames)

    def count(self) -> int:
        return self._model.rowCount()

    def select_row(self, row: int) -> None:
        if 0 <= row < self.count():
            index = self._model.index(row)
            self.setCurrentIndex(index)
            self.scrollTo(index)

    def current_row(self) -> int:
        index = self.currentIndex()
        return index.row() if index.isValid() else -1
