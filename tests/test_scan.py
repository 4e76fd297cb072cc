"""Scanning trap folders: the real shared images, capture-time sources, and everything a
camera, a card reader or a user can put in a folder that is not a clean image."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from PIL import Image as PILImage
from sqlalchemy import select

from trapgui.core.errors import UserInputError
from trapgui.db.catalogue_queries import nights_table
from trapgui.db.tables import Deployment, Image, Night
from trapgui.scan.indexer import scan_folder
from tests.image_files import make_jpeg



def rows(db, folder=None):
    with db.session() as s:
        q = select(Image, Night.date).outerjoin(Night, Night.id == Image.night_id)
        return {img.rel_path: (img, date) for img, date in s.execute(q).all()}


# --- the real trap images ------------------------------------------------------------------

EXPECTED_NIGHTS = {  # folder -> {evening date: images}, from shared/README.md and the EXIF
    "vermont": {"2022-06-21": 1, "2022-06-22": 2},
    "sequential": {"2022-07-28": 5},
    "panama": {"2023-11-10": 4},
    "DSLR": {"2022-07-19": 2},
}


def test_real_trap_folders_nights_and_counts(db, small_trap_images):
    for folder, expected in EXPECTED_NIGHTS.items():
        report = scan_folder(db, small_trap_images / folder)
        assert (report.found, report.added, report.unreadable, report.undated) == (
            sum(expected.values()), sum(expected.values()), 0, 0)
        assert report.nights == len(expected)
    table = nights_table(db)
    got: dict[str, dict[str, int]] = {}
    for row in table:
        got.setdefault(row.deployment_name, {})[row.date.isoformat()] = row.images
    assert got == EXPECTED_NIGHTS
    assert sum(r.images for r in table) == 14


def test_vermont_after_midnight_image_belongs_to_previous_evening(db, small_trap_images):
    scan_folder(db, small_trap_images / "vermont")
    found = rows(db)
    img, night = found["20220622000459-108-snapshot.jpg"]
    assert img.captured_at == dt.datetime(2022, 6, 22, 0, 4, 59)
    assert night == dt.date(2022, 6, 21)
    assert found["20220623043000-215-snapshot.jpg"][1] == dt.date(2022, 6, 22)
    with db.session() as s:
        spans = {n.date: (n.start, n.end) for n in s.scalars(select(Night))}
    assert spans[dt.date(2022, 6, 22)] == (dt.datetime(2022, 6, 22, 20, 4),
                                           dt.datetime(2022, 6, 23, 4, 30))


def test_real_images_sizes_and_exif_source(db, small_trap_images, shared_images):
    report = scan_folder(db, small_trap_images)  # the whole tree as one deployment
    assert report.found == 14 and report.nights == 5
    for rel, (img, _) in rows(db).items():
        assert img.state == "ok" and img.error is None
        assert img.time_source == "exif_datetime_original"
        assert max(img.width, img.height) == 1024  # the downscaled copies
    scan_folder(db, shared_images / "panama")  # the originals, read-only, 4K
    assert {img.width for img, _ in rows(db).values() if img.rel_path.startswith("01-")} == {4096}


def test_dslr_time_only_in_exif_datetime(db, tmp_path, small_trap_images):
    """The DSLR images carry no time in their names; with DateTimeOriginal stripped (as the
    README describes them) the time must come from EXIF DateTime, not the file's mtime."""
    src = small_trap_images / "DSLR" / "DSC_0390.JPG"
    dst = tmp_path / "dslr" / "DSC_0390.JPG"
    dst.parent.mkdir()
    with PILImage.open(src) as im:
        exif = im.getexif()
        exif.get_ifd(0x8769).pop(36867, None)
        exif.get_ifd(0x8769).pop(36868, None)
        im.save(dst, exif=exif, quality=90)
    os.utime(dst, (0, dt.datetime(2030, 1, 1).timestamp()))  # a misleading mtime
    scan_folder(db, dst.parent)
    img, night = rows(db)["DSC_0390.JPG"]
    assert img.time_source == "exif_datetime"
    assert img.captured_at == dt.datetime(2022, 7, 19, 14, 28, 16)
    assert night == dt.date(2022, 7, 19)


