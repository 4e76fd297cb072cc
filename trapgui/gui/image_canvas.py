"""The zoomable, pannable QGraphicsView under the image viewer: wheel and +/- zoom around the
mouse, drag to pan, fit-to-window that follows resizes, arrow keys ask for the next image.

In drawing mode (``set_drawing``) a left-drag draws one rectangle instead of panning; its
release (or Enter while dragging) hands the rectangle over in scene coordinates, which are the
image file's pixels whatever the zoom. Esc cancels the drag, a second Esc leaves the mode."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QBrush, QColor, QPainter, QPen
from PySide6.QtWidgets import QFrame, QGraphicsRectItem, QGraphicsView

MIN_SCALE, MAX_SCALE = 0.02, 16.0
STEP = 1.25
MIN_BOX = 3.0  # file pixels a drawn box must span each way: a click is not a box
RUBBER = QColor("#00e08a")  # the colour of a person's boxes (box_item.COLOURS[HUMAN])


class ImageCanvas(QGraphicsView):
    stepRequested = Signal(int)  # -1 previous image, +1 next image
    zoomChanged = Signal(float)
    boxDrawn = Signal(QRectF)  # a rectangle drawn in drawing mode, in file pixels
    drawingChanged = Signal(bool)
    deleteRequested = Signal()  # Delete / Backspace: the selected box is not an insect
    drawToggleRequested = Signal()  # B
    contextRequested = Signal(object, QPoint)  # scene item under the mouse (or None), global

    def __init__(self, scene, parent=None):
        super().__init__(scene, parent)
        self.setRenderHints(QPainter.Antialiasing | QPainter.SmoothPixmapTransform)
        self.setDragMode(QGraphicsView.ScrollHandDrag)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.setResizeAnchor(QGraphicsView.AnchorViewCenter)
        self.setViewportUpdateMode(QGraphicsView.SmartViewportUpdate)
        self.setFrameShape(QFrame.NoFrame)
        self.setFocusPolicy(Qt.StrongFocus)
        self.fitting = True
        self.drawing = False
        self._origin: QPointF | None = None
        self._rubber: QGraphicsRectItem | None = None

    # -- drawing a box ----------------------------------------------------------------------

    def set_drawing(self, on: bool) -> None:
        if on == self.drawing:
            return
        self.cancel_drag()
        self.drawing = on
        self.setDragMode(QGraphicsView.NoDrag if on else QGraphicsView.ScrollHandDrag)
        if on:
            self.viewport().setCursor(Qt.CrossCursor)
        else:
            self.viewport().unsetCursor()
        self.drawingChanged.emit(on)

    def dragging(self) -> bool:
        return self._origin is not None

    def cancel_drag(self) -> None:
        """Forget a rectangle being dragged (Esc, another image, leaving the mode)."""
        self._origin = None
        rubber, self._rubber = self._rubber, None
        # the scene deletes its items when it is cleared for another image
        if rubber is not None and shiboken6.isValid(rubber) and rubber.scene() is not None:
            rubber.scene().removeItem(rubber)

    def _scene_point(self, pos) -> QPointF:
        p = self.mapToScene(pos.toPoint() if hasattr(pos, "toPoint") else pos)
        r = self.sceneRect()
        return QPointF(min(max(p.x(), r.left()), r.right()), min(max(p.y(), r.top()), r.bottom()))

    def _finish_drag(self) -> None:
        rect = self._rubber.rect() if self._rubber is not None else QRectF()
        self.cancel_drag()
        if rect.width() >= MIN_BOX and rect.height() >= MIN_BOX:
            self.boxDrawn.emit(rect)

    def mousePressEvent(self, event):
        if self.drawing and event.button() == Qt.LeftButton and self.scene() is not None:
            self.cancel_drag()
            self._origin = self._scene_point(event.position())
            self._rubber = QGraphicsRectItem(QRectF(self._origin, self._origin))
            pen = QPen(RUBBER, 2.0, Qt.DashDotLine)
            pen.setCosmetic(True)  # 2 screen pixels at any zoom
            self._rubber.setPen(pen)
            self._rubber.setBrush(QBrush(QColor(0, 224, 138, 40)))
            self._rubber.setZValue(20)
            self.scene().addItem(self._rubber)
            event.accept()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event):
        if self._origin is not None and self._rubber is not None:
            here = self._scene_point(event.position())
            self._rubber.setRect(QRectF(self._origin, here).normalized())
            event.accept()
            return
        super().mouseMoveEvent(event)

    def mouseReleaseEvent(self, event):
        if self._origin is not None and event.button() == Qt.LeftButton:
            if self._rubber is not None:
                here = self._scene_point(event.position())
                self._rubber.setRect(QRectF(self._origin, here).normalized())
            self._finish_drag()
            event.accept()
            return
        super().mouseReleaseEvent(event)

    def contextMenuEvent(self, event):
        if self.drawing:
            event.accept()
            return
        self.contextRequested.emit(self.itemAt(event.pos()), event.globalPos())
        event.accept()

    def scale_factor(self) -> float:
        return self.transform().m11()

    def zoom_by(self, factor: float, anchor_mouse: bool = True) -> None:
        target = min(MAX_SCALE, max(MIN_SCALE, self.scale_factor() * factor))
        factor = target / self.scale_factor()
        if abs(factor - 1) < 1e-6:
            return
        self.fitting = False
        if not anchor_mouse:
            self.setTransformationAnchor(QGraphicsView.AnchorViewCenter)
        self.scale(factor, factor)
        self.setTransformationAnchor(QGraphicsView.AnchorUnderMouse)
        self.zoomChanged.emit(self.scale_factor())

    def fit(self) -> None:
        self.fitting = True
        rect = self.sceneRect()
        if rect.isEmpty():
            return
        self.fitInView(rect, Qt.KeepAspectRatio)
        self.zoomChanged.emit(self.scale_factor())

    def focus_on(self, rect: QRectF, context: float = 5.0, max_scale: float = 1.5) -> None:
        """Centre ``rect`` and zoom so it and some of its surroundings fill the view."""
        area = rect.adjusted(-rect.width() * context / 2, -rect.height() * context / 2,
                             rect.width() * context / 2, rect.height() * context / 2)
        vw, vh = self.viewport().width(), self.viewport().height()
        scale = min(vw / max(1.0, area.width()), vh / max(1.0, area.height()), max_scale)
        scale = max(scale, min(self._fit_scale(), max_scale))  # never smaller than the fit
        self.fitting = False
        self.resetTransform()
        self.scale(scale, scale)
        self.centerOn(rect.center())
        self.zoomChanged.emit(self.scale_factor())

    def _fit_scale(self) -> float:
        rect = self.sceneRect()
        if rect.isEmpty():
            return 1.0
        return min(self.viewport().width() / rect.width(), self.viewport().height() / rect.height())

    def wheelEvent(self, event):
        delta = event.angleDelta().y()
        if delta:
            self.zoom_by(STEP ** (delta / 120))
            event.accept()
        else:
            super().wheelEvent(event)

    def keyPressEvent(self, event):
        key = event.key()
        if key == Qt.Key_Escape and (self.dragging() or self.drawing):
            if self.dragging():
                self.cancel_drag()
            else:
                self.set_drawing(False)
        elif key in (Qt.Key_Return, Qt.Key_Enter) and self.dragging():
            self._finish_drag()
        elif key in (Qt.Key_Delete, Qt.Key_Backspace):
            self.deleteRequested.emit()
        elif key == Qt.Key_B and event.modifiers() == Qt.NoModifier:
            self.drawToggleRequested.emit()
        elif key in (Qt.Key_Left, Qt.Key_PageUp):
            self.stepRequested.emit(-1)
        elif key in (Qt.Key_Right, Qt.Key_PageDown, Qt.Key_Space):
            self.stepRequested.emit(1)
        elif key in (Qt.Key_Plus, Qt.Key_Equal):
            self.zoom_by(STEP, anchor_mouse=False)
        elif key == Qt.Key_Minus:
            self.zoom_by(1 / STEP, anchor_mouse=False)
        elif key in (Qt.Key_F, Qt.Key_0):
            self.fit()
        else:
            super().keyPressEvent(event)

    def resizeEvent(self, event):
        super().resizeEvent(event)
        if self.fitting:
            self.fit()
