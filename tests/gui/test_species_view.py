"""The species summary: individuals (tracked occurrences, fixtures left out) per taxon and
night above both thresholds (checked against SQL on the same file), thumbnails of the best
crops, and a click that asks for the label's detections (which the Detections view then
filters to)."""

from __future__ import annotations

import shutil
import sqlite3
from collections import Counter

import pytest
from PySide6.QtCore import Qt

from tests.gui.results_fixtures import populate
from sqlalchemy import insert

from trapgui.db import open_database
from trapgui.db.tables import Job
from trapgui.gui.detections_view import DetectionsView
from trapgui.gui.species_view import SpeciesSummaryView
from trapgui.services.app_services import Services
from trapgui.core.jobs import run_job
from trapgui.services.tracking_types import UNIDENTIFIED as UNCLASSIFIED

pytestmark = pytest.mark.gui


@pytest.fixture
def catalogue(tmp_path, small_trap_images):
    source = small_trap_images / "sequential"
    folder = tmp_path / "trap"
    names = []
    for night in range(3):  # 3 nights of the 5 real frames, each night in its own folder
        (folder / f"night{night}").mkdir(parents=True)
        for src in sorted(source.glob("*.jpg")):
            shutil.copyfile(src, folder / f"night{night}" / src.name)
            names.append(f"night{night}/{src.name}")
    from PIL import Image

    with Image.open(folder / names[0]) as im:
        size = im.size
    path = tmp_path / "catalogue.sqlite3"
    db = open_database(path)
    cat = populate(db, folder, n_detections=3000, n_nights=3, images_per_night=5,
                   image_names=names, image_size=size, seed=3, with_classifications=True)
    with db.write_session() as s:  # processed: what tracking reads
        s.execute(insert(Job), [{"image_id": i, "pipeline_id": cat.pipeline_id, "state": "done"}
                                for i in cat.image_ids])
    db.close()
    services = Services.create(config_dir=tmp_path / "config", db_path=path)
    run_job(services.tracking.tracking_job(cat.pipeline_id), None)  # individuals
    yield services, cat, path
    services.close()


def _expected(path, night_ids, det, cls):
    """Individuals per (taxon, night): occurrences that are no fixture with a detection scoring
    at least ``det``, under their label when it scores at least ``cls``."""
    with sqlite3.connect(path) as con:
        rows = con.execute(f"""
            SELECT DISTINCT o.id, CASE WHEN o.label_score >= ? THEN o.label END, o.night_id
            FROM occurrences o JOIN detections d ON d.occurrence_id = o.id
            WHERE NOT o.fixture AND d.score >= ?
              AND o.night_id IN ({','.join('?' * len(night_ids))})""",
                           (cls, det, *night_ids)).fetchall()
    return Counter((label or UNCLASSIFIED, night) for _occ, label, night in rows)


def _view(qtbot, services):
    view = SpeciesSummaryView(services)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    return view


def test_counts_per_night_match_the_catalogue(qtbot, catalogue):
    services, cat, path = catalogue
    view = _view(qtbot, services)
    view.set_threshold(0.6, 0.5)
    with qtbot.waitSignal(view.model.modelReset, timeout=10_000):
        view.set_selection(cat.deployment_id, cat.night_ids[:2])
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=10_000)
    expected = _expected(path, cat.night_ids[:2], 0.6, 0.5)
    labels = {label for label, _ in expected}
    assert set(view.labels()) == labels
    assert view.labels()[-1] == UNCLASSIFIED  # not a taxon: listed last
    headers = [view.model.headerData(c, Qt.Horizontal) for c in range(view.model.columnCount())]
    assert headers == ["Taxon", "Rank", "Individuals", "Detections", "MaxN", "20 Jun", "21 Jun"]
    for row in range(view.model.rowCount()):
        label = view.model.item(row, 0).text()
        per_night = [view.model.item(row, 5 + k).data(Qt.DisplayRole) for k in range(2)]
        assert per_night == [expected[(label, n)] for n in cat.night_ids[:2]]
        assert view.model.item(row, 2).data(Qt.DisplayRole) == sum(per_night)
    counts = [view.model.item(r, 2).data(Qt.DisplayRole) for r in range(view.model.rowCount() - 1)]
    assert counts == sorted(counts, reverse=True)  # most frequent first

    # a stricter threshold counts fewer
    before = sum(view.model.item(r, 2).data(Qt.DisplayRole) for r in range(view.model.rowCount()))
    with qtbot.waitSignal(view.model.modelReset, timeout=10_000):
        view.set_threshold(0.9, 0.5)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=10_000)
    after = sum(view.model.item(r, 2).data(Qt.DisplayRole) for r in range(view.model.rowCount()))
    assert after == sum(_expected(path, cat.night_ids[:2], 0.9, 0.5).values()) < before


