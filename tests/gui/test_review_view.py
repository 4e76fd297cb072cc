"""Review mode driven by the keyboard with pytest-qt: a real night (the shared sequential
photographs, hand-labelled boxes, the real tracking job), the real services and job runner,
every decision checked in the SQLite catalogue."""

from __future__ import annotations

import csv

import pytest
from PySide6.QtCore import Qt
from sqlalchemy import select

from tests.gui.review_fixtures import SEQUENTIAL, build_sequential, build_synthetic
from trapgui.db.tables import Morphospecies, Occurrence

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


def _press(qtbot, view, key, modifier=Qt.KeyboardModifier.NoModifier):
    with qtbot.waitSignal(view.actionApplied, timeout=60_000) as blocker:
        qtbot.keyClick(view.grid, key, modifier)
    return blocker.args[0]


def test_keyboard_review_is_saved_at_once_and_undoable(qtbot, services, view):
    rows = view.model.rows
    assert len(rows) >= 10 and view.grid.currentIndex().row() == 0
    first, second, third = rows[0].id, rows[1].id, rows[2].id
    assert "individuals" in view.title.text() and "Kim Reviewer" in view.title.text()

    out = _press(qtbot, view, Qt.Key.Key_Return)  # confirm, and on to the next
    assert out.occurrence_ids == (first,)
    occ = _occ(services, first)
    assert (occ.review_state, occ.identified_by, occ.review_label) == (
        "confirmed", "Kim Reviewer", occ.label)
    assert view.grid.currentIndex().row() == 1
    assert view.model.rows[0].review_state == "confirmed"  # the grid shows it

    _press(qtbot, view, Qt.Key.Key_Delete)  # not an insect
    assert _occ(services, second).review_state == "rejected"
    _press(qtbot, view, Qt.Key.Key_F)  # a fixture
    assert _occ(services, third).fixture and _occ(services, third).fixture_reviewed

    # back one with the arrow key, relabel it by typing: a new morphospecies
    qtbot.keyClick(view.grid, Qt.Key.Key_Left)
    assert view.grid.currentIndex().row() == 2
    qtbot.keyClick(view.grid, Qt.Key.Key_N)
    picker = view.picker
    assert picker is not None and picker.isVisible() and picker.edit.text() == "N"
    qtbot.keyClicks(picker.edit, "octuidae sp. A")
    assert "new" in picker.hint.text()
    with qtbot.waitSignal(view.actionApplied, timeout=60_000):
        qtbot.keyClick(picker.edit, Qt.Key.Key_Return)
    occ = _occ(services, third)
    assert (occ.review_state, occ.review_label, occ.review_rank) == (
        "relabelled", "Noctuidae sp. A", "morphospecies")
    assert any(c.label == "Noctuidae sp. A" for c in view._choices)  # offered from now on

    # a known name through the completer keeps its rank
    view.grid.setCurrentIndex(view.model.index(3))
    qtbot.keyClick(view.grid, Qt.Key.Key_L)
    qtbot.keyClicks(view.picker.edit, "Lepidoptera (order)")
    assert view.picker.resolve() == ("Lepidoptera", "order", False)
    with qtbot.waitSignal(view.actionApplied, timeout=60_000):
        qtbot.keyClick(view.picker.edit, Qt.Key.Key_Return)
    assert _occ(services, rows[3].id).review_rank == "order"

    # Ctrl+Z takes the actions back, newest first, and the grid follows
    _press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _occ(services, rows[3].id).review_state is None
    _press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _occ(services, third).review_state is None
    assert view.model.rows[view.model.row_of(third)].review_state is None
    with services.db.session() as s:
        assert s.execute(select(Morphospecies)).first() is None  # nobody uses it any more
    assert "Undone" in view.status.text()


