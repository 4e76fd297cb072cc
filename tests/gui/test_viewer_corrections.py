"""Corrections on the image in the main image viewer, through the real widgets with pytest-qt:
delete a false box (Delete key, the box's context menu), draw a box around a missed insect
(B, a mouse drag on the canvas viewport at a zoom other than 1, Enter, Esc), undo with Ctrl+Z.
A real night (the shared sequential photographs, real tracking), real services and job runner;
every change is checked in the SQLite catalogue, and a drawn box survives its image being
processed again and re-tracked."""

from __future__ import annotations

import pytest
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtGui import QContextMenuEvent
from PySide6.QtWidgets import QApplication
from sqlalchemy import select

from tests.gui.review_fixtures import SEQUENTIAL, build_sequential
from trapgui.core.geometry import Box
from trapgui.core.types import DetectionResult, ImageResult
from trapgui.db import jobqueue
from trapgui.db.tables import Detection, Occurrence
from trapgui.pipeline.tracking_job import track_catalogue_nights
from trapgui.services.results_types import DetectionQuery

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(not SEQUENTIAL.is_dir(), reason="../shared trap images missing")]
REVIEWER = "Kim Reviewer"


@pytest.fixture
def night(services):
    services.settings.reviewer_name = REVIEWER
    return build_sequential(services.db)


@pytest.fixture
def viewer(qtbot, services, night):
    from trapgui.gui.image_viewer import ImageViewer
    from trapgui.gui.job_runner import job_runner

    v = ImageViewer(services)
    qtbot.addWidget(v)
    v.resize(1100, 760)
    v.show()
    v.set_threshold(0.0, 0.5)
    image_id = _busiest_image(services, night)
    v.show_image(image_id)
    qtbot.waitUntil(lambda: v.current_image_id() == image_id and v.is_full_resolution(),
                    timeout=60_000)
    v.canvas.setFocus()
    yield v
    qtbot.waitUntil(lambda: not v.edits.busy(), timeout=60_000)
    job_runner().wait(30)


def _busiest_image(services, night) -> int:
    pid, night_id = night
    with services.db.session() as s:
        rows = s.execute(select(Detection.image_id).where(Detection.pipeline_id == pid)).all()
    counts: dict[int, int] = {}
    for (image_id,) in rows:
        counts[image_id] = counts.get(image_id, 0) + 1
    return max(counts, key=lambda i: (counts[i], -i))


def _saved(qtbot, viewer, action):
    """Do ``action`` and wait until the correction is saved and the boxes are read again."""
    with qtbot.waitSignal(viewer.boxesReloaded, timeout=60_000):
        with qtbot.waitSignal(viewer.boxesEdited, timeout=60_000) as blocker:
            action()
    return blocker.args[0]


def _det(services, det_id):
    with services.db.session() as s:
        return s.execute(select(Detection).where(Detection.id == det_id)).scalars().first()


def _occ(services, occ_id):
    with services.db.session() as s:
        return s.execute(select(Occurrence).where(Occurrence.id == occ_id)).scalars().first()


def _table_count(services, night) -> int:
    return services.results.count_detections(DetectionQuery(night_ids=(night[1],)))


def _click_box(qtbot, viewer, det_id):
    item = viewer._items[det_id]
    # a point inside this box and no other (the boxes of a trap photo may overlap)
    r = item.rect()
    others = [i.rect() for d, i in viewer._items.items() if d != det_id]
    for fx in (0.5, 0.25, 0.75, 0.1, 0.9):
        for fy in (0.5, 0.25, 0.75, 0.1, 0.9):
            p = QPointF(r.left() + r.width() * fx, r.top() + r.height() * fy)
            if not any(o.contains(p) for o in others):
                qtbot.mouseClick(viewer.canvas.viewport(), Qt.MouseButton.LeftButton,
                                 pos=viewer.canvas.mapFromScene(p))
                return
    raise AssertionError(f"no point of box {det_id} outside the others")


def test_delete_a_false_box_with_the_delete_key_and_undo(qtbot, services, viewer, night):
    target = max(viewer.box_items(), key=lambda i: i.rect().width() * i.rect().height())
    det_id, before = target.info.detection_id, target.info.occurrence_id
    shown, in_table = len(viewer.box_items()), _table_count(services, night)
    _click_box(qtbot, viewer, det_id)
    assert viewer.selected_detection() == det_id and viewer.delete_button.isEnabled()
    outcome = _saved(qtbot, viewer, lambda: qtbot.keyClick(viewer.canvas, Qt.Key.Key_Delete))
    assert outcome.kind == "delete box"
    det = _det(services, det_id)
    occ = _occ(services, det.occurrence_id)
    assert occ.review_state == "rejected" and occ.identified_by == REVIEWER
    assert det.occurrence_id != before
    # gone from the image, its crop strip and the detections table; the title says so
    assert det_id not in {i.info.detection_id for i in viewer.box_items()}
    assert len(viewer.box_items()) == shown - 1
    assert det_id not in set(viewer.crops.detection_ids())
    assert _table_count(services, night) == in_table - 1
    assert "1 deleted as not an insect" in viewer.info.text()
    assert "deleted as a false box" in viewer.edit_status.text()
    # Ctrl+Z puts it back where it was
    outcome = _saved(qtbot, viewer, lambda: qtbot.keyClick(
        viewer.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier))
    assert outcome.summary.startswith("Undone")
    assert _det(services, det_id).occurrence_id == before
    assert det_id in {i.info.detection_id for i in viewer.box_items()}
    assert _table_count(services, night) == in_table


