"""Opening the catalogue: the one place sessions are made, plus schema versioning.

Opening never destroys data: a file that is not a trapgui database, is damaged, has a newer
schema or is locked raises :class:`DatabaseError` with a message the user can act on. Moving a
bad file aside (renamed with a timestamp, never deleted) happens only when asked.

Damage inside the pages (the header is fine) is looked for at open with ``PRAGMA quick_check``
(see ``db.integrity`` for when), and met later it is the same clear error: sessions turn
SQLite's "malformed" / "not a database" errors, and locks held past the busy timeout, into
:class:`DatabaseError` (``user_error``), so no command dies with a raw traceback.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.orm import Session, sessionmaker

from trapgui.core.errors import DatabaseError
from trapgui.db import integrity
from trapgui.db.migrations import LATEST_VERSION, MIGRATIONS
from trapgui.db.tables import Base, SchemaInfo

BUSY_TIMEOUT_MS = 30_000


def _on_connect(dbapi_conn: sqlite3.Connection, _record) -> None:
    # pysqlite's own implicit BEGIN is deferred and cannot be made IMMEDIATE; switch it off and
    # emit BEGIN ourselves in _on_begin. Pragmas are per connection.
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # journal_mode=WAL is written into the file itself, so it is set in _open only once the
    # file is known to be a trapgui catalogue: a foreign SQLite file must stay byte-identical.
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def _on_begin(conn) -> None:
    # Writers take the write lock up front: a deferred transaction that reads and then writes
    # fails with SQLITE_BUSY (no waiting) if another process committed in between.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An open catalogue. Thread-safe: each ``session()`` is its own unit of work.

    SQLite allows one writer at a time; the engine funnels all result writes through one writer
    thread, readers (GUI queries) run concurrently thanks to WAL.
    """

    def __init__(self, path: Path, engine: Engine):
        self.path = path
        self.engine = engine
        # the file was checked (or was as trapgui left it after a check) when it was opened;
        # cleared when damage shows up in use. A clean close then records it (db.integrity).
        self.known_good = False
        self._sessions = sessionmaker(engine, expire_on_commit=False)
        self._write_sessions = sessionmaker(
            engine.execution_options(sqlite_immediate=True), expire_on_commit=False
        )
        self.write_lock = threading.Lock()  # serialises writers inside this process

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read (or small write) session: commit on success, roll back on error, close."""
        with self._scope(self._sessions) as session:
            yield session

    @contextmanager
    def write_session(self) -> Iterator[Session]:
        """A transaction that holds SQLite's write lock from its first statement
        (``BEGIN IMMEDIATE``): use it for claims and result writes."""
        with self.write_lock, self._scope(self._write_sessions) as session:
            yield session

    @contextmanager
    def _scope(self, factory) -> Iterator[Session]:
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            try:
                session.rollback()
            except Exception:  # noqa: BLE001 - a damaged file can fail the rollback too
                pass
            clear = user_error(exc, self.path) if isinstance(exc, SADatabaseError) else None
            if clear is not None:
                if getattr(clear, "movable", False):
                    self.distrust()
                raise clear from exc
            raise
        finally:
            session.close()

    def distrust(self) -> None:
        """Damage was met: the next open checks the file again (nothing is recorded at close)."""
        self.known_good = False
        integrity.forget(self.path)

    def schema_version(self) -> int:
        with self.session() as s:
            return s.execute(select(SchemaInfo.version)).scalar_one()

    def close(self) -> None:
        self.engine.dispose()
        if self.known_good:
            integrity.remember_if_closed_cleanly(self.path)


def _make_engine(path: Path) -> Engine:
    engine = create_engine(
        f"sqlite:///{path}",
        connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
    )
    event.listen(engine, "connect", _on_connect)
    event.listen(engine, "begin", _on_begin)
    return engine


def move_aside(path: Path) -> Path:
    """Rename a database (and its -wal/-shm files) out of the way; returns the new name."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.bad-{stamp}")
    path.rename(target)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            side.rename(target.with_name(target.name + suffix))
    integrity.forget(path)
    return target