def test_filter_sort_and_bulk_confirm(qtbot, services, view, night):
    total = len(view.model.rows)
    _press(qtbot, view, Qt.Key.Key_Return)
    view.unreviewed.setChecked(True)
    assert len(view.model.rows) == total - 1
    view.sort.setCurrentIndex(view.sort.findData("confidence"))
    scores = [r.machine_score for r in view.model.rows]
    assert scores == sorted(scores)
    view.sort.setCurrentIndex(view.sort.findData("label"))
    labels = [(r.final_label or "~").lower() for r in view.model.rows]
    assert labels == sorted(labels)

    labels = [r.machine_label for r in view.model.rows if r.machine_label]
    target = max(set(labels), key=labels.count)
    scores = sorted(r.machine_score for r in view.model.rows if r.machine_label == target)
    cut = round(scores[len(scores) // 2], 2)
    expected = {r.id for r in view.model.rows if r.machine_label == target
                and r.machine_score >= cut and not r.reviewed}
    assert expected
    view.bulk_label.setCurrentText(target)
    view.bulk_score.setValue(cut)
    with qtbot.waitSignal(view.actionApplied, timeout=60_000) as blocker:
        qtbot.mouseClick(view.bulk_button, Qt.MouseButton.LeftButton)
    assert set(blocker.args[0].occurrence_ids) == expected
    assert all(_occ(services, i).review_state == "confirmed" for i in expected)
    # one undo takes the whole bulk action back
    _press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert all(_occ(services, i).review_state is None for i in expected)


def test_merge_the_selected_by_keyboard_and_undo(qtbot, services, view):
    from PySide6.QtCore import QItemSelectionModel

    total = len(view.model.rows)
    a, b = view.model.rows[4], view.model.rows[5]
    select = view.grid.selectionModel()
    select.setCurrentIndex(view.model.index(4), QItemSelectionModel.SelectionFlag.ClearAndSelect)
    select.select(view.model.index(5), QItemSelectionModel.SelectionFlag.Select)
    assert view.selected_ids() == [a.id, b.id]
    out = _press(qtbot, view, Qt.Key.Key_M)
    assert out.kind == "merge"
    assert _occ(services, b.id).merged_into == a.id
    assert _occ(services, a.id).n_detections == a.n_detections + b.n_detections
    assert len(view.model.rows) == total - 1 and view.model.row_of(b.id) == -1
    assert view.model.rows[view.grid.currentIndex().row()].id == a.id
    _press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _occ(services, b.id).merged_into is None
    assert _occ(services, a.id).n_detections == a.n_detections
    assert view.model.row_of(b.id) >= 0 and len(view.model.rows) == total


def test_split_at_a_frame_by_keyboard(qtbot, services, view):
    row = next(r for r in view.model.rows if r.n_detections >= 4)
    view.grid.setCurrentIndex(view.model.index(view.model.row_of(row.id)))
    qtbot.keyClick(view.grid, Qt.Key.Key_S)
    dialog = view.splitter
    qtbot.waitUntil(lambda: dialog.model.rowCount() == row.n_detections, timeout=60_000)
    dialog.list.setCurrentIndex(dialog.model.index(2))
    with qtbot.waitSignal(view.actionApplied, timeout=60_000) as blocker:
        qtbot.keyClick(dialog.list, Qt.Key.Key_Return)
    out = blocker.args[0]
    (new,) = out.created_ids
    assert _occ(services, row.id).n_detections == 2
    assert _occ(services, new).n_detections == row.n_detections - 2
    assert view.model.row_of(new) >= 0  # the new individual is in the grid, not yet reviewed
    _press(qtbot, view, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert _occ(services, row.id).n_detections == row.n_detections
    # the same frames: one box is no insect
    view.grid.setCurrentIndex(view.model.index(view.model.row_of(row.id)))
    qtbot.keyClick(view.grid, Qt.Key.Key_S)
    dialog = view.splitter
    qtbot.waitUntil(lambda: dialog.model.rowCount() == row.n_detections, timeout=60_000)
    dialog.list.setCurrentIndex(dialog.model.index(0))
    with qtbot.waitSignal(view.actionApplied, timeout=60_000) as blocker:
        qtbot.mouseClick(dialog.delete, Qt.MouseButton.LeftButton)
    assert blocker.args[0].kind == "delete box"
    assert _occ(services, row.id).n_detections == row.n_detections - 1
    (gone,) = blocker.args[0].created_ids
    assert _occ(services, gone).review_state == "rejected"


def test_crops_come_from_the_photographs_off_the_gui_thread(qtbot, view):
    first = view.model.rows[0]
    qtbot.waitUntil(lambda: view.model.has_crop(first.best_detection_id), timeout=60_000)
    crop = view.model.data(view.model.index(0), Qt.ItemDataRole.UserRole + 2)
    assert crop is not None and not crop.isNull() and crop.width() > 50


def test_agreement_in_the_window_and_as_csv(qtbot, services, view, night, tmp_path):
    from trapgui.gui.review_agreement_dialog import ReviewAgreementDialog

    _press(qtbot, view, Qt.Key.Key_Return)
    _press(qtbot, view, Qt.Key.Key_Delete)
    dialog = ReviewAgreementDialog(services, night[0], night[1], view)
    qtbot.addWidget(dialog)
    qtbot.waitUntil(lambda: "2" in dialog.summary.text(), timeout=60_000)
    assert "50%" in dialog.summary.text() and "1 not an insect" in dialog.summary.text()
    assert dialog.taxa.rowCount() >= 1
    out = tmp_path / "agreement.csv"
    dialog.save_to(str(out))
    qtbot.waitUntil(lambda: "Saved" in dialog.summary.text(), timeout=60_000)
    rows = list(csv.reader(out.read_text().splitlines()))
    assert rows[0][0] == "section" and ["overall"] == [r[0] for r in rows if r[0] == "overall"]


def test_a_night_of_5000_occurrences_opens(qtbot, services):
    """Functional check of the big night (the benchmark measures the time)."""
    from trapgui.gui.job_runner import job_runner
    from trapgui.gui.review_view import ReviewView

    pid, night = build_synthetic(services.db, 5000)
    v = ReviewView(services)
    qtbot.addWidget(v)
    v.show()
    with qtbot.waitSignal(v.loaded, timeout=60_000) as blocker:
        v.set_selection(None, [night])
    assert blocker.args == [5000] and v.model.rowCount() == 5000
    job_runner().wait(30)
