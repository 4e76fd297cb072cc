"""Whether a catalogue's pages are sound, and when that must be checked again at open.

``PRAGMA quick_check`` reads every page of the file: on a 977 MB catalogue it took 2-11 s with
a warm page cache and 18-55 s with a cold one on 2 shared cores, depending on the load
(benchmarks/bench_quick_check.py), too long to pay before every `trapgui nights`. So it runs at
open only when the file is not exactly as trapgui left it after a good check:

- a clean close (the last connection closed, the write-ahead log checkpointed and removed)
  of a catalogue that was good when opened records the file's size, modification time and
  inode next to it (``<name>-checked``);
- at open the check is skipped only when that record matches and no write-ahead log with
  content is there. Anything else runs it: the file was changed by anything else or copied,
  the last run crashed or was killed (its log is still there), another process has it open
  (its log has content), or damage was met in use (the record is then removed).

Damage that changes neither size nor time (a failing disk) is still caught when a query meets
it: the clear message then, and ``--reset-db`` always checks before moving the file aside.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sqlite3
from pathlib import Path

log = logging.getLogger(__name__)

_MAX_PROBLEMS = 10


def record_path(path: Path) -> Path:
    return path.with_name(path.name + "-checked")


def quick_check(con: sqlite3.Connection) -> list[str]:
    """SQLite's ``quick_check`` on ``con``: the problems found (empty = sound)."""
    try:
        rows = con.execute(f"PRAGMA quick_check({_MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        text = str(exc)
        if "locked" in text or "busy" in text:
            raise
        return [text]  # damaged so badly that the check itself stops
    problems = []
    for row in rows:
        for line in str(row[0] if row else "").splitlines():
            line = line.strip()
            if line and line != "ok" and not line.startswith("***"):  # "*** in database main"
                problems.append(line)
    return problems


def _signature(path: Path) -> dict | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


def _log_has_content(path: Path) -> bool:
    try:
        return path.with_name(path.name + "-wal").stat().st_size > 0
    except OSError:
        return False


def record_matches(path: Path) -> bool:
    """True when the file is exactly as trapgui left it after a good check."""
    try:
        recorded = json.loads(record_path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if not isinstance(recorded, dict) or _log_has_content(path):
        return False
    now = _signature(path)
    return now is not None and all(recorded.get(k) == v for k, v in now.items())


def remember_if_closed_cleanly(path: Path) -> None:
    """After the last connection closed: record the file as good (nothing if a log remains,
    i.e. another process still has it open; that one records it when it closes)."""
    if path.with_name(path.name + "-wal").exists():
        return
    signature = _signature(path)
    if signature is None:
        return
    signature["checked_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    target = record_path(path)
    tmp = target.with_name(target.name + ".tmp")
    try:
        tmp.write_text(json.dumps(signature), encoding="utf-8")
        os.replace(tmp, target)
    except OSError as exc:  # a read-only folder: the next open simply checks again
        log.info("Cannot record the integrity check of %s: %s", path, exc)
        tmp.unlink(missing_ok=True)


def forget(path: Path) -> None:
    try:
        record_path(path).unlink(missing_ok=True)
    except OSError:
        pass
