"""The Occurrences view: one row per individual of the selected night (fixtures greyed, and
hidden on request), its crops across frames, and frame stepping that shows each frame on its
image (real catalogue, real tracking job, real widgets)."""

from __future__ import annotations

import datetime as dt

import pytest
from PIL import Image
from PySide6.QtCore import Qt

from tests.tracking_catalogue import H, W, add_frames, make_catalogue
from trapgui.core.jobs import run_job
from trapgui.gui.occurrences_model import COLUMNS
from trapgui.gui.occurrences_view import OccurrencesView
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui
N1 = dt.date(2022, 6, 21)


@pytest.fixture
def tracked(tmp_path):
    services = Services.create(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                               db_path=tmp_path / "c.sqlite3")
    cat = make_catalogue(services.db)
    add_frames(cat, N1, 5, {"moth-a": 0, "moth-b": 1, "moth-c": 2})
    add_frames(cat, N1 + dt.timedelta(days=1), 5, {"moth-d": 3})  # the screw is there too
    run_job(services.tracking.tracking_job(cat.pipeline_id), None)
    # the images on disk, so crops can be cut (the catalogue's trap folder is /traps/trap)
    from sqlalchemy import update

    from trapgui.db.tables import Deployment

    folder = tmp_path / "trap"
    with services.db.write_session() as s:
        s.execute(update(Deployment).values(path=str(folder)))
    for f in range(5):
        path = folder / N1.isoformat() / f"{f:03d}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (W, H), (40 * f, 120, 200)).save(path)
    yield services, cat
    services.close()


def _view(qtbot, services, cat) -> OccurrencesView:
    view = OccurrencesView(services)
    qtbot.addWidget(view)
    view.resize(1100, 700)
    view.show()
    view.set_threshold(0.5, 0.5)
    view.set_selection(cat.deployment_id, [cat.nights[N1]])
    qtbot.waitUntil(lambda: view.model.rowCount() == 4, timeout=30_000)
    return view


def test_one_row_per_individual_fixtures_apart(qtbot, tracked):
    services, cat = tracked
    view = _view(qtbot, services, cat)
    headers = [view.model.headerData(c, Qt.Orientation.Horizontal) for c in range(len(COLUMNS))]
    assert headers == ["Individual", "Label", "Score", "Frames", "First seen", "Last seen",
                       "Fixture"]
    cells = [[view.model.index(r, c).data() for c in range(len(COLUMNS))] for r in range(4)]
    assert sorted(row[6] for row in cells) == ["", "", "", "yes"]  # the screw of the frame
    assert all(row[3] == "5" for row in cells)  # every insect in all 5 frames
    assert "3 individuals" in view.heading.text() and "1 fixture, not counted" in view.heading.text()
    assert "≥ 0.50" in view.heading.text()
    # the same number as the counts every other view and export gives
    counts = services.tracking.counts_per_night(cat.pipeline_id, [cat.nights[N1]])
    assert counts[(cat.deployment_id, cat.nights[N1])].individuals == 3
    view.fixtures_check.setChecked(False)
    qtbot.waitUntil(lambda: view.model.rowCount() == 3, timeout=30_000)
    assert all(view.model.index(r, 6).data() == "" for r in range(3))


def test_selecting_an_individual_shows_its_frames_and_steps_through_them(qtbot, tracked):
    services, cat = tracked
    view = _view(qtbot, services, cat)
    moth = next(r for r in range(4) if view.model.index(r, 6).data() == "")
    view.table.selectRow(moth)
    occ = view.model.rows[moth]
    frames = services.tracking.occurrence_detections(occ.id)
    qtbot.waitUntil(lambda: view.frames.count() == 5, timeout=30_000)
    # the crops are cut from the images (off the GUI thread)
    qtbot.waitUntil(lambda: all(f.image is not None for f in view.frames.frames()),
                    timeout=30_000)
    best = next(i for i, f in enumerate(frames) if f.is_best)
    assert view.current_frame() == best
    qtbot.waitUntil(lambda: view.viewer.current_image_id() == frames[best].image_id,
                    timeout=30_000)
    view.step_frame(-best)  # to the first frame
    assert not view.prev_frame.isEnabled() and view.frame_label.text() == "Frame 1 of 5"
    shown = []
    view.frameShown.connect(lambda image_id, det_id: shown.append((image_id, det_id)))
    for _ in range(6):  # one step past the end stays on the last frame
        qtbot.keyClick(view.frames, Qt.Key.Key_Period)
    assert view.current_frame() == 4 and not view.next_frame.isEnabled()
    assert [s[0] for s in shown[:4]] == [f.image_id for f in frames[1:]]
    qtbot.waitUntil(lambda: view.viewer.current_image_id() == frames[4].image_id,
                    timeout=30_000)
    qtbot.waitUntil(lambda: view.viewer.selected_detection() == frames[4].detection_id,
                    timeout=30_000)
    qtbot.keyClick(view.frames, Qt.Key.Key_Comma)
    assert view.current_frame() == 3


def test_nothing_selected_or_nothing_tracked_says_so(qtbot, tracked):
    services, cat = tracked
    view = OccurrencesView(services)
    qtbot.addWidget(view)
    assert "Select a night" in view.heading.text()
    view.set_selection(cat.deployment_id, [])
    assert view.model.rowCount() == 0


def test_a_person_unflags_a_fixture_and_it_counts(qtbot, tracked):
    services, cat = tracked
    view = _view(qtbot, services, cat)
    night = cat.nights[N1]
    screw = next(view.model.rows[r] for r in range(4) if view.model.index(r, 6).data() == "yes")
    with qtbot.waitSignal(view.countsChanged, timeout=60_000):
        view.set_fixture(screw.id, False)
    qtbot.waitUntil(lambda: "4 individuals" in view.heading.text(), timeout=30_000)
    assert [view.model.index(r, 6).data() for r in range(4)].count("no, by you") == 1
    counts = services.tracking.counts_per_night(cat.pipeline_id, [night])
    assert counts[(cat.deployment_id, night)].individuals == 4  # every count follows
    decided = next(r for r in view.model.rows if r.fixture_reviewed)
    with qtbot.waitSignal(view.countsChanged, timeout=60_000):
        view.set_fixture(decided.id, None)  # let tracking decide again: a fixture
    qtbot.waitUntil(lambda: "3 individuals" in view.heading.text(), timeout=30_000)