def test_refreshes_leave_no_wrapper_of_an_item_the_model_deleted(qtbot, catalogue):
    """PySide keeps the wrapper of a model-made item it handed out after model.clear()
    deletes the item; a later Qt object at that address then came back as that stale
    QStandardItem (a table's selectionModel() did, and the main window failed to build)."""
    import shiboken6
    from PySide6.QtGui import QStandardItem

    services, cat, _path = catalogue
    view = _view(qtbot, services)
    steps = [lambda: view.set_selection(cat.deployment_id, cat.night_ids[:2]),
             lambda: view.set_threshold(0.9, 0.5),
             lambda: view.set_selection(cat.deployment_id, cat.night_ids)]
    for step in steps:
        with qtbot.waitSignal(view.model.modelReset, timeout=10_000):
            step()
        qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=10_000)
        for col in range(view.model.columnCount()):  # what a test or a tooltip reads
            view.model.horizontalHeaderItem(col).toolTip()
            view.model.item(0, col).text()
    model_made = [w for w in shiboken6.getAllValidWrappers()
                  if isinstance(w, QStandardItem) and not shiboken6.createdByPython(w)]
    assert model_made == []


def test_thumbnails_are_the_best_crops(qtbot, catalogue):
    services, cat, path = catalogue
    view = _view(qtbot, services)
    view.set_threshold(0.5, 0.5)
    view.set_selection(cat.deployment_id, cat.night_ids)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=10_000)
    n = view.model.rowCount()
    qtbot.waitUntil(lambda: sum(not view.model.item(r, 0).icon().isNull()
                                for r in range(view.model.rowCount())) == n, timeout=30_000)
    icon = view.model.item(0, 0).icon()
    size = icon.availableSizes()[0]
    assert max(size.width(), size.height()) <= 56


def test_click_shows_the_label_detections(qtbot, catalogue):
    services, cat, path = catalogue
    view = _view(qtbot, services)
    detections = DetectionsView(services)
    qtbot.addWidget(detections)
    view.showDetectionsRequested.connect(detections.filter_label)
    for v in (view, detections):
        v.set_threshold(0.5, 0.5)
        v.set_selection(cat.deployment_id, cat.night_ids)
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=10_000)
    label = view.model.item(0, 0).text()
    with qtbot.waitSignal(view.showDetectionsRequested) as sig:
        view.table.clicked.emit(view.model.index(0, 0))
    assert sig.args == [label]
    # the Detections view lists detections by their own label (an individual's label is the
    # vote over its detections, so the two numbers need not agree)
    qtbot.waitUntil(lambda: detections.model.query.label == label
                    and detections.model.total > 0, timeout=10_000)

    # the "unclassified" bucket is no label to filter on
    last = view.model.rowCount() - 1
    assert view.model.item(last, 0).text() == UNCLASSIFIED
    with qtbot.assertNotEmitted(view.showDetectionsRequested):
        view.table.clicked.emit(view.model.index(last, 0))
