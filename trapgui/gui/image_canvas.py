"""The zoomable, pannable QGraphicsView under the image viewer: wheel and +/- zoom around the
mouse, drag to pan, fit-to-window that follows resizes, arrow keys ask for the next image."""

from __future__ import annotations

from PySide6.QtCore import QRectF, Qt, Signal
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import QFrame, QGraphicsView

MIN_SCALE, MAX_SCALE = 0.02, 16.0
STEP = 1.25


class ImageCanvas(QGraphicsView):
    stepRequested = Signal(int)  # -1 previous image, +1 next image
    zoomChanged = Signal(float)

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
        if key in (Qt.Key_Left, Qt.Key_PageUp):
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
