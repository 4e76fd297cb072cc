"""Images per night add up, in every view: ``images = processed + failed + unreadable +
waiting`` (``core.night_counts``), from one query (``db.catalogue_queries.nights_table``),
shown the same by the trap tree, the nights overview and ``trapgui nights`` on a catalogue
with done, failed (a photo refused as not a trap sheet among them), unreadable, queued,
never-queued and deleted images."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.night_counts_catalogue import EXPECTED, FIELDS, MISSING, build_mixed
from trapgui.db.catalogue_queries import nights_table
from trapgui.gui.nights_overview import NightsOverview
from trapgui.gui.trap_tree import COLUMNS, TREE_DOCK_WIDTH, TrapTree
from trapgui.services.app_services import Services

pytestmark = pytest.mark.gui


@pytest.fixture
def mixed(tmp_path):
    services = Services.create(config_dir=tmp_path / "cfg", data_dir=tmp_path / "data",
                               db_path=tmp_path / "c.sqlite3")
    cat = build_mixed(services.db)
    yield services, cat
    services.close()


def _cli_nights(capsys, services) -> tuple[dict[str, dict[str, str]], str]:
    from trapgui.cli.main import run_cli

    code = run_cli(["--db", str(services.db.path), "nights"])
    out, err = capsys.readouterr()
    assert code == 0, err
    lines = out.splitlines()
    header = lines[0].split()
    rows = {}
    for line in lines[1:]:
        cells = line.split()
        out = cells[:2]
        rest = cells[2:]
        for _ in ("FIRST", "LAST"):  # "06-21 22:00" or "-"
            n = 1 if rest[0] == "-" else 2
            out.append(" ".join(rest[:n]))
            rest = rest[n:]
        cells = out + rest
        rows[cells[1]] = dict(zip(header, cells))
    return rows, err


def _tree(qtbot, services) -> TrapTree:
    tree = TrapTree(services)
    qtbot.addWidget(tree)
    with qtbot.waitSignal(tree.loaded, timeout=30_000):
        tree.reload()
    return tree


def _number(text: str) -> int:
    return int(text.replace(",", "")) if text else 0


def test_every_view_shows_counts_that_add_up(qtbot, capsys, mixed, tmp_path):
    services, cat = mixed
    rows = {r.date.isoformat(): r for r in nights_table(
        services.db, pipeline_id=cat.pipeline_id, min_score=0.5, min_label_score=0.5,
        counted_only=True)}
    for date, row in rows.items():
        assert tuple(getattr(row, f) for f in FIELDS) == EXPECTED[date], date
        assert row.images == row.processed + row.failed + row.unreadable + row.waiting
        assert row.missing == MISSING[date]

    cli, footer = _cli_nights(capsys, services)
    assert "processed + failed + unreadable + waiting" in footer
    for date, expected in EXPECTED.items():
        got = tuple(int(cli[date][f.upper()]) for f in FIELDS)
        assert got == expected, (date, cli[date])
        assert int(cli[date]["MISSING"]) == MISSING[date]

    tree = _tree(qtbot, services)
    top = tree.tree.topLevelItem(0)
    col = {f: COLUMNS.index(f.capitalize()) for f in FIELDS if f != "waiting"}
    for j in range(top.childCount()):
        item = top.child(j)
        date = dt.datetime.strptime(item.text(0), "%a %d %b %Y").date().isoformat()
        images, processed, failed, unreadable, waiting = EXPECTED[date]
        shown = {f: _number(item.text(c)) for f, c in col.items()}
        assert shown == {"images": images, "processed": processed, "failed": failed,
                         "unreadable": unreadable}, date
        assert (f"{waiting} waiting" in item.toolTip(col["images"])) == bool(waiting)
        assert f"{images} images: {processed} processed" in item.toolTip(col["processed"])
    totals = [sum(v[i] for v in EXPECTED.values()) for i in range(5)]
    assert [_number(top.text(c)) for c in col.values()] == totals[:4]
    header = tree.tree.headerItem()
    assert "processed + failed + unreadable + waiting" in header.toolTip(col["images"])
    assert "not a trap sheet" in header.toolTip(col["failed"])
    assert "never processed" in header.toolTip(col["unreadable"])

    overview = NightsOverview(services)
    qtbot.addWidget(overview)
    overview.resize(1100, 300)
    overview.set_summaries(tree.summaries)
    overview.set_selection(cat.deployment_id, [])
    headers = [overview.table.horizontalHeaderItem(c).text()
               for c in range(overview.table.columnCount())]
    assert overview.table.rowCount() == 2
    for r in range(2):
        cells = {h: overview.table.item(r, c).text() for c, h in enumerate(headers)}
        date = dt.datetime.strptime(cells["Night"], "%a %d %b %Y").date().isoformat()
        assert tuple(_number(cells[f.capitalize()]) for f in FIELDS) == EXPECTED[date], date
    assert f"{totals[2]} failed" in overview.heading.text()
    assert f"{totals[4]} waiting" in overview.heading.text()

    # the tree at the width the window gives it keeps every column in view and legible
    tree.resize(TREE_DOCK_WIDTH, 200)
    tree.show()
    qtbot.waitExposed(tree)
    tree.grab().save(str(tmp_path / "tree.png"))
    header_view = tree.tree.header()
    for c in range(1, len(COLUMNS)):
        label = tree.tree.headerItem().text(c)
        assert header_view.sectionSize(c) >= header_view.fontMetrics().horizontalAdvance(label)
    assert header_view.length() <= tree.tree.viewport().width(), \
        [header_view.sectionSize(c) for c in range(len(COLUMNS))]
