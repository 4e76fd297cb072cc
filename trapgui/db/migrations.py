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

MIGRATIONS: list[tuple[int, Migration]] = []

LATEST_VERSION = 1
