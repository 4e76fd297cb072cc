"""A catalogue damaged inside its pages (its header intact) is found at open, reported as one
clear sentence everywhere (library, CLI, the GUI's services), is never written to, and
``--reset-db`` moves it aside. Opening waits for a busy catalogue instead of failing at once."""

from __future__ import annotations

import hashlib
import os
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
from sqlalchemy import event, func, insert, select
from sqlalchemy.pool import Pool

import trapgui.db.database as database_module
from trapgui.core.errors import DatabaseError
from trapgui.db import integrity, open_database
from trapgui.db.tables import Deployment, Image

PAGE = 4096


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _catalogue(path, images=4000):
    """A real catalogue with enough rows to span a few hundred pages, closed cleanly."""
    db = open_database(path)
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path="/traps/a", name="a").returning(
            Deployment.id)).scalar_one()
        s.execute(insert(Image), [{
            "deployment_id": dep, "rel_path": f"2024/06/{i:06d}-a-rather-long-snapshot-name.jpg",
            "size": 3_000_000 + i, "mtime": 1.7e9 + i, "time_source": "exif_datetime",
            "error": None} for i in range(images)])
    db.close()
    assert not path.with_name(path.name + "-wal").exists()  # checkpointed: one plain file
    return path


def _damage(path, keep_time=False):
    """Overwrite a run of pages in the second half of the file (the header, page 1 and the
    schema pages at the start stay intact)."""
    st = path.stat()
    pages = st.st_size // PAGE
    with open(path, "r+b") as fh:
        for page in range(pages * 6 // 10, pages * 6 // 10 + 12):
            fh.seek(page * PAGE)
            fh.write(bytes((page * 37 + i) % 251 for i in range(PAGE)))
    if keep_time:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    return _digest(path)


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def test_damaged_pages_are_found_at_open_and_the_file_is_never_written(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    before = _damage(_catalogue(path))
    header = path.read_bytes()[:16]
    assert header == b"SQLite format 3\x00"  # the header is fine: SQLite opens it happily
    for _ in range(3):
        with pytest.raises(DatabaseError) as err:
            open_database(path)
        text = str(err.value)
        assert "is damaged" in text and "was not changed" in text and "--reset-db" in text
        assert err.value.exit_code == 3
        assert _digest(path) == before
    assert not integrity.record_path(path).exists()


def test_reset_db_moves_a_damaged_catalogue_aside(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    damaged = _damage(_catalogue(path))
    db = open_database(path, move_aside_if_bad=True)
    try:
        moved = db.moved_aside_to
        assert moved.name.startswith("catalogue.sqlite3.bad-") and _digest(moved) == damaged
        with db.session() as s:
            assert s.execute(select(func.count()).select_from(Image)).scalar() == 0
    finally:
        db.close()


def test_damage_met_in_use_is_the_same_clear_error_and_reset_db_then_helps(tmp_path):
    """Damage that changes neither size nor time (a failing disk) is not looked for at open
    (the file is as trapgui left it after a check), but a query that meets it gets the clear
    error, not a raw SQLAlchemy one, and --reset-db (which always checks) can move it aside."""
    path = _catalogue(tmp_path / "catalogue.sqlite3")
    assert integrity.record_matches(path)
    damaged = _damage(path, keep_time=True)
    assert integrity.record_matches(path)  # size, time and inode as recorded
    db = open_database(path)  # opens: not checked
    try:
        with pytest.raises(DatabaseError) as err:
            with db.session() as s:
                s.execute(select(func.sum(func.length(Image.rel_path)))).scalar()
        assert "is damaged" in str(err.value) and "--reset-db" in str(err.value)
    finally:
        db.close()
    assert not integrity.record_path(path).exists()  # the next open checks again
    assert _digest(path) == damaged
    with pytest.raises(DatabaseError, match="is damaged"):
        open_database(path)
    db = open_database(path, move_aside_if_bad=True)
    assert _digest(db.moved_aside_to) == damaged
    db.close()


def test_the_check_is_skipped_only_for_a_file_as_trapgui_left_it(tmp_path, monkeypatch):
    path = _catalogue(tmp_path / "catalogue.sqlite3")
    runs = []
    real = integrity.quick_check
    monkeypatch.setattr(integrity, "quick_check", lambda con: runs.append(1) or real(con))

    open_database(path).close()
    assert runs == []  # clean close recorded, nothing changed since
    os.utime(path, (1_700_000_000, 1_700_000_000))  # changed by something else
    open_database(path).close()
    assert runs == [1]
    open_database(path).close()
    assert runs == [1]  # recorded again by the clean close
    # another process has it open and has written (its write-ahead log has content): check
    other = sqlite3.connect(path)
    other.execute("INSERT INTO deployments (path, name, created_at, kind, night_cutoff_hour) "
                  "VALUES ('/b', 'b', '2024-01-01 00:00:00', 'local', 12)")
    other.commit()
    try:
        db = open_database(path)
        assert runs == [1, 1]
        db.close()
        assert not integrity.record_matches(path)  # not the last to close: records nothing
    finally:
        other.close()
    open_database(path, integrity_check="always").close()
    assert runs == [1, 1, 1]


def test_unclean_shutdown_makes_the_next_open_check(tmp_path):
    """A process killed while the catalogue is open leaves its write-ahead log behind."""
    path = _catalogue(tmp_path / "catalogue.sqlite3")
    code = ("import os, sys\n"
            "from sqlalchemy import update\n"
            "from trapgui.db import open_database\n"
            "from trapgui.db.tables import Image\n"
            "db = open_database(sys.argv[1])\n"
            "with db.write_session() as s:\n"
            "    s.execute(update(Image).values(size=1))\n"
            "os._exit(9)\n")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr
    assert path.with_name(path.name + "-wal").stat().st_size > 0
    assert not integrity.record_matches(path)
    db = open_database(path)  # checked, sound, opens
    with db.session() as s:
        assert s.execute(select(func.max(Image.size))).scalar() == 1
    db.close()
    assert integrity.record_matches(path)


def _cli(*args, env_db):
    return subprocess.run([sys.executable, "-m", "trapgui", "--db", str(env_db), *args],
                          capture_output=True, text=True, timeout=180)


def test_cli_commands_on_a_damaged_catalogue_say_so_in_one_sentence(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    damaged = _damage(_catalogue(path))
    trap = tmp_path / "trap"
    trap.mkdir()
    from tests.image_files import make_jpeg

    make_jpeg(trap / "20220622220000.jpg")
    for args in (["nights"], ["scan", str(trap)],
                 ["export", "detections", "--out", str(tmp_path / "x.csv")]):
        done = _cli(*args, env_db=path)
        assert done.returncode == 3, (args, done.stderr)
        assert "Traceback" not in done.stderr and "sqlalchemy" not in done.stderr.lower()
        assert done.stderr.startswith("trapgui: error: The database ") and "damaged" in \
            done.stderr, done.stderr
        assert _digest(path) == damaged
    done = _cli("--reset-db", "nights", env_db=path)
    assert done.returncode == 0, done.stderr
    assert "moved aside" in done.stderr
    moved = next(p for p in tmp_path.iterdir() if p.name.startswith("catalogue.sqlite3.bad-")
                 and not p.name.endswith(("-wal", "-shm")))
    assert _digest(moved) == damaged


def test_cli_maps_damage_met_during_a_command(tmp_path):
    """Damage the open does not look for (size and time kept) still ends in the sentence."""
    path = _catalogue(tmp_path / "catalogue.sqlite3")
    _damage(path, keep_time=True)
    assert integrity.record_matches(path)
    done = _cli("nights", env_db=path)
    assert done.returncode == 3, done.stderr
    assert "Traceback" not in done.stderr and "damaged" in done.stderr
    assert not integrity.record_path(path).exists()  # the next open checks it
    done = _cli("nights", env_db=path)
    assert done.returncode == 3 and "damaged" in done.stderr


def test_services_db_reports_damage_as_a_database_error(tmp_path):
    from trapgui.services.app_services import Services

    path = tmp_path / "catalogue.sqlite3"
    _damage(_catalogue(path))
    services = Services.create(db_path=str(path))
    try:
        with pytest.raises(DatabaseError, match="is damaged"):
            services.db  # noqa: B018 - the property opens the catalogue
    finally:
        services.close()
    _damage(_catalogue(tmp_path / "b.sqlite3"), keep_time=True)
    services = Services.create(db_path=str(tmp_path / "b.sqlite3"))
    try:
        with pytest.raises(DatabaseError, match="is damaged"):
            services.catalogue.tree()
    finally:
        services.close()


# --- opening while another process is busy with the catalogue ---------------------------------

def test_the_switch_to_wal_waits_for_another_writer(tmp_path, monkeypatch):
    """The flaky 'locked by another program (database is locked)' exit: a new catalogue is
    switched to WAL after it is created, and SQLite fails that switch at once, whatever the
    busy timeout, while another connection holds the write lock (in the kill tests: the test
    process polling the catalogue the child is creating). Here another connection takes the
    write lock at exactly that moment and holds it for a second; opening must wait for it."""
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 20_000)
    path = tmp_path / "new.sqlite3"
    holder = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    holder.execute("PRAGMA busy_timeout=20000")
    grabbed = threading.Event()
    released = []

    def release_later():
        time.sleep(1.0)
        holder.execute("COMMIT")
        released.append(time.monotonic())

    def on_checkin(dbapi_conn, record):
        # the creating transaction has just committed and its connection is back in the pool
        if not grabbed.is_set():
            grabbed.set()
            holder.execute("BEGIN IMMEDIATE")
            threading.Thread(target=release_later, daemon=True).start()

    event.listen(Pool, "checkin", on_checkin)
    try:
        db = open_database(path)
    finally:
        event.remove(Pool, "checkin", on_checkin)
    try:
        assert grabbed.is_set() and released, "the lock was not taken in between"
        with db.session() as s:
            assert s.connection().exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
    finally:
        db.close()
        holder.close()


def test_opening_an_existing_catalogue_does_not_wait_for_a_long_writer(tmp_path, monkeypatch):
    """Opening a current catalogue needs no write lock: another process's long write
    transaction (a scan chunk, a migration) does not make it wait or fail."""
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 200)
    path = _catalogue(tmp_path / "catalogue.sqlite3", images=10)
    writer = sqlite3.connect(path, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")
    writer.execute("UPDATE images SET size = 5")
    try:
        t = time.monotonic()
        db = open_database(path)
        with db.session() as s:
            assert s.execute(select(func.max(Image.size))).scalar() != 5  # its snapshot
        db.close()
        assert time.monotonic() - t < 30
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_processes_polling_a_catalogue_while_another_creates_it(tmp_path):
    """What the kill tests do: the parent opens the catalogue over and over while a child
    creates it. Repeated with fresh files; no open may fail."""
    code = ("import sys; from trapgui.db import open_database; "
            "open_database(sys.argv[1]).close(); print('ok')")
    for round_ in range(6):
        path = tmp_path / f"new-{round_}.sqlite3"
        child = subprocess.Popen([sys.executable, "-c", code, str(path)],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        failures = []
        while child.poll() is None:
            if path.exists():
                try:
                    open_database(path).close()
                except DatabaseError as exc:
                    failures.append(str(exc))
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err[-800:]
        assert failures == []
