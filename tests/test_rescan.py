"""Incremental rescans: new, changed, vanished and returning files; nothing written when
nothing changed; results of vanished files kept; changed files queued again."""

from __future__ import annotations

import datetime as dt
import os
import shutil
import threading

import pytest
from sqlalchemy import func, select

import trapgui.scan.indexer as indexer
from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Classification, Deployment, Detection, Image, Job, Night
from trapgui.scan.indexer import scan_folder
from tests.image_files import make_jpeg

VERMONT_MIDNIGHT = "vermont/20220622000459-108-snapshot.jpg"
SEQ_69 = "sequential/20220728232239-00-69.jpg"
PANAMA_1 = "panama/01-20231110214539-snapshot.jpg"


def snapshot(db):
    """Every row of every table, plus the WAL file's size and mtime (any commit grows it)."""
    raw = db.engine.raw_connection()
    try:
        dump = list(raw.driver_connection.iterdump())
    finally:
        raw.close()
    wal = db.path.with_name(db.path.name + "-wal")
    st = wal.stat() if wal.exists() else None
    return dump, (st.st_size, st.st_mtime_ns) if st else None


def process_everything(db):
    """Queue and 'process' every image: two detections each, with classifications."""
    pid = jobqueue.get_or_create_pipeline(db, "test", "test pipeline", {"detector": "builtin"})
    with db.session() as s:
        ids = list(s.scalars(select(Image.id)))
    jobqueue.enqueue(db, pid, ids)
    claimed = jobqueue.claim(db, pid, "w1", len(ids), 600)
    results = [ImageResult(c.image_id, [
        DetectionResult(Box(10, 10, 50, 40), 0.9, "builtin",
                        [ClassificationResult("bin", Rank.BINARY, "moth", 0.8)]),
        DetectionResult(Box(60, 10, 90, 40), 0.7, "builtin")]) for c in claimed]
    assert jobqueue.complete(db, pid, None, "w1", results) == len(ids)
    return pid


def image_by_path(db):
    with db.session() as s:
        return {i.rel_path: i for i in s.scalars(select(Image))}


def results_of(db, image_id):
    with db.session() as s:
        job = s.execute(select(Job.state).where(Job.image_id == image_id)).scalar()
        dets = s.execute(select(func.count()).where(Detection.image_id == image_id)).scalar()
        cls = s.execute(select(func.count()).select_from(Classification).join(
            Detection, Detection.id == Classification.detection_id).where(
            Detection.image_id == image_id)).scalar()
    return job, dets, cls


def test_second_scan_writes_nothing_and_opens_nothing(db, trap_copy, monkeypatch):
    first = scan_folder(db, trap_copy)
    assert first.added == 14
    before = snapshot(db)

    def must_not_open(found):
        raise AssertionError(f"an unchanged file was opened: {found.rel_path}")

    monkeypatch.setattr(indexer, "probe_file", must_not_open)
    second = scan_folder(db, trap_copy)
    assert (second.unchanged, second.added, second.changed, second.missing) == (14, 0, 0, 0)
    assert not second.wrote_anything
    assert snapshot(db) == before


def test_new_changed_and_vanished_files(db, trap_copy):
    scan_folder(db, trap_copy)
    pid = process_everything(db)
    before = image_by_path(db)

    shutil.copy2(trap_copy / SEQ_69, trap_copy / "sequential/20220728233000-00-75.jpg")
    changed = trap_copy / PANAMA_1
    with open(changed, "ab") as fh:
        fh.write(b"\x00" * 100)  # new size (still a complete JPEG)
    (trap_copy / VERMONT_MIDNIGHT).unlink()

    report = scan_folder(db, trap_copy)
    assert (report.added, report.changed, report.missing, report.unchanged) == (1, 1, 1, 12)
    after = image_by_path(db)

    gone = after[VERMONT_MIDNIGHT]
    assert gone.state == "missing" and gone.id == before[VERMONT_MIDNIGHT].id
    assert results_of(db, gone.id) == ("done", 2, 1)  # results kept
    assert gone.night_id is not None  # still counted in its night, as missing

    redo = after[PANAMA_1]
    assert redo.size == changed.stat().st_size and redo.state == "ok"
    assert results_of(db, redo.id) == ("pending", 0, 0)  # queued again, old results gone

    for rel, img in after.items():
        if rel not in (VERMONT_MIDNIGHT, PANAMA_1, "sequential/20220728233000-00-75.jpg"):
            assert results_of(db, img.id) == ("done", 2, 1), rel
    new = after["sequential/20220728233000-00-75.jpg"]
    assert new.state == "ok" and results_of(db, new.id) == (None, 0, 0)
    assert jobqueue.counts(db, pid) == {"pending": 1, "claimed": 0, "done": 13, "failed": 0}

    # and once more: nothing left to do, nothing written
    snap = snapshot(db)
    again = scan_folder(db, trap_copy)
    assert not again.wrote_anything and again.unchanged == 14 and snapshot(db) == snap


