"""What the export writers share: the request they run under, progress and cancel through the
job contract (``core.jobs``), what they return, and camera-local times made exact."""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from trapgui.core.errors import UserInputError
from trapgui.core.jobs import Emit, JobControl, LogLine, Progress, ignore
from trapgui.core.local_time import localize
from trapgui.db.database import Database
from trapgui.db.export_queries import (ExportScope, Thresholds, resolve_pipeline,
                                       untracked_detections)
from trapgui.db.trap_metadata import TrapRecord, list_traps


@dataclass(frozen=True)
class ExportResult:
    format: str
    path: Path  # the file or folder written
    rows: dict[str, int]  # what was written: {"media": 120, "observations": 340, ...}
    about_path: Path | None = None  # the sidecar, when the format has one
    notes: tuple[str, ...] = ()  # warnings the user should read (also in the about file)

    def summary(self) -> str:
        parts = ", ".join(f"{n:,} {what}" for what, n in self.rows.items())
        return f"Wrote {parts} to {self.path}"


@dataclass
class ExportRun:
    """One export in progress: the scope resolved to one pipeline, the traps, progress."""

    db: Database
    scope: ExportScope
    thresholds: Thresholds
    emit: Emit = ignore
    control: JobControl | None = None
    pipeline_id: int | None = None
    traps: dict[int, TrapRecord] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @classmethod
    def start(cls, db: Database, scope: ExportScope, thresholds: Thresholds,
              emit: Emit | None = None, control: JobControl | None = None) -> "ExportRun":
        run = cls(db, scope, thresholds, emit or ignore, control)
        run.pipeline_id = resolve_pipeline(db, scope)
        run.traps = {t.id: t for t in list_traps(db, scope.deployment_ids)}
        return run

    def progress(self, done: int, total: int | None, unit: str, message: str) -> None:
        self.emit(Progress(done=done, total=total, unit=unit, message=message))

    def check_cancel(self) -> None:
        if self.control is not None:
            if self.control.paused:
                self.control.wait_while_paused()
            self.control.raise_if_cancelled("The export was cancelled; nothing was written.")

    def note(self, text: str) -> None:
        self.notes.append(text)
        self.emit(LogLine("warning", text))

    def exact_time(self, dep_id: int, local: dt.datetime | None,
                   file_offset: int | None) -> dt.datetime | None:
        if local is None:
            return None
        trap = self.traps.get(dep_id)
        return localize(local, file_offset, trap.clock) if trap else None

    def warn_untracked(self) -> int:
        """Say so when detections at the threshold belong to no individual (tracking has not
        run on them): individual counts leave them out."""
        n = untracked_detections(self.db, self.scope, self.pipeline_id, self.thresholds.detection)
        if n:
            self.note(f"{n:,} detections at detection score {self.thresholds.detection} belong "
                      "to no individual yet (tracking has not run on them): individual counts "
                      "leave them out. Run tracking, then export again.")
        return n

    def require_results(self) -> None:
        if self.pipeline_id is None:
            raise UserInputError("Nothing to export: no image of the selection has been "
                                 "processed yet.", hint="Process the images first (`trapgui "
                                 "process`, or Start in the processing panel).")


def trap_hours(run: ExportRun, dep_id: int, start: dt.datetime | None,
               end: dt.datetime | None) -> float:
    """Hours from the first to the last image; exact across a daylight-saving change when the
    trap's clock is a time zone, else on the camera's clock."""
    if start is None or end is None:
        return 0.0
    a, b = run.exact_time(dep_id, start, None), run.exact_time(dep_id, end, None)
    if a is not None and b is not None:
        return (b - a).total_seconds() / 3600.0
    return (end - start).total_seconds() / 3600.0


_UNSAFE = re.compile(r'[\x00-\x1f<>:"/\\|?*]+')
_RESERVED = {"CON", "PRN", "AUX", "NUL", *(f"COM{i}" for i in range(1, 10)),
             *(f"LPT{i}" for i in range(1, 10))}


def safe_name(text: str, fallback: str = "unnamed", limit: int = 80) -> str:
    """A file or folder name that is valid on Windows, macOS and Linux."""
    t = unicodedata.normalize("NFC", text)
    t = _UNSAFE.sub("_", t).strip(" .")
    t = re.sub(r"\s+", " ", t)[:limit].strip(" .")
    if not t:
        t = fallback
    if t.split(".")[0].upper() in _RESERVED:
        t = "_" + t
    return t
