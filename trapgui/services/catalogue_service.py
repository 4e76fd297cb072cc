"""Traps, nights and their counts for the GUI's tree and overview; scanning trap folders.

All methods block (SQLite queries, file system walks): the GUI calls them from a background
thread. Results are plain dataclasses, never ORM objects.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import text

from trapgui.core.errors import UserInputError
from trapgui.core.file_names import from_stored, to_stored
from trapgui.db import catalogue_queries


@dataclass(frozen=True, slots=True)
class NightSummary:
    id: int | None  # None = the "undated" group of a deployment
    deployment_id: int
    date: dt.date | None
    start: dt.datetime | None
    end: dt.datetime | None
    images: int = 0
    processed: int = 0  # images whose job is done (successfully or not)
    failed: int = 0
    unreadable: int = 0
    detections: int = 0  # above the detection threshold
    species: int = 0  # distinct labels above both thresholds

    @property
    def title(self) -> str:
        if self.date is None:
            return "Undated images"
        return f"Night of {self.date:%a %d %b %Y}"


@dataclass(frozen=True, slots=True)
class DeploymentSummary:
    id: int
    name: str
    path: str
    nights: tuple[NightSummary, ...] = field(default_factory=tuple)

    def total(self, attr: str) -> int:
        return sum(getattr(n, attr) for n in self.nights)

    @property
    def night_ids(self) -> list[int]:
        return [n.id for n in self.nights if n.id is not None]


_NIGHT_COUNTS = """
SELECT i.deployment_id, i.night_id,
       COUNT(*) AS images,
       SUM(CASE WHEN j.state IN ('done', 'failed') THEN 1 ELSE 0 END) AS processed,
       SUM(CASE WHEN j.state = 'failed' THEN 1 ELSE 0 END) AS failed,
       SUM(CASE WHEN i.state = 'unreadable' THEN 1 ELSE 0 END) AS unreadable
FROM images i
LEFT JOIN jobs j ON j.image_id = i.id AND j.pipeline_id = :pipeline
GROUP BY i.deployment_id, i.night_id
"""

_NIGHT_RESULTS = """
SELECT i.deployment_id, i.night_id,
       COUNT(*) AS detections,
       COUNT(DISTINCT CASE WHEN d.top_score >= :cls AND d.top_rank != 'binary'
                           THEN d.top_label END) AS species