# --- capture-time sources --------------------------------------------------------------------

def test_time_sources_and_offsets(db, tmp_path):
    trap = tmp_path / "trap"
    make_jpeg(trap / "a.jpg", original="2022:06:22 23:10:00", offset_original="-04:00")
    make_jpeg(trap / "b.jpg", datetime="2022:06:23 01:00:00", offset="+02:00")
    PILImage.new("RGB", (40, 30)).save(trap / "2022-06-22_21-30-00.png")
    PILImage.new("RGB", (40, 30)).save(trap / "cam_20220623-030000.tif")
    PILImage.new("RGB", (40, 30)).save(trap / "plain.png")
    mtime = dt.datetime(2022, 6, 23, 2, 0).timestamp()
    os.utime(trap / "plain.png", (mtime, mtime))
    report = scan_folder(db, trap)
    assert (report.found, report.nights, report.undated) == (5, 1, 0)
    found = rows(db)
    a, b = found["a.jpg"][0], found["b.jpg"][0]
    assert (a.time_source, a.utc_offset_min) == ("exif_datetime_original", -240)
    assert (b.time_source, b.utc_offset_min) == ("exif_datetime", 120)
    assert found["2022-06-22_21-30-00.png"][0].time_source == "filename"
    assert found["cam_20220623-030000.tif"][0].time_source == "filename"
    plain = found["plain.png"][0]
    assert plain.time_source == "file_mtime" and "modification time" in plain.time_error
    assert {night for _, night in found.values()} == {dt.date(2022, 6, 22)}


def test_image_without_any_time_is_kept_undated(db, tmp_path):
    trap = tmp_path / "trap"
    make_jpeg(trap / "dated.jpg", original="2022:06:22 22:00:00")
    undated = make_jpeg(trap / "IMG_0001.jpg")
    os.utime(undated, (0, 0))  # mtime 1970-01-01: not a usable time
    report = scan_folder(db, trap)
    assert (report.found, report.undated, report.nights) == (2, 1, 1)
    img, night = rows(db)["IMG_0001.jpg"]
    assert night is None and img.night_id is None and img.state == "ok"
    assert img.time_source == "none" and "no capture time" in img.time_error
    table = nights_table(db)
    assert [(r.date, r.images) for r in table] == [(dt.date(2022, 6, 22), 1), (None, 1)]
    assert table[-1].undated


# --- files that are not clean images ---------------------------------------------------------

