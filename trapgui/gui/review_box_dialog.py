"""Draw a box around an insect the detector missed: one frame of the night and the boxes
already on it (decoded and read off the GUI thread), and a rectangle the person drags; Enter saves it as a
detection with detector "human" (``services.review.add_box``, through the review view)."""

from __future__ import annotations

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QKeyEvent, QPainter, QPen, QPixmap
from PySide6.QtWidgets import (QCheckBox, QDialog, QDialogButtonBox, QGraphicsPixmapItem,
                               QGraphicsRectItem, QGraphicsScene, QGraphicsView, QLabel,
                               QVBoxLayout)

from trapgui.gui.image_loader import load_image
from trapgui.gui.job_runner import job_runner

MAX_SIDE = 2048  # decoded at most this large: a 4K frame shown in a dialog needs no more
MIN_SIDE = 3  # original pixels: a click is not a box


class _DrawingView(QGraphicsView):
    """A QGraphicsView where a left-drag draws one rectangle (in scene coordinates)."""

    drawn = Signal(QRectF)

    def __init__(self, scene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHint(QPainter.RenderHint.SmoothPixmapTransform)
        self.setCursor(Qt.CursorShape.CrossCursor)
        self.setBackgroundBrush(QColor("#202020"))
        self._origin: QPointF | None = None
        self.ready = False  # the frame is shown: drawing starts
        self.rect_item = QGraphicsRectItem()
        pen = QPen(QColor("#ffb000"), 2)
        pen.setCosmetic(True)  # 2 screen pixels at any zoom
        self.rect_item.setPen(pen)
        self.rect_item.setBrush(QBrush(QColor(255, 176, 0, 40)))
        self.rect_item.setZValue(10)
        self.rect_item.setVisible(False)
        scene.addItem(self.rect_item)

    def mousePressEvent(self, event) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.ready:
            self._origin = self._clamped(self.mapToScene(event.position().toPoint()))
            self.rect_item.setRect(QRectF(self._origin, self._origin))
            self.rect_item.setVisible(True)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:
        if self._origin is not None:
            here = self._clamped(self.mapToScene(event.position().toPoint()))
            self.rect_item.setRect(QRectF(self._origin, here).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event) -> None:
        if self._origin is not None and event.button() == Qt.MouseButton.LeftButton:
            here = self._clamped(self.mapToScene(event.position().toPoint()))
            self.rect_item.setRect(QRectF(self._origin, here).normalized())
            self._origin = None
            self.drawn.emit(self.rect_item.rect())
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def _clamped(self, p: QPointF) -> QPointF:
        r = self.sceneRect()
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self.fit()

    def fit(self) -> None:
        if self.ready:
            self.fitInView(self.sceneRect(), Qt.AspectRatioMode.KeepAspectRatio)


class ReviewBoxDialog(QDialog):
    boxDrawn = Signal(int, object, object)  # image id, (x1, y1, x2, y2) original pixels, occ|None
    imageLoaded = Signal()

    def __init__(self, services, pipeline_id: int, image_id: int, image_path: str,
                 occurrence_id: int | None = None, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Draw a missed insect")
        self._image_id = image_id
        self._scale = 1.0  # displayed pixels per original pixel
        self.info = QLabel("Reading the frame…", self)
        self.info.setWordWrap(True)
        self.scene = QGraphicsScene(self)
        self.view = _DrawingView(self.scene, self)
        self.view.drawn.connect(self._drawn)
        self.same = QCheckBox(f"The same individual as occurrence {occurrence_id}", self)
        self.same.setToolTip("Off: a new individual (an occurrence made by a person)")
        self.same.setVisible(occurrence_id is not None)
        self._occurrence = occurrence_id
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel, self)
        self.save = buttons.addButton("Save box", QDialogButtonBox.ButtonRole.AcceptRole)
        self.save.setToolTip("Save the box as a detection by a person (Enter)")
        self.save.setEnabled(False)
        self.save.clicked.connect(self._save)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.info)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.same)
        layout.addWidget(buttons)
        self.resize(900, 640)

        def read():
            return load_image(image_path, MAX_SIDE), services.review.image_boxes(image_id,
                                                                                 pipeline_id)

        job_runner().call(read, self._loaded,
                          lambda exc: self.info.setText(f"The frame could not be read: {exc}"),
                          context=self, name="review: frame image")

    def _loaded(self, result) -> None:
        loaded, boxes = result
        self._scale = loaded.scale
        self.scene.addItem(QGraphicsPixmapItem(QPixmap.fromImage(loaded.image)))
        self.scene.setSceneRect(QRectF(0, 0, loaded.image.width(), loaded.image.height()))
        found = QPen(QColor("#4fc3f7"), 1.5, Qt.PenStyle.DashLine)
        found.setCosmetic(True)
        this = QPen(QColor("#4fc3f7"), 2.5)  # the occurrence the dialog was opened from
        this.setCosmetic(True)
        s = self._scale
        for _det, occ, (x1, y1, x2, y2) in boxes:
            pen = this if occ is not None and occ == self._occurrence else found
            self.scene.addRect(QRectF(x1 * s, y1 * s, (x2 - x1) * s, (y2 - y1) * s), pen)
        self.view.ready = True
        self.view.fit()
        self.info.setText("Drag a rectangle around the insect the detector missed (blue: the "
                          "boxes it found; solid: this occurrence's), then Enter to save it.")
        self.view.setFocus()
        self.imageLoaded.emit()

    def box(self) -> tuple[float, float, float, float] | None:
        """The drawn rectangle in the file's pixels, None if nothing (or a mere click) is drawn."""
        if not self.view.rect_item.isVisible():
            return None
        r, s = self.view.rect_item.rect(), self._scale
        box = (r.left() / s, r.top() / s, r.right() / s, r.bottom() / s)
        if box[2] - box[0] < MIN_SIDE or box[3] - box[1] < MIN_SIDE:
            return None
        return box

    def _drawn(self, _rect) -> None:
        ok = self.box() is not None
        self.save.setEnabled(ok)
        if ok:
            x1, y1, x2, y2 = self.box()
            self.info.setText(f"Box {x2 - x1:.0f} × {y2 - y1:.0f} px: Enter saves it, or drag "
                              "again.")
        else:
            self.info.setText("That box is too small: drag a rectangle around the insect.")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self._save()
            return
        super().keyPressEvent(event)

    def _save(self) -> None:
        box = self.box()
        if box is None:
            return
        occ = self._occurrence if self.same.isChecked() else None
        self.boxDrawn.emit(self._image_id, box, occ)
        self.accept()