FROM detections d JOIN images i ON i.id = d.image_id
WHERE d.pipeline_id = :pipeline AND d.score >= :det
GROUP BY i.deployment_id, i.night_id
"""


class CatalogueService:
    def __init__(self, services):
        self._services = services

    @property
    def _db(self):
        return self._services.db

    # ---- reading ------------------------------------------------------------------------
    def current_pipeline_id(self) -> int | None:
        """The pipeline whose results the views show: the one the processing settings select
        if it exists, else the one used most recently."""
        try:
            wanted = self._services.processing.pipeline_key_for_settings()
        except Exception:  # noqa: BLE001 - processing unavailable: fall back to latest
            wanted = None
        with self._db.session() as s:
            if wanted:
                row = s.execute(text("SELECT id FROM pipeline_configs WHERE key = :k"),
                                {"k": wanted}).first()
                if row:
                    return row[0]
            row = s.execute(text(
                "SELECT pipeline_id FROM jobs WHERE state IN ('done','failed') "
                "ORDER BY updated_at DESC LIMIT 1")).first()
            return row[0] if row else None

    def tree(self, pipeline_id: int | None = None) -> list[DeploymentSummary]:
        """Every trap with its nights and counts (one grouped query per kind of count)."""
        settings = self._services.settings
        if pipeline_id is None:
            pipeline_id = self.current_pipeline_id()
        pid = -1 if pipeline_id is None else pipeline_id
        with self._db.session() as s:
            deployments = s.execute(text(
                "SELECT id, name, path FROM deployments ORDER BY name, id")).all()
            nights = s.execute(text(
                'SELECT id, deployment_id, date, start, "end" FROM nights ORDER BY date')).all()
            counts = {(r.deployment_id, r.night_id): r for r in
                      s.execute(text(_NIGHT_COUNTS), {"pipeline": pid})}
            results = {(r.deployment_id, r.night_id): r for r in s.execute(
                text(_NIGHT_RESULTS), {"pipeline": pid, "det": settings.detection_threshold,
                                       "cls": settings.classification_threshold})}
        by_dep: dict[int, list[NightSummary]] = {d.id: [] for d in deployments}
        keys = [(n.deployment_id, n.id, n) for n in nights]
        keys += [(dep, None, None) for (dep, night) in counts if night is None]
        for dep_id, night_id, night in keys:
            if dep_id not in by_dep:
                continue
            c = counts.get((dep_id, night_id))
            r = results.get((dep_id, night_id))
            by_dep[dep_id].append(NightSummary(
                id=night_id, deployment_id=dep_id,
                date=_as_date(night.date) if night else None,
                start=_as_datetime(night.start) if night else None,
                end=_as_datetime(night.end) if night else None,
                images=c.images if c else 0, processed=(c.processed or 0) if c else 0,
                failed=(c.failed or 0) if c else 0, unreadable=(c.unreadable or 0) if c else 0,
                detections=r.detections if r else 0, species=r.species if r else 0))
        return [DeploymentSummary(d.id, d.name, d.path, tuple(by_dep[d.id])) for d in deployments]

    def hourly_activity(self, night_ids: list[int], pipeline_id: int | None = None
                        ) -> dict[int, list[int]]:
        """Detections above threshold per hour of each night (24 bins from the cut-off hour),
        in one grouped query."""
        settings = self._services.settings
        if pipeline_id is None:
            pipeline_id = self.current_pipeline_id()
        result = {n: [0] * 24 for n in night_ids}
        if pipeline_id is None or not night_ids:
            return result
        ids = ",".join(str(int(n)) for n in night_ids)
        with self._db.session() as s:
            rows = s.execute(text(
                "SELECT i.night_id, CAST(strftime('%H', i.captured_at) AS INTEGER) AS h, "
                "COUNT(*) FROM detections d JOIN images i ON i.id = d.image_id "
                f"WHERE i.night_id IN ({ids}) AND d.pipeline_id = :p AND d.score >= :det "
                "GROUP BY i.night_id, h"), {"p": pipeline_id,
                                             "det": settings.detection_threshold}).all()
        for night_id, hour, count in rows:
            if hour is not None:
                result[night_id][(hour - settings.night_cutoff_hour) % 24] += count
        return result

    def image_ids(self, deployment_id: int | None = None, night_ids: list[int] | None = None,
                  include_undated: bool = False) -> list[int]:
        """Readable images of a trap or of some nights (what a processing run covers)."""
        return catalogue_queries.image_ids(self._db, deployment_id, night_ids, include_undated)

    def image_ids_for_files(self, files: list[str]) -> tuple[list[int], list[str]]:
        """Map image files chosen by the user to catalogue ids; returns (ids, not found)."""
        with self._db.session() as s:
            deployments = s.execute(text("SELECT id, path FROM deployments")).all()
            found, missing = [], []
            for f in files:
                path = Path(f).resolve()
                hit = None
                for dep_id, dep_path in deployments:
                    try:
                        rel = to_stored(path.relative_to(Path(from_stored(dep_path))).as_posix())
                    except ValueError:
                        continue
                    hit = s.execute(text("SELECT id FROM images WHERE deployment_id = :d AND "
                                         "rel_path = :r"), {"d": dep_id, "r": rel}).scalar()
                    if hit is not None:
                        break
                (found.append(hit) if hit is not None else missing.append(f))
        return found, missing

    def deployment_for_path(self, folder: str) -> int | None:
        with self._db.session() as s:
            return s.execute(text("SELECT id FROM deployments WHERE path = :p"),
                             {"p": to_stored(str(Path(folder).resolve()))}).scalar()

    # ---- folders ------------------------------------------------------------------------
    def recent_folders(self) -> list[str]:
        return list(self._services.settings.recent_folders)

    def add_recent_folder(self, folder: str) -> None:
        self._services.settings.add_recent_folder(str(folder))
        self._services.save_settings()

    def scan_folder(self, folder: str, progress: Callable | None = None,
                    cancel: Callable[[], bool] | None = None):
        """Index a trap folder (incremental) and remember it; returns the scanner's report."""
        path = Path(folder).expanduser()
        if not path.is_dir():
            raise UserInputError(f"{path} is not a folder.",
                                 hint="Drop or open the folder that holds the trap's images.")
        from trapgui.scan.indexer import scan_folder

        report = scan_folder(self._db, path.resolve(),
                             cutoff_hour=self._services.settings.night_cutoff_hour,
                             progress=progress, cancel=cancel)
        self.add_recent_folder(str(path.resolve()))
        return report


def _as_date(value) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _as_datetime(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))
