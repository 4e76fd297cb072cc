"""The image viewer's corrections on the image, as a mixin of ``ImageViewer`` (which holds the
widgets and the state these methods use): delete the selected box as not an insect (Delete, or
the box's context menu), draw a box around a missed insect (B: a left-drag on the canvas),
undo (Ctrl+Z). The saving is ``gui.viewer_edits``; the boxes are read again once saved."""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QPoint, QRectF, Qt, Slot
from PySide6.QtGui import QKeySequence, QPen
from PySide6.QtWidgets import QGraphicsRectItem, QMenu

from trapgui.core.errors import TrapguiError
from trapgui.gui.box_item import COLOURS, BoxClass, BoxItem
from trapgui.gui.error_dialog import show_error


class ViewerCorrections:
    @Slot(bool)
    def set_drawing(self, on: bool) -> None:
        """Drawing mode: a left-drag draws a box around a missed insect (B, Esc leaves)."""
        if on and self._details is None:
            on = False
        self.canvas.set_drawing(on)
        self._drawing_changed(self.canvas.drawing)

    def _drawing_changed(self, on: bool) -> None:
        blocked = self.draw_button.blockSignals(True)
        self.draw_button.setChecked(on)
        self.draw_button.blockSignals(blocked)
        if on:
            self.edit_status.setText("Drawing: drag around a missed insect · Esc cancels · "
                                     "B stops")
        elif self.edit_status.text().startswith("Drawing:"):
            self.edit_status.setText("")

    def _box_drawn(self, rect: QRectF) -> None:
        d = self._details
        if d is None:
            return
        box = (rect.left(), rect.top(), rect.right(), rect.bottom())  # scene = file pixels
        pending = QGraphicsRectItem(rect)
        pen = QPen(COLOURS[BoxClass.HUMAN], 2.0, Qt.DashDotLine)
        pen.setCosmetic(True)
        pending.setPen(pen)
        pending.setZValue(5)
        pending.setToolTip("Saving this box…")
        self.scene.addItem(pending)
        self._pending.append(pending)
        self._select_drawn = box
        self.edit_status.setText(f"Saving a box of {rect.width():.0f} × {rect.height():.0f} px…")
        self.edits.add_box(d.image_id, box)

    @Slot()
    def delete_selected(self) -> None:
        """The selected box is not an insect: deleted (counted nowhere; Ctrl+Z undoes it)."""
        det = self.selected_detection()
        if det < 0:
            self.edit_status.setText("Select a box first (click it), then press Delete.")
            return
        self.delete_box(det)

    def delete_box(self, detection_id: int) -> None:
        item = self._items.get(detection_id)
        if item is None:
            return
        self._hidden.add(detection_id)
        item.setSelected(False)
        self._restyle()
        self.edit_status.setText(f"Deleting detection {detection_id}…")
        self.edits.delete_box(detection_id)

    @Slot()
    def undo(self) -> None:
        d = self._details
        if d is None:
            return
        if d.night_id is None:
            self.edit_status.setText("Nothing to undo here: this image belongs to no night.")
            return
        self.edit_status.setText("Undoing…")
        self.edits.undo(d.night_id)

    def _edit_applied(self, outcome) -> None:
        self._hidden = set()
        text = outcome.summary.rstrip(".") + "."
        self.edit_status.setText(text[:1].upper() + text[1:]
                                 + ("  Ctrl+Z undoes it." if not text.startswith("Undone")
                                    else ""))
        self._reload_boxes()
        self.boxesEdited.emit(outcome)

    def _edit_failed(self, exc: BaseException) -> None:
        self._hidden = set()
        self._select_drawn = None
        for pending in self._pending:
            if shiboken6.isValid(pending) and pending.scene() is self.scene:
                self.scene.removeItem(pending)
        self._pending = []
        self._restyle()
        self.edit_status.setText(f"Not saved: {exc}" if isinstance(exc, TrapguiError)
                                 else "Not saved: an unexpected problem (see the message).")
        if not isinstance(exc, TrapguiError):
            show_error(self, "Correction not saved", exc)

    def _context_menu(self, scene_item, global_pos: QPoint) -> None:
        item = scene_item
        while item is not None and not isinstance(item, BoxItem):
            item = item.parentItem()
        if item is not None and item.info.detection_id in self._items:
            self.select_detection(item.info.detection_id, centre=False)
        menu = QMenu(self)
        delete = menu.addAction("Not an insect (delete box)")
        delete.setShortcut(QKeySequence(Qt.Key.Key_Delete))
        delete.setEnabled(item is not None)
        if item is not None:
            det = item.info.detection_id
            delete.triggered.connect(lambda: self.delete_box(det))
        menu.addSeparator()
        draw = menu.addAction("Draw a missed box")
        draw.setShortcut(QKeySequence(Qt.Key.Key_B))
        draw.setEnabled(self._details is not None)
        draw.triggered.connect(lambda: self.set_drawing(True))
        undo = menu.addAction("Undo")
        undo.setShortcut(QKeySequence(QKeySequence.StandardKey.Undo))
        undo.setEnabled(self._details is not None and self._details.night_id is not None)
        undo.triggered.connect(self.undo)
        self.box_menu = menu  # kept: tests trigger its actions; popup() does not block
        menu.popup(global_pos)


def same_box(box, drawn: tuple, tol: float = 0.5) -> bool:
    """The stored box of a drawn rectangle (the catalogue clamps it to the image)."""
    return all(abs(a - b) <= tol for a, b in zip((box.x1, box.y1, box.x2, box.y2), drawn))