def test_delete_from_the_context_menu(qtbot, services, viewer):
    item = viewer.box_items()[0]
    det_id = item.info.detection_id
    pos = viewer.canvas.mapFromScene(item.rect().center())
    event = QContextMenuEvent(QContextMenuEvent.Reason.Mouse, pos,
                              viewer.canvas.viewport().mapToGlobal(pos))
    QApplication.sendEvent(viewer.canvas.viewport(), event)
    menu = viewer.box_menu
    assert menu is not None and viewer.selected_detection() == det_id
    (delete,) = [a for a in menu.actions() if a.text() == "Not an insect (delete box)"]
    assert delete.isEnabled()
    _saved(qtbot, viewer, delete.trigger)
    menu.close()
    assert _occ(services, _det(services, det_id).occurrence_id).review_state == "rejected"
    assert det_id not in {i.info.detection_id for i in viewer.box_items()}


def test_draw_a_missed_box_at_a_zoom_with_the_mouse_and_undo(qtbot, services, viewer, night):
    pid, night_id = night
    viewer.canvas.fit()
    viewer.canvas.zoom_by(1.7, anchor_mouse=False)  # scene = file pixels at any zoom
    assert abs(viewer.canvas.scale_factor() - 1.0) > 0.05
    in_table = _table_count(services, night)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_B)
    assert viewer.canvas.drawing and viewer.draw_button.isChecked()
    vp = viewer.canvas.viewport()
    a, b = QPoint(vp.width() // 2 - 60, vp.height() // 2 - 40), QPoint(vp.width() // 2 + 50,
                                                                        vp.height() // 2 + 30)
    want_a, want_b = viewer.canvas.mapToScene(a), viewer.canvas.mapToScene(b)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(vp, QPoint((a.x() + b.x()) // 2, (a.y() + b.y()) // 2))
    qtbot.mouseMove(vp, b)
    _shot(viewer, "viewer-drawing.png")  # looked at: the rubber band
    outcome = _saved(qtbot, viewer, lambda: qtbot.mouseRelease(
        vp, Qt.MouseButton.LeftButton, pos=b))
    assert outcome.kind == "add box"
    (new_occ,) = outcome.created_ids
    with services.db.session() as s:
        det = s.execute(select(Detection).where(Detection.occurrence_id == new_occ)).scalars().one()
    assert det.detector == "human" and det.score == 1.0 and det.pipeline_id == pid
    assert det.image_id == viewer.current_image_id()
    # the rectangle in the file's pixels: the mapping of the very viewport points dragged
    want = (want_a.x(), want_a.y(), want_b.x(), want_b.y())
    assert all(abs(g - w) < 1e-6 for g, w in zip((det.x1, det.y1, det.x2, det.y2), want)), \
        ((det.x1, det.y1, det.x2, det.y2), want)
    occ = _occ(services, new_occ)
    assert occ.created_by == "human" and occ.pinned and occ.night_id == night_id
    # shown at once, as a person's box, selected; in the crop strip and the table
    item = viewer._items[det.id]
    assert item.isSelected() and item.pen().style() == Qt.PenStyle.DashDotLine
    assert f"Drawn by <b>{REVIEWER}</b>" in item.toolTip()
    assert item.caption.text() == f"drawn by {REVIEWER}"
    assert det.id in set(viewer.crops.detection_ids())
    assert _table_count(services, night) == in_table + 1
    assert viewer.canvas.drawing  # still drawing: the next missed insect
    _shot(viewer, "viewer-human-box.png")
    # Ctrl+Z takes it away again
    _saved(qtbot, viewer, lambda: qtbot.keyClick(viewer.canvas, Qt.Key.Key_Z,
                                                 Qt.KeyboardModifier.ControlModifier))
    assert _det(services, det.id) is None and _occ(services, new_occ) is None
    assert det.id not in viewer._items and _table_count(services, night) == in_table
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Escape)
    assert not viewer.canvas.drawing and not viewer.draw_button.isChecked()


def test_esc_cancels_a_drag_and_enter_keeps_it(qtbot, services, viewer):
    viewer.draw_button.click()
    assert viewer.canvas.drawing
    vp = viewer.canvas.viewport()
    a, b = QPoint(100, 100), QPoint(180, 160)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(vp, b)
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Escape)  # this drag only
    assert not viewer.canvas.dragging() and viewer.canvas.drawing
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=b)
    qtbot.mouseClick(vp, Qt.MouseButton.LeftButton, pos=QPoint(300, 300))  # a click: no box
    assert not viewer.edits.busy()
    with services.db.session() as s:
        assert s.execute(select(Detection).where(Detection.detector == "human")).first() is None
    want_a, want_b = viewer.canvas.mapToScene(a), viewer.canvas.mapToScene(b)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=a)
    qtbot.mouseMove(vp, b)
    _saved(qtbot, viewer, lambda: qtbot.keyClick(viewer.canvas, Qt.Key.Key_Return))
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=b)  # kept already: nothing more
    with services.db.session() as s:
        dets = s.execute(select(Detection).where(Detection.detector == "human")).scalars().all()
    assert len(dets) == 1
    assert abs(dets[0].x1 - want_a.x()) < 1e-6 and abs(dets[0].y2 - want_b.y()) < 1e-6


