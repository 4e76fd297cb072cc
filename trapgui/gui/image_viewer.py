"""The image viewer: one trap image with its detections drawn on top.

Loading never blocks the window: the catalogue query and the decoding run on the thread pool,
a downscaled preview (decoded at reduced size by libjpeg) is shown first and the full
resolution replaces it. The scene is in original-image pixels, so the boxes stay put when the
preview is swapped for the full image. Each request carries a generation number: an image that
arrives after the user moved on is dropped.

Corrections on the image (``gui.viewer_edits``): Delete (or the box's context menu) deletes the
selected box as not an insect; B (or "Draw box") turns a left-drag into a rectangle
that becomes a person's detection; Ctrl+Z undoes the night's latest review action. They are
the Review tab's service calls, saved at once; the boxes are read again when saved, and
``boxesEdited`` tells the window to refresh the other views. A box a person deleted is not
drawn (it counts nowhere); one a person drew is dash-dotted green, its tooltip says who.
"""

from __future__ import annotations

import shiboken6
from PySide6.QtCore import QRectF, Qt, QTimer, Signal, Slot
from PySide6.QtGui import QBrush, QKeySequence, QPalette, QPixmap, QShortcut
from PySide6.QtWidgets import (
    QGraphicsPixmapItem,
    QGraphicsScene,
    QGraphicsSimpleTextItem,
    QHBoxLayout,
    QLabel,
    QVBoxLayout,
    QWidget,
)

from trapgui.gui.box_item import BoxItem
from trapgui.gui.crop_strip import CropStrip
from trapgui.gui.image_canvas import ImageCanvas
from trapgui.gui.image_loader import load_image
from trapgui.gui.job_runner import job_runner
from trapgui.gui.viewer_corrections import ViewerCorrections, same_box
from trapgui.gui.viewer_edits import ViewerEdits
from trapgui.gui.viewer_toolbar import ViewerToolbar
from trapgui.services.results_types import ImageDetails

PREVIEW_SIDE = 1280
REFRESH_INTERVAL_MS = 1000