def test_missing_file_that_comes_back_keeps_its_results(db, trap_copy, tmp_path):
    scan_folder(db, trap_copy)
    process_everything(db)
    parked = tmp_path / "parked.jpg"
    shutil.move(trap_copy / SEQ_69, parked)  # card removed, file elsewhere for a while
    assert scan_folder(db, trap_copy).missing == 1
    shutil.move(parked, trap_copy / SEQ_69)  # same bytes, same mtime
    report = scan_folder(db, trap_copy)
    assert (report.returned, report.changed, report.missing) == (1, 0, 0)
    img = image_by_path(db)[SEQ_69]
    assert img.state == "ok" and results_of(db, img.id) == ("done", 2, 1)


def test_file_that_became_unreadable(db, trap_copy):
    scan_folder(db, trap_copy)
    process_everything(db)
    path = trap_copy / SEQ_69
    path.write_bytes(path.read_bytes()[:3000])  # the card was pulled mid-copy
    report = scan_folder(db, trap_copy)
    assert report.changed == 1 and report.unreadable == 1
    assert report.new_problems[0][0] == SEQ_69
    img = image_by_path(db)[SEQ_69]
    assert img.state == "unreadable" and img.error.startswith("truncated or corrupt")
    assert results_of(db, img.id) == ("pending", 0, 0)


def test_changed_capture_time_moves_the_image_and_updates_nights(db, tmp_path):
    trap = tmp_path / "trap"
    make_jpeg(trap / "a.jpg", original="2022:06:22 21:00:00")
    make_jpeg(trap / "b.jpg", original="2022:06:23 02:00:00")
    make_jpeg(trap / "c.jpg", original="2022:06:25 22:00:00")
    scan_folder(db, trap)
    make_jpeg(trap / "c.jpg", original="2022:06:23 03:00:00", size=(80, 60))
    os.utime(trap / "c.jpg", (1, 1_700_000_000))
    report = scan_folder(db, trap)
    assert report.changed == 1 and report.nights == 1
    with db.session() as s:
        nights = [(n.date, n.start, n.end) for n in s.scalars(select(Night))]
    # the night of 25 June lost its only image and is gone; 22 June now ends at 03:00
    assert nights == [(dt.date(2022, 6, 22), dt.datetime(2022, 6, 22, 21),
                       dt.datetime(2022, 6, 23, 3))]
    assert image_by_path(db)["c.jpg"].width == 80


def test_new_cutoff_hour_regroups_nights(db, trap_copy):
    """A scan keeps a catalogued trap's hour (new images are cut at it too); the regroup job
    moves the trap to another hour and back."""
    from trapgui.core.jobs import run_job
    from trapgui.pipeline.night_regroup import regroup_job

    vermont = trap_copy / "vermont"
    scan_folder(db, vermont, cutoff_hour=12)

    def nights():
        with db.session() as s:
            return sorted((d.isoformat(), n) for d, n in s.execute(
                select(Night.date, func.count(Image.id)).join(Image, Image.night_id == Night.id)
                .group_by(Night.id)))

    assert nights() == [("2022-06-21", 1), ("2022-06-22", 2)]
    report = scan_folder(db, vermont, cutoff_hour=0)
    assert report.cutoff_hour == 12 and nights() == [("2022-06-21", 1), ("2022-06-22", 2)]
    summary = run_job(regroup_job(db, 0))  # calendar days
    assert summary.describe() == ("Nights now start at 00:00: 1 trap regrouped, 2 nights → 2; "
                                  "results kept; individuals counted again.")
    assert nights() == [("2022-06-22", 2), ("2022-06-23", 1)]
    with db.session() as s:
        assert s.execute(select(Deployment.night_cutoff_hour)).scalar() == 0
    assert scan_folder(db, vermont, cutoff_hour=0).nights == 2
    run_job(regroup_job(db, 12))
    assert nights() == [("2022-06-21", 1), ("2022-06-22", 2)]
    assert run_job(regroup_job(db, 12)).describe() == "Nights start at 12:00 in every trap."