def open_database(path: str | Path, *, move_aside_if_bad: bool = False,
                  integrity_check: str = "auto") -> Database:
    """Open (creating if needed) and migrate the catalogue at ``path``.

    ``integrity_check``: ``"auto"`` runs ``PRAGMA quick_check`` unless the file is exactly as
    trapgui left it after the last good check (``db.integrity``); ``"always"``; ``"never"``.
    With ``move_aside_if_bad`` (``--reset-db``) the check always runs, so a catalogue whose
    damage showed up only later can be moved aside too.
    """
    if integrity_check not in ("auto", "always", "never"):
        raise ValueError(f"integrity_check must be auto, always or never, not {integrity_check!r}")
    if move_aside_if_bad:
        integrity_check = "always"
    path = Path(path).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatabaseError(
            f"Cannot create the folder for the database {path.parent}: {exc.strerror or exc}.",
            hint="Choose another database location (Settings, --db or TRAPGUI_DB).",
        ) from exc
    if path.exists() and path.is_dir():
        raise DatabaseError(f"The database path {path} is a folder, not a file.")
    try:
        return _open(path, integrity_check)
    except DatabaseError as exc:
        if not (move_aside_if_bad and getattr(exc, "movable", False)):
            raise
        moved = move_aside(path)
        db = _open(path, "never")
        db.moved_aside_to = moved  # type: ignore[attr-defined]
        return db


def _open(path: Path, integrity_check: str) -> Database:
    # Everything that reads a file not yet known to be a sound trapgui catalogue runs on a
    # read-only connection: a foreign, damaged or newer file is never written to, not even by
    # the checkpoint SQLite runs when a connection closes.
    checked = False
    fresh = not (path.exists() and path.stat().st_size > 0)
    if not fresh:
        try:
            state = _inspect(path, integrity_check)
        except sqlite3.Error as exc:
            raise _error_for(path, str(exc)) from exc
        except OSError as exc:  # never movable: the file may be fine, just out of reach
            raise DatabaseError(f"The database {path} cannot be read: {exc.strerror or exc}.",
                                hint="Check the file's permissions, or choose another "
                                "database location.") from exc
        checked = state.checked
        if state.tables and state.version is not None and state.version >= LATEST_VERSION:
            needs_writing = False
        else:
            needs_writing = True
    else:
        needs_writing = True
    engine = _make_engine(path)
    try:
        if needs_writing:
            _create_or_migrate(engine, path)
        _use_wal(engine, path)
    except DatabaseError:
        engine.dispose()
        raise
    except (SADatabaseError, sqlite3.Error) as exc:
        engine.dispose()
        orig = getattr(exc, "orig", None)
        raise _error_for(path, str(orig or exc)) from exc
    db = Database(path, engine)
    db.known_good = fresh or checked or integrity_check == "auto"
    return db


class _State:
    __slots__ = ("tables", "version", "checked")

    def __init__(self, tables: set[str], version: int | None, checked: bool):
        self.tables, self.version, self.checked = tables, version, checked


def _inspect(path: Path, integrity_check: str) -> _State:
    """Read what the file is (read-only), and check it when the policy says so."""
    con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True,
                          timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                          check_same_thread=False)
    try:
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            return _State(tables, None, False)
        if "schema_info" not in tables:
            raise _bad_file(path, "it is an SQLite file but not a trapgui catalogue")
        row = con.execute("SELECT version FROM schema_info").fetchone()
        version = row[0] if row else None
        if version is None:
            raise _bad_file(path, "its schema version is missing")
        checked = False
        if integrity_check == "always" or (
                integrity_check == "auto" and not integrity.record_matches(path)):
            problems = integrity.quick_check(con)
            if problems:
                integrity.forget(path)
                raise damaged_error(path, problems[0] + (
                    ", and other problems" if len(problems) > 1 else ""))
            checked = True
        if version > LATEST_VERSION:
            raise DatabaseError(
                f"The database {path} was written by a newer trapgui (schema "
                f"{version}, this version knows up to {LATEST_VERSION}).",
                hint="Update trapgui, or choose another database.",
            )
        return _State(tables, version, checked)
    finally:
        con.close()


