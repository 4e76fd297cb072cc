"""Individuals everywhere the window counts: the trap tree, the nights overview and the Species
summary give the numbers of ``trapgui nights`` (``db.counts``) on the same catalogue at the
same thresholds, with detections beside them and the thresholds said."""

from __future__ import annotations

import datetime as dt

import pytest
from PySide6.QtCore import Qt

from tests.tracking_catalogue import add_frames, make_catalogue
from trapgui.core.jobs import run_job
from trapgui.gui.nights_overview import NightsOverview
from trapgui.gui.species_view import SpeciesSummaryView
from trapgui.gui.trap_tree import COLUMNS, TrapTree
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui
N1, N2, N3 = dt.date(2022, 6, 21), dt.date(2022, 6, 22), dt.date(2022, 6, 23)


@pytest.fixture
def tracked(tmp_path):
    services = Services.create(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                               db_path=tmp_path / "c.sqlite3")
    services.settings.detection_threshold = 0.5
    services.settings.classification_threshold = 0.5
    cat = make_catalogue(services.db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1, "moth-c": 2})
    add_frames(cat, N2, 5, {"moth-d": 3, "moth-e": 4})
    run_job(services.tracking.tracking_job(cat.pipeline_id), None)
    add_frames(cat, N3, 3, {"moth-f": 5})  # processed but not tracked yet
    yield services, cat
    services.close()


def _cli_nights(capsys, services) -> dict[str, dict[str, str]]:
    from trapgui.cli.main import run_cli

    s = services.settings
    code = run_cli(["--db", str(services.db.path), "nights", "--detection-threshold",
                    str(s.detection_threshold), "--classification-threshold",
                    str(s.classification_threshold)])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        if len(cells) != len(header):
            break  # the footer
        rows[cells[1]] = dict(zip(header, cells))
    return rows


def _tree(qtbot, services) -> TrapTree:
    tree = TrapTree(services)
    qtbot.addWidget(tree)
    with qtbot.waitSignal(tree.loaded, timeout=30_000):
        tree.reload()
    return tree


def _night_cells(tree: TrapTree) -> dict[str, dict[str, str]]:
    top = tree.tree.topLevelItem(0)
    out = {}
    for j in range(top.childCount()):
        item = top.child(j)
        date = dt.datetime.strptime(item.text(0), "%a %d %b %Y").date().isoformat()
        out[date] = {COLUMNS[c]: item.text(c) for c in range(len(COLUMNS))}
    return out


def test_the_tree_counts_what_trapgui_nights_counts(qtbot, capsys, tracked):
    services, cat = tracked
    cli = _cli_nights(capsys, services)
    tree = _tree(qtbot, services)
    cells = _night_cells(tree)
    assert set(cells) == set(cli) == {N1.isoformat(), N2.isoformat(), N3.isoformat()}
    for date, row in cli.items():
        if date != N3.isoformat():
            assert cells[date]["Individuals"] == row["INDIVIDUALS"], date
        assert cells[date]["Detections"] == row["DETECTIONS"], date
        assert cells[date]["Images"] == row["IMAGES"], date
    # the known truth: 3 and 2 moths, the screw left out of both; night 3 is not tracked yet:
    # the CLI says 0 and, under its table, that detections belong to no individual yet; the
    # tree says "–" and why in the night's tip
    assert [cells[d.isoformat()]["Individuals"] for d in (N1, N2, N3)] == ["3", "2", "–"]
    assert cli[N3.isoformat()]["INDIVIDUALS"] == "0"
    third = tree.tree.topLevelItem(0).child(2)
    assert "Not tracked yet" in third.toolTip(0)
    assert cells[N1.isoformat()]["Detections"] == "18"
    assert cells[N1.isoformat()]["Species"] == "0"  # a binary "moth" is not a species
    top = tree.tree.topLevelItem(0)
    assert top.text(COLUMNS.index("Individuals")) == "5"
    header = tree.tree.headerItem()
    assert "≥ 0.50" in header.toolTip(COLUMNS.index("Individuals"))
    assert "fixtures left out" in header.toolTip(COLUMNS.index("Individuals"))
    night_tip = top.child(0).toolTip(0)
    assert "3 individuals (MaxN 3" in night_tip
    assert "Camera clock: not set" in top.toolTip(0)  # the trap's metadata


def test_the_counts_follow_the_thresholds(qtbot, capsys, tracked):
    services, _cat = tracked
    services.settings.detection_threshold = 0.95  # every detection scores 0.9
    cli = _cli_nights(capsys, services)
    tree = _tree(qtbot, services)
    cells = _night_cells(tree)
    for date, row in cli.items():
        assert cells[date]["Individuals"] == row["INDIVIDUALS"] == "0"
        assert cells[date]["Detections"] == row["DETECTIONS"] == "0"
    header = tree.tree.headerItem()
    assert "≥ 0.95" in header.toolTip(COLUMNS.index("Detections"))


def test_the_nights_overview_shows_individuals_and_max_n(qtbot, capsys, tracked):
    services, cat = tracked
    cli = _cli_nights(capsys, services)
    tree = _tree(qtbot, services)
    overview = NightsOverview(services)
    qtbot.addWidget(overview)
    overview.set_summaries(tree.summaries)
    overview.set_selection(cat.deployment_id, [])
    headers = [overview.table.horizontalHeaderItem(c).text()
               for c in range(overview.table.columnCount())]
    assert overview.table.rowCount() == 3
    for row in range(3):
        cells = {h: overview.table.item(row, c).text() for c, h in enumerate(headers)}
        date = dt.datetime.strptime(cells["Night"], "%a %d %b %Y").date().isoformat()
        if date == N3.isoformat():  # not tracked yet
            assert cells["Individuals"] == cells["MaxN"] == "–"
        else:
            assert cells["Individuals"] == cli[date]["INDIVIDUALS"]
            assert cells["MaxN"] == cli[date]["MAXN"]
        assert cells["Detections"] == cli[date]["DETECTIONS"]
    assert "5 individuals" in overview.heading.text()
    assert "detection score ≥ 0.50" in overview.heading.text()
    assert "≥ 0.50" in overview.table.horizontalHeaderItem(headers.index("Individuals")).toolTip()


def test_the_species_summary_counts_individuals_per_taxon(qtbot, capsys, tracked):
    services, cat = tracked
    cli = _cli_nights(capsys, services)
    view = SpeciesSummaryView(services)
    qtbot.addWidget(view)
    view.set_threshold(0.5, 0.5)
    view.set_selection(cat.deployment_id, [cat.nights[N1], cat.nights[N2]])
    qtbot.waitUntil(lambda: view.model.rowCount() > 0, timeout=30_000)
    headers = [view.model.headerData(c, Qt.Horizontal) for c in range(view.model.columnCount())]
    assert headers[:5] == ["Taxon", "Rank", "Individuals", "Detections", "MaxN"]
    assert headers[5:] == ["21 Jun", "22 Jun"]
    assert view.labels() == ["moth"]  # the screws are fixtures: no "nonmoth" row
    cells = [view.model.item(0, c).data(Qt.DisplayRole) for c in range(len(headers))]
    individuals = sum(int(cli[d.isoformat()]["INDIVIDUALS"]) for d in (N1, N2))
    detections = sum(int(cli[d.isoformat()]["DETECTIONS"]) for d in (N1, N2))
    assert cells[2:] == [individuals, detections, 3, 3, 2]
    assert "5 individuals (28 detections" in view.summary.text()
    assert "detection score ≥ 0.50" in view.summary.text()
