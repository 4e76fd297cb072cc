"""One night-effort partition (issue 10, "One answer to one question"): the effort figures of
the exports (``db.counts.night_effort``: the species x night matrix, the night summary,
Darwin Core's events) are the numbers of ``trapgui nights`` for a catalogue with done, failed,
unreadable, waiting and deleted images: images = processed + failed + unreadable + waiting,
deleted files apart (``core.night_counts``)."""

from __future__ import annotations

import csv
import io
import zipfile

import pytest

from tests.night_counts_catalogue import EXPECTED, FIELDS, MISSING, build_mixed
from trapgui.db import open_database
from trapgui.db.counts import night_effort
from trapgui.db.export_queries import ExportScope


@pytest.fixture
def mixed(tmp_path):
    path = tmp_path / "c.sqlite3"
    db = open_database(path)
    cat = build_mixed(db)
    yield path, cat
    db.close()


def _cli(capsys, *argv) -> str:
    from trapgui.cli.main import run_cli

    code = run_cli([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert code == 0, (argv, out, err)
    return out


def _nights(capsys, db_path) -> dict[str, tuple[int, ...]]:
    lines = _cli(capsys, "--db", db_path, "nights").splitlines()
    header = lines[0].split()
    out = {}
    for line in lines[1:]:
        cells = line.split()
        if not cells or cells[0] != "trap":  # the footer explains the columns
            continue
        head, rest = cells[:2], cells[2:]
        for _ in ("FIRST", "LAST"):  # "06-21 22:00" or "-"
            n = 1 if rest[0] == "-" else 2
            head.append(" ".join(rest[:n]))
            rest = rest[n:]
        row = dict(zip(header, head + rest))
        out[row["NIGHT"]] = tuple(int(row[f.upper()]) for f in (*FIELDS, "missing"))
    return out


def test_the_exports_effort_is_the_partition_of_trapgui_nights(mixed, capsys, tmp_path):
    db_path, cat = mixed
    nights = _nights(capsys, db_path)
    assert nights == {d: (*EXPECTED[d], MISSING[d]) for d in EXPECTED}

    effort = {e.date.isoformat(): e for e in night_effort(cat.db, ExportScope(), cat.pipeline_id)}
    got = {d: (*(getattr(e, f) for f in FIELDS), e.missing) for d, e in effort.items()}
    assert got == nights
    for e in effort.values():
        assert e.images == e.processed + e.failed + e.unreadable + e.waiting
    assert not effort["2022-06-21"].fully_processed  # two images wait
    assert effort["2022-06-22"].fully_processed

    matrix = tmp_path / "matrix.csv"
    _cli(capsys, "--db", db_path, "export", "matrix", "--out", matrix)
    with matrix.open(newline="", encoding="utf-8") as fh:
        rows = {r["night"]: r for r in csv.DictReader(fh)}
    assert {d: tuple(int(r[f]) for f in FIELDS) for d, r in rows.items()} == EXPECTED
    assert {d: r["complete"] for d, r in rows.items()} == {"2022-06-21": "false",
                                                           "2022-06-22": "true"}

    summary = tmp_path / "summary.csv"
    _cli(capsys, "--db", db_path, "export", "summary", "--out", summary)
    with summary.open(newline="", encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            assert tuple(int(r[f]) for f in FIELDS) == EXPECTED[r["night"]]

    dwc = tmp_path / "dwc.zip"
    _cli(capsys, "--db", db_path, "export", "dwc", "--out", dwc)
    with zipfile.ZipFile(dwc) as zf:
        events = list(csv.DictReader(io.TextIOWrapper(zf.open("event.csv"), encoding="utf-8")))
    by_night = {f"{int(e['year']):04d}-{int(e['month']):02d}-{int(e['day']):02d}": e
                for e in events}
    assert len(events) == 2
    first, second = by_night["2022-06-21"], by_night["2022-06-22"]
    assert first["samplingEffort"].startswith("12 images taken over ")
    assert first["samplingEffort"].endswith(", 6 processed")
    assert "6 of 12 images processed" in first["eventRemarks"]
    assert "2 waiting" in first["eventRemarks"]
    assert "4 images could not be read or processed" in first["eventRemarks"]
    assert second["samplingEffort"].startswith("6 images taken over ")
    assert "waiting" not in second["eventRemarks"]


def test_a_night_whose_processed_files_were_deleted_stays_sampled(mixed, capsys, tmp_path):
    """Deleted files are apart from the partition, but a night processed before its files
    were deleted was sampled: its individuals stay in the matrix, with no zeros invented."""
    from sqlalchemy import update

    from tests.night_counts_catalogue import N2
    from trapgui.db.tables import Image

    db_path, cat = mixed
    with cat.db.write_session() as s:
        s.execute(update(Image).where(Image.night_id == cat.nights[N2]).values(state="missing"))
    nights = _nights(capsys, db_path)
    assert nights[N2.isoformat()] == (0, 0, 0, 0, 0, 6)
    (effort,) = [e for e in night_effort(cat.db, ExportScope(), cat.pipeline_id)
                 if e.date == N2]
    assert (effort.images, effort.missing, effort.missing_processed) == (0, 6, 5)
    assert effort.sampled and effort.fully_processed
    matrix = tmp_path / "matrix.csv"
    _cli(capsys, "--db", db_path, "export", "matrix", "--out", matrix)
    with matrix.open(newline="", encoding="utf-8") as fh:
        row = {r["night"]: r for r in csv.DictReader(fh)}[N2.isoformat()]
    assert (row["images"], row["missing"], row["individuals"]) == ("0", "6", "1")
    dwc = tmp_path / "dwc.zip"
    _cli(capsys, "--db", db_path, "export", "dwc", "--out", dwc)
    with zipfile.ZipFile(dwc) as zf:
        events = list(csv.DictReader(io.TextIOWrapper(zf.open("event.csv"), encoding="utf-8")))
    assert any("5 processed images deleted from the trap folder since" in e["eventRemarks"]
               for e in events)
