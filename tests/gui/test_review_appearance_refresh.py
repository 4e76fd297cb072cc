"""The Review tab's appearance order follows the night's occurrences: when they change (an
occurrence made elsewhere, as a run's re-tracking or the image viewer's drawn box does; a merge
in the grid) the order is computed again in the background and applied, and the person keeps
their place: the current occurrence stays current, selected and in view. Real widgets
(pytest-qt), a real tracked night of the shared photographs, real services."""

from __future__ import annotations

import numpy as np
import pytest
from PySide6.QtCore import QItemSelectionModel, Qt
from sqlalchemy import select, update

from tests.gui.review_fixtures import SEQUENTIAL, build_sequential
from trapgui.db.tables import Detection, Image, Occurrence
from trapgui.tracking import encode_embedding

pytestmark = [pytest.mark.gui,
              pytest.mark.skipif(not SEQUENTIAL.is_dir(), reason="../shared trap images missing")]


@pytest.fixture
def night(services):
    services.settings.reviewer_name = "Kim Reviewer"
    return build_sequential(services.db)


@pytest.fixture
def groups(services, night):
    """Two look-alike groups of four occurrences, interleaved in time; the rest unlike."""
    rng = np.random.default_rng(11)
    a, b = rng.normal(size=128), rng.normal(size=128)
    with services.db.session() as s:
        occs = [r[0] for r in s.execute(select(Occurrence.id).where(
            Occurrence.night_id == night[1]).order_by(Occurrence.first_seen, Occurrence.id))]
    group = {occ: (a if k % 2 == 0 else b) for k, occ in enumerate(occs[:8])}
    with services.db.write_session() as s:
        for occ, det in s.execute(select(Occurrence.id, Detection.id)
                                  .join(Detection, Detection.occurrence_id == Occurrence.id)
                                  .where(Occurrence.night_id == night[1])).all():
            centre = group.get(occ, rng.normal(size=128) * 3)
            s.execute(update(Detection).where(Detection.id == det).values(
                embedding=encode_embedding(centre + 0.02 * rng.normal(size=128))))
    return a, b, group, rng


@pytest.fixture
def view(qtbot, services, night, groups):
    from trapgui.gui.job_runner import job_runner
    from trapgui.gui.review_view import ReviewView

    v = ReviewView(services)
    qtbot.addWidget(v)
    v.resize(900, 520)  # small: the grid scrolls, so "in view" means something
    v.show()
    with qtbot.waitSignal(v.loaded, timeout=60_000):
        v.set_selection(None, [night[1]])
    with qtbot.waitSignal(v.appearanceOrdered, timeout=60_000):
        v.sort.setCurrentIndex(v.sort.findData("appearance"))
    v.grid.setFocus()
    yield v
    qtbot.waitUntil(lambda: not v.busy() and not v._refreshing, timeout=60_000)
    job_runner().wait(30)


def _current_id(view) -> int:
    return view.model.rows[view.grid.currentIndex().row()].id


def _in_view(view, occ_id) -> bool:
    index = view.model.index(view.model.row_of(occ_id))
    return view.grid.viewport().rect().intersects(view.grid.visualRect(index))


def _run(view, centre) -> list[int]:
    shown = [r.id for r in view.model.rows]
    return sorted(shown.index(i) for i in centre)


def test_a_new_occurrence_joins_its_look_alikes_and_the_place_is_kept(qtbot, services, view,
                                                                      night, groups):
    a, _b, group, rng = groups
    pid, night_id = night
    # the person is at the last occurrence, which is not one of the groups
    last = view.model.rows[-1]
    assert last.id not in group
    view.grid.selectionModel().setCurrentIndex(view.model.index(len(view.model.rows) - 1),
                                               QItemSelectionModel.SelectionFlag.ClearAndSelect)
    view.grid.scrollTo(view.model.index(len(view.model.rows) - 1))
    assert _in_view(view, last.id)
    # an occurrence made elsewhere (the viewer's drawn box; a run's re-tracking alike) that
    # looks like group a
    with services.db.session() as s:
        image_id = s.execute(select(Image.id).where(Image.night_id == night_id)
                             .order_by(Image.captured_at)).scalars().first()
    outcome = services.review.add_box(image_id, pid, (5, 5, 40, 40))
    (new_occ,) = outcome.created_ids
    with services.db.write_session() as s:
        s.execute(update(Detection).where(Detection.occurrence_id == new_occ).values(
            embedding=encode_embedding(a + 0.02 * rng.normal(size=128))))
    assert view.model.row_of(new_occ) < 0
    with qtbot.waitSignal(view.appearanceOrdered, timeout=60_000) as ordered:
        with qtbot.waitSignal(view.nightRefreshed, timeout=60_000) as refreshed:
            view.refresh()  # what the main window calls after a commit or a correction
    assert refreshed.args == [True]
    assert ordered.args == [len(view.model.rows)]
    assert view.model.row_of(new_occ) >= 0
    members_a = [occ for occ, c in group.items() if c is a] + [new_occ]
    places = _run(view, members_a)
    assert places == list(range(places[0], places[0] + 5)), places  # one run, with the new one
    # the person's place: the same occurrence, current, selected and in view
    assert _current_id(view) == last.id
    assert view.grid.selectionModel().isSelected(view.grid.currentIndex())
    assert _in_view(view, last.id)
    # nothing changed since: the next refresh reads nothing and reorders nothing
    with qtbot.waitSignal(view.nightRefreshed, timeout=60_000) as refreshed:
        view.refresh()
    assert refreshed.args == [False]


def test_a_merge_in_the_grid_orders_again_and_keeps_the_result_current(qtbot, view, groups):
    a, b, group, _rng = groups
    one_a = next(occ for occ, c in group.items() if c is a)
    one_b = next(occ for occ, c in group.items() if c is b)
    selection = view.grid.selectionModel()
    # through the selection model: a view's setCurrentIndex follows the keyboard modifiers
    # the application last saw (a Ctrl+Z of an earlier test)
    selection.setCurrentIndex(view.model.index(view.model.row_of(one_a)),
                              QItemSelectionModel.SelectionFlag.ClearAndSelect)
    selection.select(view.model.index(view.model.row_of(one_b)),
                     QItemSelectionModel.SelectionFlag.Select)
    with qtbot.waitSignal(view.appearanceOrdered, timeout=60_000):
        with qtbot.waitSignal(view.actionApplied, timeout=60_000) as applied:
            qtbot.keyClick(view.grid, Qt.Key.Key_M)
    assert applied.args[0].kind == "merge"
    assert view.model.row_of(one_b) < 0  # merged away
    assert _current_id(view) == one_a and _in_view(view, one_a)
    # its mean now lies between the groups: the others of each group stay one run
    rest_a = [occ for occ, c in group.items() if c is a and occ != one_a]
    rest_b = [occ for occ, c in group.items() if c is b and occ != one_b]
    for members in (rest_a, rest_b):
        places = _run(view, members)
        assert places == list(range(places[0], places[0] + 3)), places
