"""Hostile and broken files in a trap folder, through the real CLI in a subprocess: every file
on disk becomes a catalogue row, `trapgui nights` adds up to the files on disk, and `trapgui
process` ends with results or a reason for each, without a crash, a hang or a silent drop.
Plus the single cases behind the corpus: names that are not text, looping links, one row
SQLite cannot store, names that would drive the terminal."""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import insert, select

import trapgui.db.database as database_module

from tests.bad_input_corpus import Kind, _corrupt_entropy_jpeg, drop_root_dac, make_corpus
from tests.image_files import make_jpeg
from trapgui.core.errors import DatabaseError
from trapgui.core.file_names import from_stored, to_stored
from trapgui.core.types import ImageState, TimeSource
from trapgui.db import open_database
from trapgui.db.tables import Deployment, Image, Job
from trapgui.scan.files import FoundFile, Probe
from trapgui.scan.indexer import CHUNK, ScanReport, _write_chunk, scan_folder
from trapgui.scan.night_groups import NightIds

RAW_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]")


def _cli(db_path: Path, *args, timeout: float = 600) -> subprocess.CompletedProcess:
    # errors="surrogateescape": whatever bytes the CLI writes are kept for the checks below
    return subprocess.run([sys.executable, "-m", "trapgui", "--db", str(db_path), *args],
                          capture_output=True, text=True, errors="surrogateescape",
                          timeout=timeout, preexec_fn=drop_root_dac)


def _catalogue(db_path: Path):
    db = open_database(db_path)
    try:
        with db.session() as s:
            images = {r.rel_path: r for r in s.execute(select(
                Image.id, Image.rel_path, Image.state, Image.error, Image.width, Image.height,
                Image.night_id, Image.time_source))}
            jobs = {r.image_id: r for r in s.execute(select(Job.image_id, Job.state, Job.error))}
            deployments = s.execute(select(Deployment.path, Deployment.name)).all()
    finally:
        db.close()
    return images, jobs, deployments