def test_unreadable_files_are_catalogued_and_the_scan_continues(db, tmp_path, small_trap_images):
    trap = tmp_path / "trap"
    make_jpeg(trap / "20220622220000-ok.jpg")
    (trap / "20220622220100-empty.jpg").write_bytes(b"")
    whole = (small_trap_images / "vermont" / "20220622200400-01-snapshot.jpg").read_bytes()
    (trap / "20220622220200-truncated.jpg").write_bytes(whole[: len(whole) // 2])
    (trap / "20220622220300-notes.jpg").write_text("this is a text file, not a photo\n")
    (trap / "20220622220400-header-only.JPG").write_bytes(whole[:20])
    os.mkfifo(trap / "20220622220500-pipe.jpg")  # opening it would block: must not be opened
    os.symlink(trap / "gone.jpg", trap / "20220622220600-dangling.jpg")
    report = scan_folder(db, trap)
    assert report.found == 7 and report.added == 7 and report.unreadable == 6
    found = {rel: img for rel, (img, _) in rows(db).items()}
    reasons = {rel: img.error for rel, img in found.items()}
    assert reasons["20220622220000-ok.jpg"] is None
    assert reasons["20220622220100-empty.jpg"] == "empty file (0 bytes)"
    assert reasons["20220622220200-truncated.jpg"].startswith("truncated or corrupt")
    assert reasons["20220622220300-notes.jpg"].startswith("not an image")
    assert reasons["20220622220400-header-only.JPG"].startswith("truncated or corrupt")
    assert reasons["20220622220500-pipe.jpg"].startswith("not a regular file")
    assert reasons["20220622220600-dangling.jpg"].startswith("broken link")
    for rel, img in found.items():
        assert img.state == ("ok" if rel.endswith("-ok.jpg") else "unreadable")
        # still dated from the file name and grouped with its night: nothing is dropped
        assert img.time_source == "filename" and img.night_id is not None
    assert sorted(p for p, _ in report.new_problems) == sorted(
        r for r in found if not r.endswith("-ok.jpg"))


def test_harmless_data_after_the_end_marker_is_not_truncation(db, tmp_path):
    trap = tmp_path / "trap"
    make_jpeg(trap / "x.jpg", original="2022:06:22 22:00:00", trailer=b"\x00" * 5000 + b"MAKERDATA")
    scan_folder(db, trap)
    assert rows(db)["x.jpg"][0].state == "ok"


def test_weird_names_extensions_and_folders(db, tmp_path):
    trap = tmp_path / "trap"
    names = ["night one/20220622 220000 moth.jpg", "Ñandú_ÿ_蛾/20220622230000.JPEG",
             "deep/a/b/c/20220623010000.TIFF", "x.jpg/20220623020000.Png",
             "upper/20220623030000.JPG"]
    for name in names:
        path = trap / name
        path.parent.mkdir(parents=True, exist_ok=True)
        fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tiff": "TIFF", ".png": "PNG"}[path.suffix.lower()]
        PILImage.new("RGB", (20, 10)).save(path, fmt)
    (trap / "notes.txt").write_text("not an image extension: ignored")
    (trap / "readme.md").write_text("ignored")
    (trap / "._20220622220000.jpg").write_bytes(b"\x00\x05\x16\x07")  # macOS metadata
    (trap / ".Trashes").mkdir()
    PILImage.new("RGB", (20, 10)).save(trap / ".Trashes" / "20220622220000.jpg")
    report = scan_folder(db, trap)
    assert report.found == 5 and report.unreadable == 0 and report.skipped == 2
    found = rows(db)
    assert sorted(found) == sorted(names)  # POSIX relative paths, names intact
    assert all(img.time_source == "filename" for img, _ in found.values())
    assert {night for _, night in found.values()} == {dt.date(2022, 6, 22)}


def test_symlink_loop_does_not_hang(db, tmp_path):
    trap = tmp_path / "trap"
    make_jpeg(trap / "sub" / "20220622220000.jpg")
    os.symlink(trap, trap / "sub" / "loop")
    report = scan_folder(db, trap)
    assert report.found == 1


# --- permission denied, for real -------------------------------------------------------------

def _scan_as_nobody(trap: Path, db_path: Path) -> dict:
    """Fork; the child drops to user 'nobody' (when root) and scans; returns its report."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        code = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            from trapgui.db import open_database

            db = open_database(db_path)
            r = scan_folder(db, trap)
            db.close()
            payload = {"problems": r.new_problems, "folders": r.folder_errors, "found": r.found}
            os.write(write_end, json.dumps(payload).encode())
            code = 0
        except BaseException as exc:  # noqa: BLE001 - report anything to the parent
            os.write(write_end, json.dumps({"error": repr(exc)}).encode())
        finally:
            os._exit(code)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    result = json.loads(data.decode() or "{}")
    assert os.waitstatus_to_exitcode(status) == 0, result
    return result


def test_permission_denied(db, tmp_path):
    """chmod 000 does not stop root, and these tests run as root in CI: the scan then runs in a
    forked child that drops to user 'nobody', so open() and scandir() really fail with EACCES
    (a fork, not a new interpreter: the interpreter may live where 'nobody' cannot read)."""
    make_jpeg(tmp_path / "warm" / "20220622220000.jpg")
    scan_folder(db, tmp_path / "warm")  # every lazy import happens here, as the current user
    base = Path(tempfile.mkdtemp(prefix="trapgui-perm-", dir="/tmp"))
    try:
        os.chmod(base, 0o777)
        trap = base / "trap"
        make_jpeg(trap / "20220622220000-ok.jpg")
        locked = make_jpeg(trap / "20220622220100-locked.jpg")
        make_jpeg(trap / "closed" / "20220622220200.jpg")
        for p in (trap, trap / "20220622220000-ok.jpg"):
            os.chmod(p, 0o755 if p.is_dir() else 0o644)
        os.chmod(locked, 0o000)
        os.chmod(trap / "closed", 0o000)
        result = _scan_as_nobody(trap, base / "db.sqlite3")
        assert result["found"] == 2
        assert result["problems"] == [["20220622220100-locked.jpg", "permission denied"]]
        assert result["folders"] == [["closed", "permission denied"]]
    finally:
        os.chmod(trap / "closed", 0o755)
        shutil.rmtree(base)


# --- bad folders -------------------------------------------------------------------------------

def test_folder_without_images(db, tmp_path):
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("x")
    with pytest.raises(UserInputError, match="No images found in") as err:
        scan_folder(db, tmp_path / "empty")
    assert err.value.exit_code == 2
    with db.session() as s:
        assert s.scalars(select(Deployment)).all() == []  # no empty trap left behind


def test_nonexistent_folder(db, tmp_path):
    with pytest.raises(UserInputError, match="does not exist"):
        scan_folder(db, tmp_path / "no-such-folder")


def test_a_file_instead_of_a_folder(db, tmp_path):
    img = make_jpeg(tmp_path / "one.jpg")
    with pytest.raises(UserInputError, match="is a file, not a folder"):
        scan_folder(db, img)


def test_progress_reports_phases(db, tmp_path):
    trap = tmp_path / "trap"
    for i in range(250):
        make_jpeg(trap / f"20220622{i // 60 + 20:02d}{i % 60:02d}00.jpg")
    seen = []
    scan_folder(db, trap, progress=lambda phase, done, total: seen.append((phase, done, total)))
    assert seen[0] == ("listing", 0, 0)
    assert ("reading", 250, 250) in seen and ("saving", 250, 250) in seen
    reads = [d for p, d, _ in seen if p == "reading"]
    assert reads == sorted(reads)


def test_header_reads_in_worker_processes_match_in_process(db, tmp_path, small_trap_images,
                                                          monkeypatch):
    import trapgui.scan.probe_pool as pool

    trap = tmp_path / "trap"
    shutil.copytree(small_trap_images, trap)
    (trap / "20220622220100-empty.jpg").write_bytes(b"")
    monkeypatch.setattr(pool, "POOL_MIN_FILES", 1)
    monkeypatch.setattr(pool, "POOL_BATCH", 4)
    pooled = scan_folder(db, trap, workers=2)
    with db.session() as s:
        got = {i.rel_path: (i.width, i.captured_at, i.time_source, i.state, i.error, i.night_id)
               for i in s.scalars(select(Image))}
        s.execute(Image.__table__.delete())
        s.execute(Night.__table__.delete())
    single = scan_folder(db, trap, workers=1)
    with db.session() as s:
        want = {i.rel_path: (i.width, i.captured_at, i.time_source, i.state, i.error)
                for i in s.scalars(select(Image))}
    assert {k: v[:5] for k, v in got.items()} == want
    assert (pooled.added, pooled.unreadable, single.added) == (15, 1, 15)


def test_file_deleted_between_listing_and_reading(tmp_path):
    from trapgui.scan.files import discover, probe_file

    trap = tmp_path / "trap"
    make_jpeg(trap / "20220622220000.jpg")
    found = discover(trap).files[0]
    (trap / "20220622220000.jpg").unlink()  # the card was pulled
    probe = probe_file(found)
    assert probe.state == "unreadable" and probe.error == "the file disappeared during the scan"
    assert probe.time_source == "filename"