def test_a_drawn_box_survives_its_image_being_processed_and_tracked_again(qtbot, services,
                                                                          viewer, night):
    """A person's box on an image a run processes now: the run's results replace only the
    machine's boxes, and tracking keeps the person's occurrence."""
    pid, night_id = night
    image_id = viewer.current_image_id()
    viewer.set_drawing(True)
    vp = viewer.canvas.viewport()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=QPoint(120, 120))
    qtbot.mouseMove(vp, QPoint(200, 190))
    outcome = _saved(qtbot, viewer, lambda: qtbot.mouseRelease(
        vp, Qt.MouseButton.LeftButton, pos=QPoint(200, 190)))
    (occ_id,) = outcome.created_ids
    with services.db.session() as s:
        human = s.execute(select(Detection.id).where(Detection.occurrence_id == occ_id)).scalar()
    # the run's commit for this image (its results replace the image's results of the
    # pipeline), then the night's tracking at the end of the run
    with services.db.write_session() as s:
        jobqueue.record_results(s, pid, None, [ImageResult(image_id, [
            DetectionResult(Box(10, 10, 60, 60), 0.9, "builtin", [])])])
    track_catalogue_nights(services.db, pid, [night_id])
    det = _det(services, human)
    assert det is not None and det.detector == "human" and det.occurrence_id == occ_id
    assert _occ(services, occ_id).pinned
    viewer.refresh()
    qtbot.waitUntil(lambda: human in viewer._items and any(
        i.info.score == 0.9 for i in viewer.box_items()), timeout=60_000)


def test_errors_are_one_sentence_in_the_viewer(qtbot, services, viewer, night):
    # nothing selected: Delete says what to do
    viewer.scene.clearSelection()
    qtbot.keyClick(viewer.canvas, Qt.Key.Key_Delete)
    assert viewer.edit_status.text() == "Select a box first (click it), then press Delete."
    # nothing to undo in this night
    with qtbot.waitSignal(viewer.edits.failed, timeout=60_000):
        qtbot.keyClick(viewer.canvas, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert viewer.edit_status.text() == "Not saved: Nothing to undo."


def _shot(viewer, name: str) -> None:
    """With TRAPGUI_SHOTS=folder, the viewer as drawn, for a person to look at."""
    import os
    from pathlib import Path

    folder = os.environ.get("TRAPGUI_SHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        viewer.grab().save(str(Path(folder) / name))


def _tree_night(window, night_id):
    return next((n for d in window.tree.summaries for n in d.nights if n.night_id == night_id),
                None)


def test_a_correction_in_the_viewer_refreshes_the_other_views(qtbot, services, night,
                                                              main_window):
    """Deleting a box in the Image tab: the detections table, the trap tree's counts and the
    Review tab follow at once, through the window's refresh."""
    window = main_window
    pid, night_id = night
    qtbot.waitUntil(lambda: _tree_night(window, night_id) is not None, timeout=60_000)
    window.tree.select_night(night_id)
    table = window.detections.model
    qtbot.waitUntil(lambda: table.total > 0, timeout=60_000)
    qtbot.waitUntil(lambda: window.review.model.rows != [], timeout=60_000)
    in_table, in_tree = table.total, _tree_night(window, night_id).detections
    threshold = services.settings.detection_threshold
    image_id = _busiest_image(services, night)
    window._open_image(image_id, -1)
    viewer = window.viewer
    qtbot.waitUntil(lambda: viewer.current_image_id() == image_id and viewer.is_full_resolution(),
                    timeout=60_000)
    det = next(i.info.detection_id for i in viewer.box_items() if i.info.score >= threshold)
    _saved(qtbot, viewer, lambda: viewer.delete_box(det))
    qtbot.waitUntil(lambda: table.total == in_table - 1, timeout=60_000)
    qtbot.waitUntil(lambda: _tree_night(window, night_id).detections == in_tree - 1,
                    timeout=60_000)
    # the Review tab lists the deleted box's own occurrence (rejected) without a reload
    rejected = _det(services, det).occurrence_id
    qtbot.waitUntil(lambda: any(r.id == rejected and r.review_state == "rejected"
                                for r in window.review.model.all_rows()), timeout=60_000)
    qtbot.waitUntil(lambda: not window.review._refreshing, timeout=60_000)
