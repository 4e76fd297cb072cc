"""A horizontal strip of the current image's crops, cut from the image the viewer has already
decoded (no second read of the file). Clicking a crop selects its box in the viewer.

The strip is a QListView over a plain-Python model: a rebuild (many times a minute during a
run) swaps a Python list and resets the model. It creates and deletes no Qt item objects, so
no Python wrapper of a Qt item is torn down inside a Qt call; that teardown, racing with the
engine's threads, was the window's crash during live runs (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from PySide6.QtCore import QAbstractListModel, QModelIndex, QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView

from trapgui.gui.box_item import COLOURS, classify, short_label, tooltip
from trapgui.services.results_types import BoxInfo

THUMB = 88


@dataclass(frozen=True)
class _Crop:
    detection_id: int
    icon: QIcon
    label: str
    tip: str


class _CropModel(QAbstractListModel):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.crops: list[_Crop] = []

    def replace(self, crops: list[_Crop]) -> None:
        self.beginResetModel()
        self.crops = crops
        self.endResetModel()

    def rowCount(self, parent=QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.crops)

    def data(self, index: QModelIndex, role=Qt.DisplayRole):
        if not index.isValid() or index.row() >= len(self.crops):
            return None
        crop = self.crops[index.row()]
        if role == Qt.DisplayRole:
            return crop.label
        if role == Qt.DecorationRole:
            return crop.icon
        if role == Qt.ToolTipRole:
            return crop.tip
        if role == Qt.TextAlignmentRole:
            return int(Qt.AlignHCenter)
        if role == Qt.UserRole:
            return crop.detection_id
        return None


class CropStrip(QListView):
    cropClicked = Signal(int)  # detection id

    def __init__(self, parent=None):
        super().__init__(parent)
        self._model = _CropModel(self)
        self.setModel(self._model)
        self.setViewMode(QListView.IconMode)
        self.setFlow(QListView.LeftToRight)
        self.setWrapping(False)
        self.setMovement(QListView.Static)
        self.setResizeMode(QListView.Adjust)
        self.setIconSize(QSize(THUMB, THUMB))
        self.setSpacing(3)
        self.setUniformItemSizes(True)
        self.setSelectionMode(QAbstractItemView.SingleSelection)
        self.setHorizontalScrollMode(QAbstractItemView.ScrollPerPixel)
        self.setVerticalScrollBarPolicy(Qt.ScrollBarAlwaysOff)
        self.setFixedHeight(THUMB + self.fontMetrics().height() + 30)
        self.setToolTip("Crops of the detections shown on this image; click one to select it")
        self.clicked.connect(lambda index: self.cropClicked.emit(index.data(Qt.UserRole)))

    def set_crops(self, image: QImage | None, scale: float, boxes: list[BoxInfo],
                  threshold: float, label_threshold: float) -> None:
        """Show a crop per box (best first). ``scale`` maps original pixels to ``image``'s."""
        crops: list[_Crop] = []
        if image is not None and not image.isNull():
            bounds = QRect(0, 0, image.width(), image.height())
            for info in boxes:
                b = info.box
                rect = QRect(int(b.x1 * scale), int(b.y1 * scale),
                             max(1, int(b.width * scale)), max(1, int(b.height * scale)))
                rect = rect.intersected(bounds)
                if rect.isEmpty():
                    continue
                crop = image.copy(rect).scaled(THUMB, THUMB, Qt.KeepAspectRatio,
                                               Qt.SmoothTransformation)
                crops.append(_Crop(info.detection_id,
                                   QIcon(_framed(crop, COLOURS[classify(info, threshold)])),
                                   "drawn" if info.is_human else  # a person's: no score
                                   short_label(info, label_threshold).rsplit(" ", 1)[-1],
                                   tooltip(info)))
        self._model.replace(crops)

    def count(self) -> int:
        return self._model.rowCount()

    def select_detection(self, detection_id: int) -> None:
        self.blockSignals(True)
        try:
            for row, crop in enumerate(self._model.crops):
                if crop.detection_id == detection_id:
                    index = self._model.index(row)
                    self.setCurrentIndex(index)
                    self.scrollTo(index)
                    return
            self.clearSelection()
        finally:
            self.blockSignals(False)

    def current_detection(self) -> int | None:
        index = self.currentIndex()
        return index.data(Qt.UserRole) if index.isValid() else None

    def detection_ids(self) -> list[int]:
        return [c.detection_id for c in self._model.crops]


def _framed(crop: QImage, colour: QColor) -> QPixmap:
    """The crop centred on a square with a frame of its class colour."""
    pix = QPixmap(THUMB, THUMB)
    pix.fill(Qt.transparent)
    p = QPainter(pix)
    p.drawImage((THUMB - crop.width()) // 2, (THUMB - crop.height()) // 2, crop)
    pen = QPen(colour, 3)
    p.setPen(pen)
    p.drawRect(1, 1, THUMB - 3, THUMB - 3)
    p.end()
    return pix
