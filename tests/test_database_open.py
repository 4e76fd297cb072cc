"""A database that cannot be opened gives a clear message and is never changed or deleted."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

import trapgui.db.database as database_module
from trapgui.core.errors import DatabaseError
from trapgui.db import open_database
from trapgui.db.migrations import LATEST_VERSION


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


@pytest.fixture
def short_busy_timeout(monkeypatch):
    # the real timeout (30 s) waits for a busy writer; a held lock need not take that long here
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT_MS", 300)


def test_new_database_is_wal_with_foreign_keys(tmp_path):
    db = open_database(tmp_path / "sub" / "new.sqlite3")
    try:
        with db.session() as s:
            conn = s.connection()
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert db.schema_version() == LATEST_VERSION
    finally:
        db.close()
    reopened = open_database(tmp_path / "sub" / "new.sqlite3")
    assert reopened.schema_version() == LATEST_VERSION
    reopened.close()


def test_corrupt_file(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 40)
    before, names = _digest(path), _siblings(path)
    with pytest.raises(DatabaseError) as err:
        open_database(path)
    text = str(err.value)
    assert "cannot be opened" in text and "was not changed" in text and "--reset-db" in text
    assert err.value.exit_code == 3
    assert _digest(path) == before and _siblings(path) == names


def test_text_file(tmp_path):
    path = tmp_path / "notes.sqlite3"
    path.write_text("these are my field notes, not a database\n" * 50)
    before = _digest(path)
    with pytest.raises(DatabaseError, match="cannot be opened"):
        open_database(path)
    assert _digest(path) == before


def test_other_sqlite_file_is_left_byte_identical(tmp_path):
    path = tmp_path / "birds.sqlite3"
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE birds (name TEXT)")
    con.execute("INSERT INTO birds VALUES ('robin')")
    con.commit()
    con.close()
    before, names = _digest(path), _siblings(path)
    with pytest.raises(DatabaseError, match="not a trapgui catalogue"):
        open_database(path)
    # not even switched to WAL: no -wal/-shm files, same bytes
    assert _digest(path) == before and _siblings(path) == names


def test_newer_schema(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    open_database(path).close()
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_info SET version = ?", (LATEST_VERSION + 5,))
    con.commit()
    con.close()
    before = _digest(path)
    with pytest.raises(DatabaseError) as err:
        open_database(path, move_aside_if_bad=True)  # never moved: a newer app can read it
    assert "newer trapgui" in str(err.value) and "Update trapgui" in str(err.value)
    assert _digest(path) == before
    assert not list(tmp_path.glob("*.bad-*"))


def test_locked_database(tmp_path, short_busy_timeout):
    path = tmp_path / "catalogue.sqlite3"
    open_database(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("PRAGMA locking_mode=EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    holder.execute("INSERT INTO deployments (path, name, created_at, kind, night_cutoff_hour) "
                   "VALUES ('/x', 'x', '2024-01-01 00:00:00', 'local', 12)")
    try:
        with pytest.raises(DatabaseError) as err:
            open_database(path, move_aside_if_bad=True)
        assert "locked by another program" in str(err.value)
        assert not list(tmp_path.glob("*.bad-*"))  # a locked file is never moved aside
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    db = open_database(path)  # the lock is gone: opens normally, nothing was lost
    assert db.schema_version() == LATEST_VERSION
    db.close()


def test_move_aside_keeps_the_old_file(tmp_path):
    path = tmp_path / "catalogue.sqlite3"
    path.write_bytes(b"garbage" * 1000)
    before = _digest(path)
    db = open_database(path, move_aside_if_bad=True)
    try:
        moved = db.moved_aside_to
        assert moved.name.startswith("catalogue.sqlite3.bad-") and _digest(moved) == before
        assert db.schema_version() == LATEST_VERSION
    finally:
        db.close()


def test_path_is_a_folder(tmp_path):
    (tmp_path / "db.sqlite3").mkdir()
    with pytest.raises(DatabaseError, match="is a folder"):
        open_database(tmp_path / "db.sqlite3")


def test_parent_cannot_be_created(tmp_path):
    blocker = tmp_path / "afile"
    blocker.write_text("x")
    with pytest.raises(DatabaseError, match="Cannot create the folder"):
        open_database(blocker / "sub" / "catalogue.sqlite3")


def test_many_processes_opening_a_new_database_at_once_all_succeed(tmp_path):
    """A kill-and-restart test once failed here: two processes created the same new file and
    the loser's deferred read-then-write transaction got 'database is locked' at once."""
    import subprocess
    import sys

    path = tmp_path / "new.sqlite3"
    code = ("import sys; from trapgui.db import open_database; "
            "open_database(sys.argv[1]).close(); print('ok')")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outcomes = [p.communicate(timeout=120) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err[-500:] for _, err in outcomes]
    from trapgui.db import open_database

    db = open_database(path)
    assert db.schema_version() >= 1
    db.close()


def test_a_version_1_catalogue_migrates_to_the_latest_schema(tmp_path):
    """A catalogue written by trapgui 0.1.0 opens, gains every later table and column, and
    keeps its rows; the migrated schema matches a new catalogue's."""
    import sqlite3

    from trapgui.db.tables import Base

    old = tmp_path / "old.sqlite3"
    con = sqlite3.connect(old)
    con.executescript((Path(__file__).parent / "data" / "catalogue-v1.sql").read_text())
    con.execute("INSERT INTO deployments (id, path, name, created_at, kind, night_cutoff_hour) "
                "VALUES (1, '/traps/a', 'a', '2026-11-01 00:00:00', 'local', 12)")
    con.commit()
    con.close()
    db = open_database(old)
    try:
        assert db.schema_version() == LATEST_VERSION
        con = sqlite3.connect(old)
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert set(Base.metadata.tables) <= tables
        for name, table in Base.metadata.tables.items():
            have = {r[1] for r in con.execute(f"PRAGMA table_info({name})")}
            assert {c.name for c in table.columns} <= have, name
        assert con.execute("SELECT name FROM deployments").fetchall() == [("a",)]
        con.close()
    finally:
        db.close()


def _unindexed_foreign_keys(path) -> list[str]:
    """Foreign-key columns that lead no index: deleting a parent row scans the whole child
    table for each row deleted (SQLite does not index them itself)."""
    import sqlite3

    con = sqlite3.connect(path)
    try:
        missing = []
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            leading = {con.execute(f"PRAGMA index_info('{ix[1]}')").fetchone()[2]
                       for ix in con.execute(f"PRAGMA index_list('{table}')")}
            missing += [f"{table}.{fk[3]}" for fk in con.execute(
                f"PRAGMA foreign_key_list('{table}')") if fk[3] not in leading]
        return missing
    finally:
        con.close()


def test_every_foreign_key_leads_an_index_in_new_and_migrated_catalogues(tmp_path):
    import sqlite3

    db = open_database(tmp_path / "new.sqlite3")
    db.close()
    assert _unindexed_foreign_keys(tmp_path / "new.sqlite3") == []
    old = tmp_path / "old.sqlite3"
    con = sqlite3.connect(old)
    con.executescript((Path(__file__).parent / "data" / "catalogue-v1.sql").read_text())
    con.close()
    open_database(old).close()
    assert _unindexed_foreign_keys(old) == []
