"""Review's track corrections in the window, through the real widgets with pytest-qt: the
appearance order, moving one detection to another occurrence, and drawing a box around a
missed insect. A real night (shared sequential photographs, real tracking), real services
and job runner; every change checked in the SQLite catalogue."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QPoint, Qt
from sqlalchemy import select, update

from tests.gui.review_fixtures import SEQUENTIAL, build_sequential
from trapgui.db.tables import Detection, Occurrence
from trapgui.tracking import encode_embedding

pytestmark = pytest.mark.skipif(not SEQUENTIAL.is_dir(), reason="../shared trap images missing")


@pytest.fixture
def night(services):
    services.settings.reviewer_name = "Kim Reviewer"
    return build_sequential(services.db)


@pytest.fixture
def view(qtbot, services, night):
    from trapgui.gui.job_runner import job_runner
    from trapgui.gui.review_view import ReviewView

    v = ReviewView(services)
    qtbot.addWidget(v)
    v.resize(1100, 760)
    v.show()
    with qtbot.waitSignal(v.loaded, timeout=60_000):
        v.set_selection(None, [night[1]])
    v.grid.setFocus()
    yield v
    qtbot.waitUntil(lambda: not v.busy(), timeout=60_000)
    job_runner().wait(30)


def _occ(services, occ_id):
    with services.db.session() as s:
        return s.execute(select(Occurrence).where(Occurrence.id == occ_id)).scalars().one()


def _open_frames(qtbot, view, row):
    view.grid.setCurrentIndex(view.model.index(view.model.row_of(row.id)))
    qtbot.keyClick(view.grid, Qt.Key.Key_S)
    dialog = view.splitter
    qtbot.waitUntil(lambda: dialog.model.rowCount() == row.n_detections, timeout=60_000)
    return dialog


def test_sort_by_appearance_puts_look_alikes_side_by_side(qtbot, services, view, night):
    rows = sorted(view.model.rows, key=lambda r: (r.first_seen, r.id))
    assert len(rows) >= 9
    # two look-alike groups, interleaved in time; the rest each look unlike anything
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=128), rng.normal(size=128)
    group = {r.id: (a if k % 2 == 0 else b) for k, r in enumerate(rows[:8])}
    with services.db.write_session() as s:
        for occ, det in s.execute(select(Occurrence.id, Detection.id)
                                  .join(Detection, Detection.occurrence_id == Occurrence.id)
                                  .where(Occurrence.night_id == night[1])).all():
            centre = group.get(occ, rng.normal(size=128) * 3)
            s.execute(update(Detection).where(Detection.id == det).values(
                embedding=encode_embedding(centre + 0.02 * rng.normal(size=128))))
    with qtbot.waitSignal(view.appearanceOrdered, timeout=60_000) as blocker:
        view.sort.setCurrentIndex(view.sort.findData("appearance"))
    assert blocker.args == [len(rows)]
    shown = [r.id for r in view.model.rows]
    assert sorted(shown) == sorted(r.id for r in rows)
    for centre in (a, b):
        places = sorted(shown.index(i) for i, c in group.items() if c is centre)
        assert places == list(range(places[0], places[0] + 4)), places  # one contiguous run
    assert "appearance" in view.status.text()
    # back to time order and again: the order is recomputed, same result (deterministic)
    view.sort.setCurrentIndex(view.sort.findData("time"))
    with qtbot.waitSignal(view.appearanceOrdered, timeout=60_000):
        view.sort.setCurrentIndex(view.sort.findData("appearance"))
    assert [r.id for r in view.model.rows] == shown


def test_appearance_sort_without_embeddings_says_so(qtbot, view):
    before = [r.id for r in view.model.rows]
    with qtbot.waitSignal(view.appearanceOrdered, timeout=60_000) as blocker:
        view.sort.setCurrentIndex(view.sort.findData("appearance"))
    assert blocker.args == [0] and "No embeddings" in view.status.text()
    assert [r.id for r in view.model.rows] == before  # time order


def test_move_one_detection_to_another_occurrence(qtbot, services, view):
    source = next(r for r in view.model.rows if r.n_detections >= 3)
    target = next(r for r in view.model.rows if r.id != source.id)
    dialog = _open_frames(qtbot, view, source)
    qtbot.keyClick(dialog.list, Qt.Key.Key_End)  # the last frame
    moved = dialog.model.frames[dialog.list.currentIndex().row()].detection_id
    qtbot.mouseClick(dialog.move, Qt.MouseButton.LeftButton)
    mover = view.mover
    assert mover is not None and mover.isVisible()
    assert all(mover.list.item(k).data(Qt.ItemDataRole.UserRole) != source.id
               for k in range(mover.list.count()))
    qtbot.keyClicks(mover.filter, str(target.id))
    assert mover.target() == target.id
    with qtbot.waitSignal(view.actionApplied, timeout=60_000) as blocker:
        qtbot.keyClick(mover.filter, Qt.Key.Key_Return)
    assert blocker.args[0].kind == "move"
    with services.db.session() as s:
        assert s.execute(select(Detection.occurrence_id)
                         .where(Detection.id == moved)).scalar() == target.id
    assert _occ(services, source.id).n_detections == source.n_detections - 1
    assert _occ(services, target.id).n_detections == target.n_detections + 1
    shown = view.model.rows[view.model.row_of(target.id)]
    assert shown.n_detections == target.n_detections + 1  # the grid follows
    with qtbot.waitSignal(view.actionApplied, timeout=60_000):
        qtbot.keyClick(view.grid, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    with services.db.session() as s:
        assert s.execute(select(Detection.occurrence_id)
                         .where(Detection.id == moved)).scalar() == source.id


def _drag(qtbot, dialog, a, b):
    vp = dialog.view.viewport()
    pa, pb = dialog.view.mapFromScene(*a), dialog.view.mapFromScene(*b)
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=pa)
    qtbot.mouseMove(vp, QPoint((pa.x() + pb.x()) // 2, (pa.y() + pb.y()) // 2))
    qtbot.mouseMove(vp, pb)
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=pb)
    return pa, pb


def test_draw_a_missed_box_on_a_frame(qtbot, services, view, night):
    row = next(r for r in view.model.rows if r.n_detections >= 2)
    dialog = _open_frames(qtbot, view, row)
    frame = dialog.model.frames[dialog.list.currentIndex().row()]
    qtbot.mouseClick(dialog.draw, Qt.MouseButton.LeftButton)
    boxer = view.boxer
    qtbot.waitUntil(lambda: boxer.view.ready, timeout=60_000)
    assert not boxer.save.isEnabled()
    scene = boxer.scene.sceneRect()
    scale = boxer._scale
    _drag(qtbot, boxer, (scene.width() * 0.1, scene.height() * 0.2),
          (scene.width() * 0.3, scene.height() * 0.5))
    box = boxer.box()
    assert box is not None and boxer.save.isEnabled()
    with qtbot.waitSignal(view.actionApplied, timeout=60_000) as blocker:
        qtbot.keyClick(boxer.view, Qt.Key.Key_Return)
    out = blocker.args[0]
    (new_occ,) = out.created_ids
    with services.db.session() as s:
        det = s.execute(select(Detection).where(Detection.occurrence_id == new_occ)).scalars().one()
    assert det.detector == "human" and det.score == 1.0 and det.image_id == frame.image_id
    # where the drag was, in the file's pixels (one screen pixel of rounding, at this zoom)
    tol = 2.0 / (scale * boxer.view.transform().m11()) + 1.0
    want = (scene.width() * 0.1 / scale, scene.height() * 0.2 / scale,
            scene.width() * 0.3 / scale, scene.height() * 0.5 / scale)
    assert all(abs(g - w) <= tol for g, w in zip((det.x1, det.y1, det.x2, det.y2), want)), \
        ((det.x1, det.y1, det.x2, det.y2), want, tol)
    occ = _occ(services, new_occ)
    assert occ.created_by == "human" and occ.night_id == night[1]
    assert view.model.row_of(new_occ) >= 0  # a new individual in the grid, not yet reviewed


def test_b_draws_on_the_best_frame_and_a_click_is_no_box(qtbot, services, view):
    row = view.model.rows[0]
    view.grid.setCurrentIndex(view.model.index(0))
    qtbot.keyClick(view.grid, Qt.Key.Key_B)
    boxer = view.boxer
    qtbot.waitUntil(lambda: boxer.view.ready, timeout=60_000)
    p = boxer.view.mapFromScene(50, 50)
    qtbot.mouseClick(boxer.view.viewport(), Qt.MouseButton.LeftButton, pos=p)
    assert boxer.box() is None and not boxer.save.isEnabled()
    assert "too small" in boxer.info.text()
    qtbot.keyClick(boxer.view, Qt.Key.Key_Return)  # nothing saved, dialog stays
    assert boxer.isVisible()
    # the person says it is the same individual
    s = boxer.scene.sceneRect()
    _drag(qtbot, boxer, (s.width() * 0.6, s.height() * 0.6), (s.width() * 0.7, s.height() * 0.75))
    boxer.same.setChecked(True)
    with qtbot.waitSignal(view.actionApplied, timeout=60_000):
        qtbot.mouseClick(boxer.save, Qt.MouseButton.LeftButton)
    assert _occ(services, row.id).n_detections == row.n_detections + 1
    with services.db.session() as db:
        assert db.execute(select(Detection.detector).where(
            Detection.occurrence_id == row.id, Detection.detector == "human")).scalar() == "human"
