"""The detections table model over 100,000 detections in a real SQLite catalogue: pages are
fetched off the GUI thread, sorting is server-side and keyset-paginated, filters and threshold
changes re-query, live refreshes keep what is loaded."""

from __future__ import annotations

import sqlite3

import pytest
from PySide6.QtCore import QModelIndex, Qt
from sqlalchemy import insert

from tests.gui.results_fixtures import SPECIES, populate
from trapgui.db import open_database
from trapgui.db.tables import Detection
from trapgui.gui.detections_table_model import COLUMNS, PAGE_SIZE, DetectionsTableModel
from trapgui.gui.detections_view import DetectionsView
from trapgui.services.app_services import Services
from trapgui.services.results_types import DetectionQuery

N = 100_000
pytestmark = pytest.mark.gui


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    root = tmp_path_factory.mktemp("big")
    db = open_database(root / "catalogue.sqlite3")
    cat = populate(db, root / "trap", n_detections=N, n_nights=4, images_per_night=100)
    db.close()
    services = Services.create(config_dir=root / "config", db_path=root / "catalogue.sqlite3")
    yield services, cat, root / "catalogue.sqlite3"
    services.close()


def _sql(path, query, *args):
    with sqlite3.connect(path) as con:
        return con.execute(query, args).fetchall()


def _wait_loaded(qtbot, model, rows=None):
    qtbot.waitUntil(lambda: not model.is_loading() and model.total >= 0, timeout=10_000)
    if rows is not None:
        qtbot.waitUntil(lambda: model.rowCount() >= rows, timeout=10_000)


def test_first_page_then_fetch_more(qtbot, big):
    services, cat, path = big
    model = DetectionsTableModel(services)
    model.set_query(DetectionQuery())
    _wait_loaded(qtbot, model, PAGE_SIZE)
    assert model.rowCount() == PAGE_SIZE
    assert model.total == N
    assert model.canFetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert not model.canFetchMore(QModelIndex())  # one page at a time
    _wait_loaded(qtbot, model, 2 * PAGE_SIZE)
    ids = [model.row(i).id for i in range(model.rowCount())]
    assert ids == list(range(1, 2 * PAGE_SIZE + 1))  # no gap, no repeat across the page edge
    assert model.data(model.index(0, 0)) == "1"
    assert model.headerData(6, Qt.Horizontal) == "Label"


@pytest.mark.parametrize("key, sql_col", [("score", "score"), ("label", "top_label"),
                                           ("label_score", "top_score")])
@pytest.mark.parametrize("descending", [False, True])
def test_sort_pages_match_sqlite(qtbot, big, key, sql_col, descending):
    services, cat, path = big
    model = DetectionsTableModel(services)
    model.set_query(DetectionQuery(min_score=0.3))
    column = [c[1] for c in COLUMNS].index(key)
    model.sort(column, Qt.DescendingOrder if descending else Qt.AscendingOrder)
    _wait_loaded(qtbot, model, PAGE_SIZE)
    for _ in range(3):
        model.fetchMore(QModelIndex())
        _wait_loaded(qtbot, model)
    assert model.rowCount() == 4 * PAGE_SIZE
    direction = "DESC" if descending else "ASC"
    expected = [r[0] for r in _sql(
        path, f"SELECT id FROM detections WHERE score >= 0.3 "
              f"ORDER BY {sql_col} {direction}, id {direction} LIMIT {4 * PAGE_SIZE}")]
    assert [model.row(i).id for i in range(model.rowCount())] == expected


@pytest.mark.parametrize("key, sql_key", [("time", "i.captured_at"), ("image", "i.rel_path")])
@pytest.mark.parametrize("descending", [False, True])
def test_image_ordered_sorts_page_across_images(qtbot, big, key, sql_key, descending):
    """Time and file sorts walk the images in order; pages end mid-image and go on exactly
    where they stopped."""
    services, cat, path = big
    model = DetectionsTableModel(services)
    nights = tuple(cat.night_ids[1:3])
    model.set_query(DetectionQuery(night_ids=nights, min_score=0.5, sort=key,
                                   descending=descending))
    _wait_loaded(qtbot, model, PAGE_SIZE)
    for _ in range(4):
        model.fetchMore(QModelIndex())
        _wait_loaded(qtbot, model)
    d = "DESC" if descending else "ASC"
    expected = [r[0] for r in _sql(path, f"""
        SELECT d.id FROM detections d JOIN images i ON i.id = d.image_id
        WHERE i.night_id IN (?, ?) AND d.score >= 0.5
        ORDER BY {sql_key} {d}, i.id {d}, d.id {d} LIMIT {5 * PAGE_SIZE}""", *nights)]
    assert [model.row(i).id for i in range(model.rowCount())] == expected