def _create_or_migrate(engine: Engine, path: Path) -> None:
    # IMMEDIATE: this transaction creates or migrates the schema. It re-reads under the write
    # lock, since another process may have created or migrated the file in the meantime.
    with engine.execution_options(sqlite_immediate=True).begin() as conn:
        tables = {r[0] for r in conn.exec_driver_sql(
            "SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            Base.metadata.create_all(conn)
            conn.execute(SchemaInfo.__table__.insert().values(
                id=1, version=LATEST_VERSION, app="trapgui",
                created_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
            return
        if "schema_info" not in tables:
            raise _bad_file(path, "it is an SQLite file but not a trapgui catalogue")
        version = conn.exec_driver_sql("SELECT version FROM schema_info").scalar()
        if version is None:
            raise _bad_file(path, "its schema version is missing")
        if version > LATEST_VERSION:
            raise DatabaseError(
                f"The database {path} was written by a newer trapgui (schema {version}, this "
                f"version knows up to {LATEST_VERSION}).",
                hint="Update trapgui, or choose another database.")
        for target, migrate in MIGRATIONS:
            if target > version:
                migrate(conn)
                conn.exec_driver_sql("UPDATE schema_info SET version = ?", (target,))


def _use_wal(engine: Engine, path: Path) -> None:
    """Switch a new catalogue to WAL (a no-op for one that already is), retrying while another
    process holds the write lock.

    SQLite's busy timeout does not cover this switch: it needs an exclusive lock taken while
    the connection already reads, and SQLite then reports "database is locked" at once rather
    than risk a deadlock. So two processes opening a new catalogue together (or one opening
    while another writes to it) failed at once, whatever the timeout: the cause of an
    occasional "locked by another program" exit in the kill-and-restart tests, where the test
    polls the catalogue while the child creates it."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    pause = 0.005
    while True:
        raw = engine.raw_connection()
        try:
            raw.driver_connection.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not _is_busy(str(exc)) or time.monotonic() + pause > deadline:
                raise
        finally:
            raw.close()
        time.sleep(pause)
        pause = min(pause * 2, 0.2)


def _is_busy(message: str) -> bool:
    return "locked" in message or "busy" in message


def _is_damage(message: str) -> bool:
    text = message.lower()
    return any(s in text for s in ("malformed", "disk image", "corrupt"))


def _is_not_a_database(message: str) -> bool:
    return "not a database" in message.lower()


_KEEP_HINT = ("Your file was not changed. Start with --reset-db to move it aside (it is renamed "
              "with a timestamp, not deleted) and begin a new catalogue, or choose another "
              "database.")


def _movable(message: str) -> DatabaseError:
    err = DatabaseError(message, hint=_KEEP_HINT)
    err.movable = True  # type: ignore[attr-defined]
    return err


def _bad_file(path: Path, why: str) -> DatabaseError:
    return _movable(f"The database {path} cannot be opened: {why}.")


def damaged_error(path: Path, detail: str) -> DatabaseError:
    """The clear message for a catalogue whose pages are damaged (found at open or later)."""
    detail = "; ".join(line.strip() for line in detail.splitlines() if line.strip())
    if len(detail) > 200:
        detail = detail[:197] + "..."
    return _movable(f"The database {path} is damaged and cannot be used ({detail}).")


def _error_for(path: Path, message: str) -> DatabaseError:
    """SQLite's message at open (or in use) as the sentence the user gets."""
    if _is_busy(message):
        return DatabaseError(
            f"The database {path} is locked by another program ({message}).",
            hint="Close other trapgui windows or workers using it, then try again.")
    if _is_damage(message):
        return damaged_error(path, message)
    if _is_not_a_database(message):
        return _bad_file(path, message)
    if "disk is full" in message or "database or disk is full" in message:
        return DatabaseError(f"The database {path} cannot be written: the disk is full.",
                             hint="Free some space on that disk, then try again.")
    if "unable to open" in message or "readonly" in message or "read-only" in message \
            or "disk I/O error" in message:
        return DatabaseError(
            f"The database {path} cannot be opened for writing: {message}.",
            hint="Check the file's permissions and the disk, or choose another database "
            "location.")
    return _bad_file(path, message)


def user_error(exc: BaseException, path: Path | str) -> DatabaseError | None:
    """The clear DatabaseError for an SQLAlchemy/sqlite3 error met while using the catalogue
    (damaged pages, locked for longer than the busy timeout, disk full, I/O error); None for
    anything else (a constraint, a programming error: those are not the file's fault)."""
    if isinstance(exc, DatabaseError):
        return exc
    if isinstance(exc, SADatabaseError):
        message = str(exc.orig) if exc.orig is not None else str(exc)
    elif isinstance(exc, sqlite3.DatabaseError):
        message = str(exc)
    else:
        return None
    if not (_is_busy(message) or _is_damage(message) or _is_not_a_database(message)
            or "disk is full" in message or "disk I/O error" in message):
        return None
    if _is_damage(message) or _is_not_a_database(message):
        integrity.forget(Path(path))
    return _error_for(Path(path), message)
