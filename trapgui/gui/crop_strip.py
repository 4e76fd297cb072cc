"""A horizontal strip of the current image's crops, cut from the image the viewer has already
decoded (no second read of the file). Clicking a crop selects its box in the viewer."""

from __future__ import annotations

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QColor, QIcon, QImage, QPainter, QPen, QPixmap
from PySide6.QtWidgets import QAbstractItemView, QListView, QListWidget, QListWidgetItem

from trapgui.gui.box_item import COLOURS, classify, short_label, tooltip
from trapgui.services.results_types import BoxInfo

THUMB = 88


class CropStrip(QListWidget):
    cropClicked = Signal(int)  # detection id

    def __init__(self, parent=None):
        super().__init__(parent)
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
        self.itemClicked.connect(lambda item: self.cropClicked.emit(item.data(Qt.UserRole)))

    def set_crops(self, image: QImage | None, scale: float, boxes: list[BoxInfo],
                  threshold: float, label_threshold: float) -> None:
        """Show a crop per box (best first). ``scale`` maps original pixels to ``image``'s."""
        self.clear()
        if image is None or image.isNull():
            return
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
            item = QListWidgetItem(QIcon(_framed(crop, COLOURS[classify(info, threshold)])),
                                   short_label(info, label_threshold).rsplit(" ", 1)[-1])
            item.setData(Qt.UserRole, info.detection_id)
            item.setToolTip(tooltip(info))
            item.setTextAlignment(Qt.AlignHCenter)
            self.addItem(item)

    def select_detection(self, detection_id: int) -> None:
        self.blockSignals(True)
        try:
            for i in range(self.count()):
                item = self.item(i)
                if item.data(Qt.UserRole) == detection_id:
                    self.setCurrentItem(item)
                    self.scrollToItem(item)
                    return
            self.clearSelection()
        finally:
            self.blockSignals(False)

    def detection_ids(self) -> list[int]:
        return [self.item(i).data(Qt.UserRole) for i in range(self.count())]


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