def test_filters_by_night_label_rank_and_threshold(qtbot, big):
    services, cat, path = big
    model = DetectionsTableModel(services)
    night = cat.night_ids[1]
    species = SPECIES[3]
    query = DetectionQuery(night_ids=(night,), min_score=0.6, min_label_score=0.4,
                           label=species, rank="species")
    model.set_query(query)
    _wait_loaded(qtbot, model)
    expected = _sql(path, """
        SELECT count(*) FROM detections d JOIN images i ON i.id = d.image_id
        WHERE i.night_id = ? AND d.score >= 0.6 AND d.top_score >= 0.4
          AND d.top_label = ? AND d.top_rank = 'species'""", night, species)[0][0]
    assert 0 < model.total == expected
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
        _wait_loaded(qtbot, model)
    assert model.rowCount() == expected
    rows = [model.row(i) for i in range(model.rowCount())]
    assert all(r.night_id == night and r.score >= 0.6 and r.top_label == species for r in rows)

    # a threshold change is a new query over the stored scores: no re-run needed
    model.set_query(DetectionQuery(night_ids=(night,), min_score=0.9))
    _wait_loaded(qtbot, model)
    assert model.total == _sql(path, """SELECT count(*) FROM detections d JOIN images i
        ON i.id = d.image_id WHERE i.night_id = ? AND d.score >= 0.9""", night)[0][0]

    model.set_query(DetectionQuery(label_contains="NOCTUA", min_label_score=0.0))
    _wait_loaded(qtbot, model)
    assert model.total == _sql(path, "SELECT count(*) FROM detections "
                                     "WHERE top_label LIKE '%noctua%'")[0][0]


def test_refresh_appends_new_rows_and_keeps_loaded_ones(qtbot, big, tmp_path):
    services, cat, path = big
    model = DetectionsTableModel(services)
    model.set_query(DetectionQuery(night_ids=(cat.night_ids[0],), min_score=0.8,
                                   label=SPECIES[0]))
    _wait_loaded(qtbot, model)
    while model.canFetchMore(QModelIndex()):
        model.fetchMore(QModelIndex())
        _wait_loaded(qtbot, model)
    before = model.rowCount()
    first_ids = [model.row(i).id for i in range(10)]
    resets = []
    model.modelReset.connect(lambda: resets.append(1))
    db = open_database(path)
    try:
        with db.write_session() as s:
            s.execute(insert(Detection), [{
                "image_id": cat.images_by_night[cat.night_ids[0]][0],
                "pipeline_id": cat.pipeline_id, "x1": 1, "y1": 1, "x2": 50, "y2": 50,
                "score": 0.99, "detector": "builtin", "top_label": SPECIES[0],
                "top_score": 0.9, "top_rank": "species"} for _ in range(7)])
        with qtbot.waitSignal(model.rowsInserted, timeout=10_000):
            model.refresh()
        assert model.rowCount() == before + 7
        assert [model.row(i).id for i in range(10)] == first_ids
        assert not resets  # appended, not reset: the view keeps its scroll position
        qtbot.waitUntil(lambda: model.total == before + 7, timeout=10_000)
    finally:
        with db.write_session() as s:
            s.query(Detection).filter(Detection.id > N).delete()
        db.close()


def test_view_threshold_and_species_filter(qtbot, big):
    services, cat, path = big
    view = DetectionsView(services)
    qtbot.addWidget(view)
    view.resize(900, 500)
    view.show()
    view.set_threshold(0.8, 0.5)
    view.set_selection(cat.deployment_id, cat.night_ids[:2])
    _wait_loaded(qtbot, view.model, 1)
    expected = _sql(path, """SELECT count(*) FROM detections d JOIN images i ON i.id =
        d.image_id WHERE i.night_id IN (?, ?) AND d.score >= 0.8""", *cat.night_ids[:2])[0][0]
    assert view.model.total == expected
    assert f"{expected:,} detections" in view.status.text()

    view.filter_label(SPECIES[0])
    _wait_loaded(qtbot, view.model)
    assert view.model.query.label == SPECIES[0]
    assert all(view.model.row(i).top_label == SPECIES[0] for i in range(view.model.rowCount()))

    view.below_check.setChecked(True)  # below-threshold rows listed too
    _wait_loaded(qtbot, view.model)
    assert view.model.query.min_score == 0.0

    with qtbot.waitSignal(view.openImageRequested) as sig:
        index = view.model.index(0, 3)
        view.table.doubleClicked.emit(index)
    row = view.model.row(0)
    assert sig.args == [row.image_id, row.id]


def test_label_columns_hidden_when_nothing_is_classified(qtbot, tmp_path):
    path = tmp_path / "plain.sqlite3"
    db = open_database(path)
    cat = populate(db, tmp_path / "trap", n_detections=50, n_nights=1, images_per_night=2)
    with db.write_session() as s:  # as after a run with the built-in detector only
        s.query(Detection).update({"binary_label": None, "binary_score": None,
                                   "top_label": None, "top_score": None, "top_rank": None})
    db.close()
    services = Services.create(config_dir=tmp_path / "config", db_path=path)
    try:
        view = DetectionsView(services)
        qtbot.addWidget(view)
        view.set_threshold(0.0, 0.5)
        view.set_selection(cat.deployment_id, [])
        _wait_loaded(qtbot, view.model, 50)
        label_col = [c[0] for c in COLUMNS].index("Label")
        assert view.table.isColumnHidden(label_col)
        assert "no classifier has run" in view.status.text()
        assert not view.table.isColumnHidden(0)
    finally:
        services.close()
