"""Ordered schema migrations.

A new database is created from the current models and stamped ``LATEST_VERSION``. An older
one gets every migration whose target version is above its own, in order, inside the opening
transaction (so a failed migration leaves the file as it was). To change the schema: edit the
models, append ``(N, function)`` here and bump ``LATEST_VERSION`` to N.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.engine import Connection

Migration = Callable[[Connection], None]


def add_occurrences(conn: Connection) -> None:
    """Tracking: the occurrences table, and each detection's occurrence and embedding."""
    from trapgui.db.tables import Occurrence

    Occurrence.__table__.create(conn, checkfirst=True)
    columns = {r[1] for r in conn.exec_driver_sql("PRAGMA table_info(detections)")}
    if "occurrence_id" not in columns:
        conn.exec_driver_sql("ALTER TABLE detections ADD COLUMN occurrence_id INTEGER "
                             "REFERENCES occurrences(id) ON DELETE SET NULL")
        conn.exec_driver_sql("CREATE INDEX IF NOT EXISTS ix_detections_occurrence_id "
                             "ON detections (occurrence_id)")
    if "embedding" not in columns:
        conn.exec_driver_sql("ALTER TABLE detections ADD COLUMN embedding BLOB")


MIGRATIONS: list[tuple[int, Migration]] = [
    (2, add_occurrences),
]

LATEST_VERSION = 2
