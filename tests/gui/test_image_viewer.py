"""The image viewer on real trap photographs: box overlays coloured by class, the score slider,
previous/next within the night, zoom, selection, the crop strip and the preview-then-full
loading of a 4K image."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from PySide6.QtCore import QPoint, Qt

from tests.gui.results_fixtures import populate
from trapgui.db import open_database
from trapgui.gui.box_item import COLOURS, BoxClass
from trapgui.gui.image_viewer import PREVIEW_SIDE, ImageViewer
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui


def _make(tmp_path, folder: Path, names: list[str], size, n_detections=60):
    path = tmp_path / "catalogue.sqlite3"
    db = open_database(path)
    cat = populate(db, folder, n_detections=n_detections, n_nights=1,
                   images_per_night=len(names), image_names=names, image_size=size,
                   with_classifications=True, seed=7)
    db.close()
    services = Services.create(config_dir=tmp_path / "config", db_path=path)
    return services, cat, path


@pytest.fixture
def panama(tmp_path, small_trap_images):
    folder = small_trap_images / "panama"
    names = sorted(p.name for p in folder.glob("*.jpg"))
    from PIL import Image

    with Image.open(folder / names[0]) as im:
        size = im.size
    services, cat, path = _make(tmp_path, folder, names, size)
    yield services, cat, path
    services.close()


def _rows(path, image_id):
    with sqlite3.connect(path) as con:
        return con.execute("SELECT id, score, binary_label FROM detections WHERE image_id = ?",
                           (image_id,)).fetchall()


def _open(qtbot, services, image_id, detection_id=-1):
    viewer = ImageViewer(services)
    qtbot.addWidget(viewer)
    viewer.resize(1000, 700)
    viewer.show()
    viewer.set_threshold(0.5, 0.5)
    viewer.show_image(image_id, detection_id)
    qtbot.waitUntil(lambda: viewer.current_image_id() == image_id
                    and viewer.is_full_resolution(), timeout=10_000)
    return viewer


def test_boxes_coloured_by_class_and_slider(qtbot, panama):
    services, cat, path = panama
    image_id = cat.image_ids[0]
    viewer = _open(qtbot, services, image_id)
    rows = _rows(path, image_id)
    assert rows and len(viewer.box_items()) == len(rows)

    def expected(score, label, threshold):
        if score < threshold:
            return BoxClass.BELOW
        if label is None:
            return BoxClass.UNCLASSIFIED
        return BoxClass.MOTH if label == "moth" else BoxClass.NON_MOTH

    by_id = {r[0]: r for r in rows}
    for item in viewer.box_items():
        _, score, label = by_id[item.info.detection_id]
        assert item.box_class is expected(score, label, 0.5)
        assert item.pen().color() == COLOURS[item.box_class]
        assert item.isVisible() == (score >= 0.5)
    assert {i.box_class for i in viewer.visible_box_items()} <= {
        BoxClass.MOTH, BoxClass.NON_MOTH, BoxClass.UNCLASSIFIED}

    viewer.slider.setValue(80)  # instantly: no query, no reload
    assert len(viewer.visible_box_items()) == sum(1 for r in rows if r[1] >= 0.8)
    assert viewer.crops.count() == len(viewer.visible_box_items())
    viewer.slider.setValue(0)
    assert len(viewer.visible_box_items()) == len(rows)

    viewer.slider.setValue(70)
    viewer.below_check.setChecked(True)
    assert len(viewer.visible_box_items()) == len(rows)
    below = [i for i in viewer.box_items() if i.info.score < 0.7]
    assert below and all(i.box_class is BoxClass.BELOW and i.pen().style() == Qt.DashLine
                         for i in below)
    assert "detections shown" in viewer.info.text()


def test_prev_next_within_the_night(qtbot, panama):
    services, cat, path = panama
    viewer = _open(qtbot, services, cat.image_ids[0])
    assert not viewer.prev_button.isEnabled() and viewer.next_button.isEnabled()
    viewer.canvas.setFocus()
    with qtbot.waitSignal(viewer.imageShown, timeout=10_000) as sig:
        qtbot.keyClick(viewer.canvas, Qt.Key_Right)
    assert sig.args == [cat.image_ids[1]]
    assert len(viewer.box_items()) == len(_rows(path, cat.image_ids[1]))
    with qtbot.waitSignal(viewer.imageShown, timeout=10_000) as sig:
        qtbot.keyClick(viewer.canvas, Qt.Key_Left)
    assert sig.args == [cat.image_ids[0]]
    qtbot.keyClick(viewer.canvas, Qt.Key_Left)  # nothing before the first image
    qtbot.waitUntil(lambda: "First image" in viewer.info.text(), timeout=5_000)
    assert viewer.current_image_id() == cat.image_ids[0]
    for _ in range(len(cat.image_ids) - 1):
        with qtbot.waitSignal(viewer.imageShown, timeout=10_000):
            viewer.next_button.click()
    assert viewer.current_image_id() == cat.image_ids[-1]
    assert not viewer.next_button.isEnabled()


def test_zoom_fit_and_selection(qtbot, panama):
    services, cat, path = panama
    viewer = _open(qtbot, services, cat.image_ids[0])
    fit = viewer.canvas.scale_factor()
    assert viewer.canvas.fitting
    qtbot.keyClick(viewer.canvas, Qt.Key_Plus)
    assert viewer.canvas.scale_factor() == pytest.approx(fit * 1.25)
    viewer.zoom_out_button.click()
    viewer.zoom_out_button.click()
    assert viewer.canvas.scale_factor() == pytest.approx(fit * 1.25 * 0.8 * 0.8)
    qtbot.keyClick(viewer.canvas, Qt.Key_F)
    assert viewer.canvas.fitting and viewer.canvas.scale_factor() == pytest.approx(fit)

    # opening at a detection highlights and centres it, and the crop strip follows
    # (a box in the middle of the image: one at the very edge cannot be scrolled to the centre)
    mid = viewer.scene.sceneRect().center()
    target = min(viewer.box_items(), key=lambda i: (i.rect().center() - mid).manhattanLength()
                 ).info.detection_id
    viewer2 = _open(qtbot, services, cat.image_ids[0], target)
    item = viewer2._items[target]
    assert item.isSelected() and viewer2.selected_detection() == target
    centre = viewer2.canvas.mapFromScene(item.rect().center())
    vp = viewer2.canvas.viewport().rect().center()
    assert abs(centre.x() - vp.x()) < 60 and abs(centre.y() - vp.y()) < 60
    assert viewer2.canvas.scale_factor() > viewer.canvas.scale_factor()  # zoomed in on it
    assert viewer2.crops.current_detection() == target

    # clicking another crop selects its box
    other = next(d for d in viewer2.crops.detection_ids() if d != target)
    with qtbot.waitSignal(viewer2.detectionSelected) as sig:
        viewer2.crops.cropClicked.emit(other)
    assert sig.args == [other] and viewer2._items[other].isSelected()

    # hovering a box: its tooltip carries the detection's details
    assert f"Detection {other}" in viewer2._items[other].toolTip()
    assert "Detector:" in viewer2._items[other].toolTip()


def test_4k_image_preview_first_then_full(qtbot, tmp_path, shared_images):
    folder = shared_images / "vermont"
    names = sorted(p.name for p in folder.glob("*.jpg"))
    services, cat, _ = _make(tmp_path, folder, names, (4096, 2160), n_detections=20)
    try:
        viewer = ImageViewer(services)
        qtbot.addWidget(viewer)
        viewer.resize(900, 600)
        viewer.show()
        loads = []
        viewer.imageLoaded.connect(lambda i, width: loads.append(
            (viewer.is_full_resolution(), width)))
        viewer.show_image(cat.image_ids[0])
        qtbot.waitUntil(lambda: bool(loads) and loads[-1][0], timeout=20_000)
        assert loads[0] == (False, PREVIEW_SIDE)  # the preview comes first...
        assert loads[-1] == (True, 4096)  # ...then the full resolution, in the same scene
        assert viewer.scene.sceneRect().width() == 4096
        assert viewer._pixmap_item.sceneBoundingRect().width() == pytest.approx(4096)
        # wheel zoom around the mouse
        before = viewer.canvas.scale_factor()
        from PySide6.QtCore import QPointF
        from PySide6.QtGui import QWheelEvent

        pos = QPointF(viewer.canvas.viewport().rect().center())
        ev = QWheelEvent(pos, viewer.canvas.viewport().mapToGlobal(pos), QPoint(0, 0),
                         QPoint(0, 120), Qt.NoButton, Qt.NoModifier, Qt.NoScrollPhase, False)
        viewer.canvas.wheelEvent(ev)
        assert viewer.canvas.scale_factor() == pytest.approx(before * 1.25)
    finally:
        services.close()


def test_missing_file_is_a_message_not_a_crash(qtbot, tmp_path):
    services, cat, _ = _make(tmp_path, tmp_path / "gone", ["a.jpg"], (800, 600), n_detections=5)
    try:
        viewer = ImageViewer(services)
        qtbot.addWidget(viewer)
        viewer.show()
        viewer.show_image(cat.image_ids[0])
        qtbot.waitUntil(lambda: "Cannot read" in viewer.info.text(), timeout=10_000)
        assert len(viewer.box_items()) == 5  # the results are still there to inspect
    finally:
        services.close()


def test_keys_zoom_and_selection_survive_moving_through_the_night(qtbot, panama):
    """Arrow keys work without a click into the image (focus was elsewhere), the prev/next
    buttons leave the keys to the image, the zoom is kept from image to image, and moving on
    with a box selected reads no deleted BoxItem (pytest-qt fails on an exception in a slot)."""
    from PySide6.QtWidgets import QApplication, QLineEdit, QVBoxLayout, QWidget

    services, cat, path = panama
    host = QWidget()
    qtbot.addWidget(host)
    elsewhere = QLineEdit(host)
    viewer = ImageViewer(services, host)
    lay = QVBoxLayout(host)
    lay.addWidget(elsewhere)
    lay.addWidget(viewer)
    host.resize(1000, 760)
    host.show()
    qtbot.waitExposed(host)
    host.activateWindow()
    elsewhere.setFocus()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is elsewhere, timeout=5_000)
    viewer.set_threshold(0.5, 0.5)
    viewer.show_image(cat.image_ids[0])
    qtbot.waitUntil(lambda: viewer.current_image_id() == cat.image_ids[0]
                    and viewer.is_full_resolution(), timeout=10_000)
    assert QApplication.focusWidget() is viewer.canvas  # no click needed

    fit = viewer.canvas.scale_factor()
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Plus)
    qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Plus)
    zoomed = viewer.canvas.scale_factor()
    assert zoomed == pytest.approx(fit * 1.25 ** 2)
    viewer.select_detection(viewer.box_items()[0].info.detection_id)  # a selected box
    zoomed = viewer.canvas.scale_factor()
    with qtbot.waitSignal(viewer.imageShown, timeout=10_000) as sig:
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Right)
    assert sig.args == [cat.image_ids[1]]
    assert viewer.canvas.scale_factor() == pytest.approx(zoomed)  # the zoom is kept
    assert not viewer.canvas.fitting and viewer.zoom_label.text() == f"{zoomed * 100:.0f}%"

    viewer.next_button.click()  # a click on the button leaves the focus with the image
    qtbot.waitUntil(lambda: viewer.current_image_id() == cat.image_ids[2], timeout=10_000)
    assert QApplication.focusWidget() is viewer.canvas
    with qtbot.waitSignal(viewer.imageShown, timeout=10_000) as sig:
        qtbot.keyClick(QApplication.focusWidget(), Qt.Key_Left)
    assert sig.args == [cat.image_ids[1]]
    qtbot.keyClick(viewer.canvas, Qt.Key_F)  # fit: the next image is fitted too
    with qtbot.waitSignal(viewer.imageShown, timeout=10_000):
        qtbot.keyClick(viewer.canvas, Qt.Key_Right)
    assert viewer.canvas.fitting


def test_an_unreadable_image_shows_a_message_not_a_zoom(qtbot, tmp_path):
    """A file that cannot be decoded has no size: the viewer says why and shows no zoom
    percentage (its 1 x 1 placeholder "fitted" read 41700%)."""
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    services, cat, path = _make(tmp_path, folder, ["a.jpg"], (800, 600), n_detections=3)
    with sqlite3.connect(path) as con:
        con.execute("UPDATE images SET width = NULL, height = NULL")
    try:
        viewer = ImageViewer(services)
        qtbot.addWidget(viewer)
        viewer.resize(900, 600)
        viewer.show()
        viewer.show_image(cat.image_ids[0])
        qtbot.waitUntil(lambda: viewer.current_image_id() == cat.image_ids[0], timeout=10_000)
        qtbot.waitUntil(lambda: "Cannot decode" in viewer.info.text(), timeout=10_000)
        assert viewer.zoom_label.text() == "–", viewer.zoom_label.text()
        assert not viewer.zoom_in_button.isEnabled()
        viewer.grab().save(str(tmp_path / "broken.png"))
    finally:
        services.close()