def test_cancelled_scan_keeps_finished_chunks_and_marks_nothing_missing(db, tmp_path,
                                                                          monkeypatch):
    monkeypatch.setattr(indexer, "CHUNK", 100)
    trap = tmp_path / "trap"
    for i in range(300):
        make_jpeg(trap / f"20220622{20 + i // 60:02d}{i % 60:02d}00.jpg")
    make_jpeg(trap / "old" / "20220622235900.jpg")
    make_jpeg(tmp_path / "elsewhere" / "20220622235900.jpg")
    scan_folder(db, tmp_path / "elsewhere")  # unrelated trap, to check nothing else is touched
    first = scan_folder(db, trap, cancel=lambda: False)
    assert first.added == 301
    for i in range(150):  # half the files vanish, and new ones appear
        (trap / f"20220622{20 + i // 60:02d}{i % 60:02d}00.jpg").unlink()
    for i in range(300):
        make_jpeg(trap / "new" / f"20220623{i // 60:02d}{i % 60:02d}00.jpg")
    stop = threading.Event()

    def progress(phase, done, total):
        if phase == "saving":
            stop.set()  # the user presses Stop while the first chunk is saved

    report = scan_folder(db, trap, progress=progress, cancel=stop)
    assert report.cancelled and report.added == 100 and report.missing == 0
    states = [i.state for i in image_by_path(db).values()]
    assert states.count("missing") == 0
    finished = scan_folder(db, trap)
    assert not finished.cancelled
    assert (finished.added, finished.missing) == (200, 150)


def test_same_folder_through_another_spelling_is_the_same_trap(db, trap_copy, tmp_path):
    scan_folder(db, trap_copy / "panama")
    os.symlink(trap_copy / "panama", tmp_path / "link")
    report = scan_folder(db, str(tmp_path / "link") + "/")
    assert report.unchanged == 4 and report.added == 0
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Deployment)).scalar() == 1


@pytest.mark.parametrize("bad", [-1, 24])
def test_bad_cutoff_is_refused_before_anything_is_written(db, trap_copy, bad):
    with pytest.raises(ValueError):
        scan_folder(db, trap_copy, cutoff_hour=bad)
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Image)).scalar() == 0


def test_unreadable_file_fixed_without_changing_size_or_mtime(db, tmp_path):
    """Unreadable files are re-checked on every scan (permissions fixed, a backup restored
    with its original mtime...), and written only when the outcome changed."""
    trap = tmp_path / "trap"
    make_jpeg(trap / "20220622220000.jpg")
    good = make_jpeg(tmp_path / "good.jpg").read_bytes()
    bad = trap / "20220622220100.jpg"
    bad.write_bytes(b"x" * len(good))  # same size as the real photo, but garbage
    os.utime(bad, (1_650_000_000, 1_650_000_000))
    assert scan_folder(db, trap).unreadable == 1
    snap = snapshot(db)
    again = scan_folder(db, trap)  # still garbage: re-checked, same outcome, nothing written
    assert again.unchanged == 2 and not again.wrote_anything and snapshot(db) == snap
    bad.write_bytes(good)  # restored from a backup that keeps the original mtime
    os.utime(bad, (1_650_000_000, 1_650_000_000))
    report = scan_folder(db, trap)
    assert report.changed == 1 and report.unreadable == 0
    assert image_by_path(db)["20220622220100.jpg"].state == "ok"


def test_two_scans_of_the_same_new_folder_at_once(db, tmp_path):
    """Two `trapgui process` of one folder started together: the second scan writes the same
    deployment, nights and images while the first is between reading and saving. Both finish;
    every file and night is catalogued once."""
    trap = tmp_path / "trap"
    for i in range(3):
        make_jpeg(trap / f"2022062{2 + i}220000-{i}.jpg")
    other = []

    def progress(phase, done, total):
        if phase == indexer.PHASE_SAVING and not other:  # first scan is about to write
            other.append(scan_folder(db, trap, workers=1))

    first = scan_folder(db, trap, progress=progress, workers=1)
    assert other[0].added == 3 and first.added == 0 and first.found == 3
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Deployment)) == 1
        assert s.scalar(select(func.count()).select_from(Image)) == 3
        assert s.scalar(select(func.count()).select_from(Night)) == 3
        assert s.scalar(select(func.count()).where(Image.night_id.is_(None))) == 0