class ImageViewer(ViewerCorrections, QWidget):
    detectionSelected = Signal(int)  # detection id (-1: none)
    imageShown = Signal(int)  # image id, once its details are known
    imageLoaded = Signal(int, int)  # image id, width in pixels shown (preview, then full)
    boxesEdited = Signal(object)  # a correction on the image was saved (its ReviewOutcome)
    boxesReloaded = Signal(int)  # image id, its boxes read again after a refresh or an edit
    # the person moved the score slider: the window's one detection threshold follows it
    thresholdChosen = Signal(float)

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._generation = 0
        self._details: ImageDetails | None = None
        self._items: dict[int, BoxItem] = {}
        self._pixmap_item: QGraphicsPixmapItem | None = None
        self._message_item: QGraphicsSimpleTextItem | None = None
        self._loaded = None  # LoadedImage currently shown (preview or full)
        self._full_loaded = False
        self._label_threshold = 0.5
        self._setting_threshold = False  # set_threshold moves the slider, not the person
        self._stale = False  # results changed while the viewer was behind another tab
        self._night_ids: list[int] = []
        self._selecting = False
        self._hidden: set[int] = set()  # boxes being deleted (hidden until saved)
        self._pending: list = []  # QGraphicsRectItems of boxes drawn, not saved yet
        self._select_drawn: tuple | None = None  # select this drawn box when it is read back
        self.box_menu = None  # the latest box context menu (ViewerCorrections)
        self.edits = ViewerEdits(services, self)
        self.edits.applied.connect(self._edit_applied)
        self.edits.failed.connect(self._edit_failed)

        self.scene = QGraphicsScene(self)
        self.scene.selectionChanged.connect(self._on_scene_selection)
        self.canvas = ImageCanvas(self.scene, self)
        self.canvas.setBackgroundBrush(self.palette().brush(QPalette.Window))
        self.canvas.stepRequested.connect(self.step)
        self.canvas.zoomChanged.connect(self._show_zoom)
        self.canvas.boxDrawn.connect(self._box_drawn)
        self.canvas.deleteRequested.connect(self.delete_selected)
        self.canvas.drawToggleRequested.connect(lambda: self.set_drawing(not self.canvas.drawing))
        self.canvas.drawingChanged.connect(self._drawing_changed)
        self.canvas.contextRequested.connect(self._context_menu)
        # arrow keys page through the night wherever the focus is in the viewer, without a
        # click into the image first (the tab or the table that opened it had the focus)
        self.setFocusProxy(self.canvas)

        self.title = QLabel("No image", self)
        self.title.setTextInteractionFlags(Qt.TextSelectableByMouse)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.info = QLabel(self)
        self.info.setForegroundRole(QPalette.PlaceholderText)

        self.toolbar = ViewerToolbar(self)
        tb = self.toolbar
        # the controls, by name (tests and the main window use them)
        self.prev_button, self.next_button = tb.prev_button, tb.next_button
        self.zoom_in_button, self.zoom_out_button = tb.zoom_in_button, tb.zoom_out_button
        self.fit_button, self.zoom_label, self.legend = tb.fit_button, tb.zoom_label, tb.legend
        self.slider, self.slider_label = tb.slider, tb.slider_label
        self.below_check, self.labels_check = tb.below_check, tb.labels_check
        self.draw_button, self.delete_button = tb.draw_button, tb.delete_button
        self.edit_status = tb.edit_status
        self.draw_button.toggled.connect(self.set_drawing)
        self.delete_button.clicked.connect(self.delete_selected)
        self.prev_button.clicked.connect(lambda: self.step(-1))
        self.next_button.clicked.connect(lambda: self.step(1))
        self.zoom_out_button.clicked.connect(lambda: self.canvas.zoom_by(0.8, anchor_mouse=False))
        self.zoom_in_button.clicked.connect(lambda: self.canvas.zoom_by(1.25, anchor_mouse=False))
        self.fit_button.clicked.connect(self.canvas.fit)
        for button in (self.prev_button, self.next_button, self.zoom_in_button,
                       self.zoom_out_button, self.fit_button, self.draw_button,
                       self.delete_button):
            button.setFocusPolicy(Qt.FocusPolicy.TabFocus)  # a click leaves the keys to the image
        self.slider.valueChanged.connect(self._slider_moved)
        self.below_check.toggled.connect(lambda _c: self._restyle())
        self.labels_check.toggled.connect(lambda _c: self._restyle())

        header = QHBoxLayout()
        header.addWidget(self.title)
        header.addWidget(self.info, 1)

        self.crops = CropStrip(self)
        self.crops.cropClicked.connect(self.select_detection)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(header)
        layout.addWidget(self.toolbar)
        layout.addWidget(self.canvas, 1)
        layout.addWidget(self.crops)

        self._refresh_timer = QTimer(self, singleShot=True, interval=REFRESH_INTERVAL_MS)
        self._refresh_timer.timeout.connect(self._reload_boxes)
        undo = QShortcut(QKeySequence(QKeySequence.StandardKey.Undo), self)
        undo.setContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        undo.activated.connect(self.undo)
        self._update_buttons()

    # -- the interface every results view implements ----------------------------------------

    @Slot(object, list)
    def set_selection(self, deployment_id: int | None, night_ids: list[int]) -> None:
        """Show the first image of the selected nights, unless the image shown is in them."""
        self._night_ids = list(night_ids)
        d = self._details
        if d is not None and (d.night_id in night_ids or not night_ids):
            return
        if not night_ids:
            return
        gen = self._next_generation()
        job_runner().call(lambda: self._services.results.first_image(night_ids),
                          lambda image_id: self._first_image(gen, image_id), self._show_error,
                          context=self)

    @Slot(float, float)
    def set_threshold(self, detection: float, classification: float) -> None:
        self._label_threshold = classification
        self._setting_threshold = True
        try:
            self.slider.setValue(round(detection * 100))
        finally:
            self._setting_threshold = False
        self._restyle()

    @Slot(int)
    def _slider_moved(self, value: int) -> None:
        self._restyle()
        if not self._setting_threshold:
            self.thresholdChosen.emit(value / 100)

    @Slot()
    def refresh(self) -> None:
        """Results were committed: re-read this image's boxes (at most once a second). Behind
        another tab of a window on screen (a person reviewing in the Review tab), only once it
        is shown again: rebuilding an image's boxes is GUI-thread work nobody would see."""
        if self._details is None:
            return
        if not self.isVisible() and self.window().isVisible():
            self._stale = True
        elif not self._refresh_timer.isActive():
            self._refresh_timer.start()

    # -- showing an image -------------------------------------------------------------------

    @Slot(int, int)
    def show_image(self, image_id: int, detection_id: int = -1) -> None:
        gen = self._next_generation()
        job_runner().call(lambda: self._services.results.image_details(image_id),
                          lambda d: self._on_details(gen, d, detection_id), self._show_error,
                          context=self)

    def is_full_resolution(self) -> bool:
        return self._full_loaded

    def current_image_id(self) -> int | None:
        return self._details.image_id if self._details else None

    @Slot(int)
    def step(self, delta: int) -> None:
        d = self._details
        if d is None:
            return
        gen = self._generation
        job_runner().call(lambda: self._services.results.neighbour_image(d.image_id, delta),
                          lambda image_id: self._on_neighbour(gen, image_id, delta),
                          self._show_error, context=self)

    def _on_neighbour(self, gen: int, image_id: int | None, delta: int) -> None:
        if gen != self._generation:
            return
        if image_id is None:
            self.info.setText("First image of the night" if delta < 0
                              else "Last image of the night")
            return
        # moving through a night keeps the zoom and the place looked at (same camera)
        self._keep_view = None if self.canvas.fitting else (
            self.canvas.transform(),
            self.canvas.mapToScene(self.canvas.viewport().rect().center()))
        self.show_image(image_id)

    _keep_view = None

    def _first_image(self, gen: int, image_id: int | None) -> None:
        if gen == self._generation and image_id is not None:
            self.show_image(image_id)

    def _next_generation(self) -> int:
        self._generation += 1
        return self._generation

    def _on_details(self, gen: int, details: ImageDetails | None, detection_id: int) -> None:
        if gen != self._generation:
            return
        if details is None:
            self._show_message("This image is no longer in the catalogue.")
            return
        self._details = details
        self._loaded = None
        self._full_loaded = False
        # forget the items before the scene deletes them, and keep the scene quiet meanwhile:
        # clear() announced the lost selection to _on_scene_selection, which then read the
        # deleted BoxItems ("Internal C++ object (BoxItem) already deleted")
        self._items = {}
        self.canvas.cancel_drag()
        self._pending = []
        self._hidden = set()
        self._select_drawn = None
        blocked = self.scene.blockSignals(True)
        try:
            self.scene.clear()
        finally:
            self.scene.blockSignals(blocked)
        self._pixmap_item = None
        self._message_item = None
        w, h = details.width or 1, details.height or 1
        backdrop = self.scene.addRect(QRectF(0, 0, w, h), Qt.NoPen,
                                      QBrush(self.palette().color(QPalette.Base)))
        backdrop.setZValue(-2)
        self.scene.setSceneRect(QRectF(0, 0, w, h))
        self._add_boxes(details)
        self._restyle()
        self._update_title()
        self._update_buttons()
        keep, self._keep_view = self._keep_view, None
        if detection_id in self._items:
            self.select_detection(detection_id)
        elif keep is not None and details.width and details.height:
            transform, centre = keep
            self.canvas.setTransform(transform)
            self.canvas.fitting = False
            self.canvas.centerOn(centre)
            self._show_zoom(self.canvas.scale_factor())
        else:
            self.canvas.fit()
        if self.isVisible() and not self.canvas.hasFocus():
            self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)
        self.imageShown.emit(details.image_id)
        if details.state != "ok":
            self._show_message(details.error or f"This image is {details.state}.")
            return
        path = details.path
        job_runner().call(lambda: load_image(path, PREVIEW_SIDE),
                          lambda img: self._on_image(gen, img, final=False),
                          lambda exc: self._image_failed(gen, exc), context=self)

    def _on_image(self, gen: int, loaded, final: bool) -> None:
        if gen != self._generation:
            return
        d = self._details
        final = final or loaded.image.size() == loaded.full_size
        if d.width is None or d.height is None:  # unknown until decoded
            self.scene.setSceneRect(QRectF(0, 0, loaded.full_size.width(),
                                           loaded.full_size.height()))
            if self.canvas.fitting:
                self.canvas.fit()
        if self._pixmap_item is None:
            self._pixmap_item = self.scene.addPixmap(QPixmap.fromImage(loaded.image))
            self._pixmap_item.setZValue(-1)
            self._pixmap_item.setTransformationMode(Qt.SmoothTransformation)
        else:
            self._pixmap_item.setPixmap(QPixmap.fromImage(loaded.image))
        self._pixmap_item.setScale(1 / loaded.scale)
        self._show_zoom(self.canvas.scale_factor())
        self._loaded = loaded
        self._full_loaded = final
        self._update_crops()
        self.imageLoaded.emit(d.image_id, loaded.image.width())
        if not final:
            path = d.path
            job_runner().call(lambda: load_image(path),
                              lambda img: self._on_image(gen, img, final=True),
                              lambda exc: self._image_failed(gen, exc), context=self)

    def _show_zoom(self, scale: float) -> None:
        """The zoom of the picture; none while there is no picture (a broken or missing file
        has only a 1 x 1 placeholder, whose "fit" read 41700%)."""
        shown = self._pixmap_item is not None or bool(self._details and self._details.width)
        self.zoom_label.setText(f"{scale * 100:.0f}%" if shown else "–")
        for button in (self.zoom_in_button, self.zoom_out_button, self.fit_button):
            button.setEnabled(shown)

    def showEvent(self, event):  # noqa: N802 - Qt API
        super().showEvent(event)
        self.canvas.setFocus(Qt.FocusReason.OtherFocusReason)
        if self._stale:
            self._stale = False
            self.refresh()

    def _image_failed(self, gen: int, exc: BaseException) -> None:
        if gen == self._generation:
            self._show_message(str(exc))

    def _show_message(self, text: str) -> None:
        if self._message_item is None:
            self._message_item = QGraphicsSimpleTextItem()
            self._message_item.setBrush(self.palette().brush(QPalette.Text))
            self._message_item.setFlag(QGraphicsSimpleTextItem.ItemIgnoresTransformations)
            self._message_item.setZValue(10)
            self.scene.addItem(self._message_item)
        self._message_item.setText(text)
        self._message_item.setPos(self.scene.sceneRect().topLeft())
        self.info.setText(text)

    def _show_error(self, exc: BaseException) -> None:
        self.info.setText(f"Could not load the image: {exc}")

    def _reload_boxes(self) -> None:
        d = self._details
        if d is None:
            return
        gen, image_id = self._generation, d.image_id
        selected = self.selected_detection()
        job_runner().call(lambda: self._services.results.image_details(image_id),
                          lambda nd: self._boxes_reloaded(gen, image_id, nd, selected),
                          lambda exc: None, context=self)

    def _boxes_reloaded(self, gen: int, image_id: int, details: ImageDetails | None,
                        selected: int) -> None:
        # A reload may arrive after another image was shown (same generation: a live refresh
        # does not start one); its boxes belong to that earlier image and must be dropped.
        if (gen != self._generation or details is None or self._details is None
                or self._details.image_id != image_id):
            return
        for item in self._items.values():
            # only items still alive in this scene: removing one the scene already deleted
            # (scene.clear() for a new image) crashed the app during runs
            if shiboken6.isValid(item) and item.scene() is self.scene:
                self.scene.removeItem(item)
                item.detach_caption()
        self._items = {}
        self._details = details
        if not self.edits.busy():  # what was drawn is among the boxes read now
            for pending in self._pending:
                if shiboken6.isValid(pending) and pending.scene() is self.scene:
                    self.scene.removeItem(pending)
            self._pending = []
        self._add_boxes(details)
        drawn, self._select_drawn = self._select_drawn, None
        if drawn is not None:
            selected = next((i.info.detection_id for i in self._items.values()
                             if i.info.is_human and same_box(i.info.box, drawn)), selected)
        if selected in self._items:
            self._items[selected].setSelected(True)
        self._restyle()
        self._update_title()
        self._update_buttons()
        self.boxesReloaded.emit(image_id)

    def _add_boxes(self, details: ImageDetails) -> None:
        # a box a person deleted is not drawn: it is in no view and no count
        for info in details.boxes:
            if info.deleted:
                continue
            item = BoxItem(info)
            self._items[info.detection_id] = item
            self.scene.addItem(item)

    # -- boxes ------------------------------------------------------------------------------

    def threshold(self) -> float:
        return self.slider.value() / 100

    def box_items(self) -> list[BoxItem]:
        return list(self._items.values())

    def visible_box_items(self) -> list[BoxItem]:
        return [i for i in self._items.values() if i.isVisible()]

    def _restyle(self) -> None:
        threshold, show_below = self.threshold(), self.below_check.isChecked()
        for item in self._items.values():
            item.restyle(threshold, self._label_threshold, self.labels_check.isChecked())
            item.setVisible((show_below or item.info.score >= threshold)
                            and item.info.detection_id not in self._hidden)
        self._update_crops()
        self._update_title()

    def _update_crops(self) -> None:
        shown = [i.info for i in self._items.values() if i.isVisible()]
        loaded = self._loaded
        self.crops.set_crops(loaded.image if loaded else None, loaded.scale if loaded else 1.0,
                             shown, self.threshold(), self._label_threshold)
        sel = self.selected_detection()
        if sel >= 0:
            self.crops.select_detection(sel)

    def selected_detection(self) -> int:
        for det_id, item in self._items.items():
            if item.isSelected():
                return det_id
        return -1

    @Slot(int)
    def select_detection(self, detection_id: int, centre: bool = True) -> None:
        """Highlight a detection and centre it (its box is shown even if below the slider)."""
        item = self._items.get(detection_id)
        if item is None:
            return
        self._selecting = True  # one selectionChanged for the switch, not "none" then "this"
        try:
            self.scene.clearSelection()
            item.setVisible(True)
            item.setSelected(True)
        finally:
            self._selecting = False
        self._on_scene_selection()
        if centre:
            self.canvas.focus_on(item.rect())

    def _on_scene_selection(self) -> None:
        if self._selecting:
            return
        try:
            sel = self.selected_detection()
        except RuntimeError:  # the scene clears its items while the viewer is torn down
            return
        if sel >= 0:
            self.crops.select_detection(sel)
        self.delete_button.setEnabled(sel >= 0)
        self.detectionSelected.emit(sel)

    def _update_title(self) -> None:
        d = self._details
        if d is None:
            self.title.setText("No image")
            self.info.setText("Select a night, or double-click a detection")
            return
        when = d.captured_at.strftime("%H:%M:%S") if d.captured_at else "time unknown"
        night = f"night of {d.night_date:%d %b %Y}" if d.night_date else "undated"
        self.title.setText(d.rel_path)
        shown = len(self.visible_box_items())
        deleted = sum(1 for b in d.boxes if b.deleted)
        drawn = sum(1 for b in d.boxes if b.is_human and not b.deleted)
        extra = (f" · {drawn} drawn by a person" if drawn else "") + (
            f" · {deleted} deleted as not an insect" if deleted else "")
        self.info.setText(
            f"{d.deployment_name} · {night} · {when} · image {d.index_in_night + 1} of "
            f"{d.night_size} · {shown} of {len(d.boxes) - deleted} detections shown{extra}")

    def _update_buttons(self) -> None:
        d = self._details
        self.prev_button.setEnabled(d is not None and d.index_in_night > 0)
        self.next_button.setEnabled(d is not None and d.index_in_night < d.night_size - 1)
        self.draw_button.setEnabled(d is not None)
        self.delete_button.setEnabled(d is not None and self.selected_detection() >= 0)