def _nights_totals(out: str) -> tuple[int, int]:
    """(IMAGES, UNREADABLE) summed over the rows of the `trapgui nights` table."""
    lines = out.splitlines()
    header = re.split(r"\s{2,}", lines[0].strip())
    images = unreadable = 0
    for line in lines[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == len(header), line
        images += int(cells[header.index("IMAGES")])
        unreadable += int(cells[header.index("UNREADABLE")])
    return images, unreadable


def test_bad_input_corpus_through_the_cli(tmp_path):
    folder = tmp_path / "corpus"
    kinds = make_corpus(folder)
    assert len(kinds) >= 20
    files = [f for k in kinds for f in k.files]
    assert len(files) == len(set(files))
    db_path = tmp_path / "catalogue.sqlite3"

    done = _cli(db_path, "process", str(folder), "--classifier", "none", "--device", "cpu",
                "--batch-size", "4", "--quiet")
    assert done.returncode == 0, done.stderr[-3000:]
    for stream in (done.stdout, done.stderr):
        assert not RAW_CONTROL.search(stream), RAW_CONTROL.findall(stream)
    assert "Traceback" not in done.stderr

    images, jobs, _ = _catalogue(db_path)
    assert len(images) == len(files), sorted(set(images) ^ {to_stored(f) for f in files})
    problems = []
    for kind in kinds:
        for rel in kind.files:
            problem = _check(kind, rel, images.get(to_stored(rel)), jobs)
            if problem:
                problems.append(f"{kind.name} ({rel!r}): {problem}")
    assert problems == []

    nights = _cli(db_path, "nights")
    assert nights.returncode == 0, nights.stderr
    assert not RAW_CONTROL.search(nights.stdout)
    total, unreadable = _nights_totals(nights.stdout)
    assert total == len(files)  # every file on disk, in a night or "undated"
    assert unreadable == sum(len(k.files) for k in kinds if k.outcome == "unreadable")

    again = _cli(db_path, "process", str(folder), "--classifier", "none", "--device", "cpu",
                 "--quiet")
    assert again.returncode == 0, again.stderr[-3000:]
    assert "0 new, 0 changed" in again.stdout and "0 images done, 0 failed" in again.stdout


def _check(kind: Kind, rel: str, row, jobs) -> str | None:
    if row is None:
        return "no catalogue row"
    job = jobs.get(row.id)
    if kind.outcome == "unreadable":
        if row.state != ImageState.UNREADABLE.value or not row.error:
            return f"expected unreadable with a reason, got {row.state} {row.error!r}"
        if kind.reason not in row.error:
            return f"reason {row.error!r} lacks {kind.reason!r}"
        return None
    if row.state != ImageState.OK.value:
        return f"expected ok at scan, got {row.state}: {row.error}"
    if job is None:
        return "never queued"
    if kind.outcome == "done" and job.state != "done":
        return f"expected done, got {job.state}: {job.error}"
    if kind.outcome == "failed":
        if job.state != "failed" or not job.error or kind.reason not in job.error:
            return f"expected failed with {kind.reason!r}, got {job.state}: {job.error!r}"
    return None


# --- the single cases ----------------------------------------------------------------------------

def test_names_that_are_not_text_are_catalogued_and_processed_end_to_end(tmp_path):
    """A folder of 39 images, one with a Latin-1 name, in a folder whose own name is not UTF-8
    either, catalogued 0 (one UnicodeEncodeError rolled back the whole chunk). Now every file
    is a row, the name is stored escaped, and the engine opens the real file from it."""
    trap = Path(os.fsdecode(bytes(tmp_path) + b"/trap-\xff"))
    for i in range(38):
        make_jpeg(trap / f"20220622{22 + i // 60:02d}{i % 60:02d}00.jpg", size=(96, 64))
    latin1 = os.fsdecode(b"20220623013000-caf\xe9.jpg")
    make_jpeg(trap / latin1, size=(96, 64))
    sub = os.fsdecode(b"sub-\xfe\xfe")
    make_jpeg(trap / sub / "20220623014000.jpg", size=(96, 64))
    db_path = tmp_path / "catalogue.sqlite3"

    done = _cli(db_path, "process", str(trap), "--classifier", "none", "--device", "cpu",
                "--quiet", timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "40 images in 1 night (40 new" in done.stdout
    assert "40 images done, 0 failed" in done.stdout

    images, jobs, deployments = _catalogue(db_path)
    assert len(images) == 40
    stored = "20220623013000-caf\\xe9.jpg"
    assert stored in images and "sub-\\xfe\\xfe/20220623014000.jpg" in images
    assert all(r.state == "ok" for r in images.values())
    assert {j.state for j in jobs.values()} == {"done"} and len(jobs) == 40
    assert deployments == [(to_stored(str(trap)), "trap-\\xff")]
    assert os.fsencode(from_stored(deployments[0][0])) == bytes(tmp_path) + b"/trap-\xff"
    nights = _cli(db_path, "nights")
    assert nights.returncode == 0, nights.stderr
    assert _nights_totals(nights.stdout) == (40, 0)
    assert "trap-\\xff" in nights.stdout


def test_file_names_round_trip_exactly():
    names = ["plain.jpg", "Ñandú_蛾.JPG", os.fsdecode(b"caf\xe9.jpg"), "a\\b.jpg",
             "literal \\xe9 and \\\\ two.jpg", os.fsdecode(b"\xff\\xff.jpg"), "C:\\traps\\xa0",
             "C:\\Users\\me\\traps", "\ud800lone-utf16.jpg", "x\\ud800y.jpg"]
    for name in names:
        stored = to_stored(name)
        stored.encode("utf-8")  # storable as SQLite text
        assert from_stored(stored) == name, name
    assert to_stored("C:\\Users\\me\\traps") == "C:\\Users\\me\\traps"  # unchanged rows
    assert to_stored("Ñandú_蛾.JPG") == "Ñandú_蛾.JPG"
    assert to_stored(os.fsdecode(b"caf\xe9.jpg")) == "caf\\xe9.jpg"
    assert len({to_stored(n) for n in names}) == len(names)


def test_looping_links_become_rows_and_broken_links_keep_theirs(db, tmp_path):
    trap = tmp_path / "trap"
    make_jpeg(trap / "20220622220000.jpg")
    os.symlink("20220622220100-self.jpg", trap / "20220622220100-self.jpg")
    os.symlink("20220622220300-b.jpg", trap / "20220622220200-a.jpg")
    os.symlink("20220622220200-a.jpg", trap / "20220622220300-b.jpg")
    os.symlink(trap / "gone.jpg", trap / "20220622220400-broken.jpg")
    os.symlink("loop", trap / "loop")  # not an image name: reported, not catalogued
    report = scan_folder(db, trap)
    assert report.found == 5 and report.unreadable == 4
    with db.session() as s:
        rows = {i.rel_path: i for i in s.scalars(select(Image))}
    for name in ("20220622220100-self.jpg", "20220622220200-a.jpg", "20220622220300-b.jpg"):
        assert rows[name].state == "unreadable"
        assert rows[name].error == "link loops back on itself"
        assert rows[name].night_id is not None  # dated from its name like any other file
    assert rows["20220622220400-broken.jpg"].error.startswith("broken link")
    assert report.folder_errors == [("loop", "link loops back on itself")]
    again = scan_folder(db, trap)
    assert again.unchanged == 5 and not again.wrote_anything


def test_one_row_sqlite_cannot_store_does_not_roll_back_the_others(db, tmp_path):
    """The scan writes 2,000 files per transaction. A row the driver refuses (a name that is
    not text, a number too big for SQLite) once made the whole chunk roll back and the scan
    stop. Now the others are stored and that file is kept as unreadable with the reason."""
    with db.write_session() as s:
        dep_id = s.execute(insert(Deployment).values(path=str(tmp_path), name="t").returning(
            Deployment.id)).scalar_one()
    night = dt.datetime(2022, 6, 22, 22, 0)
    ok = Probe(ImageState.OK, None, 64, 48, night, None, TimeSource.FILENAME, None)
    chunk = [(FoundFile(f"{i:05d}.jpg", f"/x/{i:05d}.jpg", 100, 1.0), None, False)
             for i in range(CHUNK - 2)]
    chunk.insert(700, (FoundFile("bad-\udce9.jpg", "/x/bad", 100, 1.0), None, False))
    chunk.insert(1500, (FoundFile("huge.jpg", "/x/huge.jpg", 2 ** 64, 1.0), None, False))
    report = ScanReport(folder=str(tmp_path), deployment_id=dep_id)
    _write_chunk(db, dep_id, NightIds(db, dep_id, 12), chunk, [ok] * len(chunk), report)
    with db.session() as s:
        rows = {i.rel_path: i for i in s.scalars(select(Image))}
    assert len(rows) == CHUNK and report.added == CHUNK
    assert sum(r.state == "ok" for r in rows.values()) == CHUNK - 2
    bad = rows["bad-\\udce9.jpg"]
    assert bad.state == "unreadable" and "could not store" in bad.error
    assert rows["huge.jpg"].state == "unreadable" and "could not store" in rows["huge.jpg"].error
    assert {p for p, _ in report.new_problems} == {"bad-\\udce9.jpg", "huge.jpg"}


def test_names_with_terminal_escapes_are_printed_safely(tmp_path):
    trap = tmp_path / "trap-\x1b]0;title\x07"
    make_jpeg(trap / "20220622220000-\x1b[2J\x1b[H.jpg", size=(96, 64))
    (trap / "20220622220100-\x1b[31mred\r\x08.jpg").write_bytes(b"")  # unreadable: listed
    make_jpeg(trap / "20220622220200-\u202egpj.exe.jpg", size=(96, 64))
    (trap / "20220622220300-\x1b[1Aover.jpg").write_bytes(_corrupt_entropy_jpeg())  # fails
    db_path = tmp_path / "catalogue.sqlite3"
    scan = _cli(db_path, "scan", str(trap))
    assert scan.returncode == 0, scan.stderr
    process = _cli(db_path, "process", str(trap), "--classifier", "none", "--device", "cpu",
                   "--quiet")
    assert process.returncode == 0, process.stderr
    nights = _cli(db_path, "nights")
    missing = _cli(db_path, "nights", "--trap", str(tmp_path / "no\x1b[2Jsuch"))
    assert missing.returncode == 2
    for done in (scan, process, nights, missing):
        for stream in (done.stdout, done.stderr):
            assert not RAW_CONTROL.search(stream), (done.args, RAW_CONTROL.findall(stream))
    assert "unreadable: 20220622220100-\\x1b[31mred\\x0d\\x08.jpg: empty file" in scan.stdout
    assert "trap-\\x1b]0;title\\x07" in scan.stdout and "trap-\\x1b]0;title\\x07" in nights.stdout
    assert "20220622220300-\\x1b[1Aover.jpg: Unreadable image" in process.stderr
    assert "no\\x1b[2Jsuch" in missing.stderr


def test_trouble_with_the_catalogue_itself_is_not_retried_row_by_row(db, tmp_path, caplog,
                                                                     monkeypatch):
    """Only a row the driver refuses is stored alone; a catalogue locked past the busy
    timeout stops the scan at once with the clear message (not 2,000 more waits)."""
    trap = tmp_path / "trap"
    for i in range(30):
        make_jpeg(trap / f"20220622{22 + i // 60:02d}{i % 60:02d}00.jpg")
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 300)
    db.engine.dispose()  # new connections get the short timeout
    scan_folder(db, trap)
    make_jpeg(trap / "20220623010000.jpg")
    holder = sqlite3.connect(db.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseError, match="locked by another program"):
            scan_folder(db, trap)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "one by one" not in caplog.text
