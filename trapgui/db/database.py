"""Opening the catalogue: the one place sessions are made, plus schema versioning.

Opening never destroys data: a file that is not a trapgui database, is corrupt, has a newer
schema or is locked raises :class:`DatabaseError` with a message the user can act on. Moving a
bad file aside (renamed with a timestamp, never deleted) happens only when asked.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DatabaseError as SADatabaseError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from trapgui.core.errors import DatabaseError
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

    @staticmethod
    @contextmanager
    def _scope(factory) -> Iterator[Session]:
        session = factory()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def schema_version(self) -> int:
        with self.session() as s:
            return s.execute(select(SchemaInfo.version)).scalar_one()

    def close(self) -> None:
        self.engine.dispose()


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
    return target


def open_database(path: str | Path, *, move_aside_if_bad: bool = False) -> Database:
    """Open (creating if needed) and migrate the catalogue at ``path``."""
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
        return _open(path)
    except DatabaseError as exc:
        if not (move_aside_if_bad and getattr(exc, "movable", False)):
            raise
        moved = move_aside(path)
        db = _open(path)
        db.moved_aside_to = moved  # type: ignore[attr-defined]
        return db


def _bad_file(path: Path, why: str) -> DatabaseError:
    err = DatabaseError(
        f"The database {path} cannot be opened: {why}.",
        hint="Your file was not changed. Start with --reset-db to move it aside (it is renamed "
        "with a timestamp, not deleted) and begin a new catalogue, or choose another database.",
    )
    err.movable = True  # type: ignore[attr-defined]
    return err


def _open(path: Path) -> Database:
    engine = _make_engine(path)
    try:
        # IMMEDIATE: this transaction may create or migrate the schema; a deferred one that
        # reads first and then writes fails at once ("database is locked", no waiting) when
        # another process opens the same new file at the same moment.
        with engine.execution_options(sqlite_immediate=True).begin() as conn:
            conn.exec_driver_sql("SELECT count(*) FROM sqlite_master").scalar()
            tables = {r[0] for r in conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE type='table'")}
            if not tables:
                Base.metadata.create_all(conn)
                conn.execute(SchemaInfo.__table__.insert().values(
                    id=1, version=LATEST_VERSION, app="trapgui",
                    created_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))
            elif "schema_info" not in tables:
                engine.dispose()
                raise _bad_file(path, "it is an SQLite file but not a trapgui catalogue")
            else:
                version = conn.exec_driver_sql("SELECT version FROM schema_info").scalar()
                if version is None:
                    engine.dispose()
                    raise _bad_file(path, "its schema version is missing")
                if version > LATEST_VERSION:
                    engine.dispose()
                    raise DatabaseError(
                        f"The database {path} was written by a newer trapgui (schema "
                        f"{version}, this version knows up to {LATEST_VERSION}).",
                        hint="Update trapgui, or choose another database.",
                    )
                for target, migrate in MIGRATIONS:
                    if target > version:
                        migrate(conn)
                        conn.exec_driver_sql(
                            "UPDATE schema_info SET version = ?", (target,))
    except DatabaseError:
        raise
    except OperationalError as exc:
        engine.dispose()
        msg = str(exc.orig) if exc.orig else str(exc)
        if "locked" in msg or "busy" in msg:
            raise DatabaseError(
                f"The database {path} is locked by another program.",
                hint="Close other trapgui windows or workers using it, then try again.",
            ) from exc
        if "unable to open" in msg or "readonly" in msg or "read-only" in msg:
            raise DatabaseError(
                f"The database {path} cannot be opened for writing: {msg}.",
                hint="Check the file's permissions, or choose another database location.",
            ) from exc
        raise _bad_file(path, msg) from exc
    except SADatabaseError as exc:
        engine.dispose()
        msg = str(exc.orig) if exc.orig else str(exc)
        raise _bad_file(path, msg) from exc
    _use_wal(engine)
    return Database(path, engine)


def _use_wal(engine: Engine) -> None:
    # outside any transaction (SQLite refuses to switch journal mode inside one)
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        engine.dispose()
        raise DatabaseError(
            f"The database {engine.url.database} is locked by another program ({exc}).",
            hint="Close other trapgui windows or workers using it, then try again.",
        ) from exc
    finally:
        raw.close()
