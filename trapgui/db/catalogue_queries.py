"""Read-only questions about the catalogue: which traps, which nights, how far along.

Used by the CLI and by the GUI's services (one query per question, so both show the same
numbers); everything returns plain frozen
dataclasses (no ORM objects escape a session). Counts are aggregated in SQL, so the cost does
not grow with Python-side loops over images.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import Integer, and_, case, distinct, false, func, or_, select

from trapgui.core.file_names import from_stored, to_stored
from trapgui.core.types import ImageState, JobState, Rank
from trapgui.db.database import Database
from trapgui.db.export_queries import counted_detection_filters
from trapgui.db.tables import Deployment, Detection, Image, Job, Night, PipelineConfig


@dataclass(frozen=True, slots=True)
class DeploymentRow:
    id: int
    name: str
    path: str
    images: int  # on disk now (readable or not)
    unreadable: int
    missing: int
    nights: int
    last_scan_at: dt.datetime | None


@dataclass(frozen=True, slots=True)
class NightRow:
    """One night of one trap; ``night_id``/``date`` None is the trap's "undated" group.

    Every count says what it counted: ``detections`` are boxes scoring at least ``min_score``
    from pipeline ``pipeline_id`` (None: any pipeline); ``species`` are the distinct labels
    among them scoring at least ``min_label_score``. The CLI's ``nights`` table, the trap tree
    and the nights overview all show these rows. The image counts are a partition
    (``core.night_counts``): ``images = processed + failed + unreadable + waiting``."""

    deployment_id: int
    deployment_name: str
    deployment_path: str
    night_id: int | None
    date: dt.date | None
    start: dt.datetime | None
    end: dt.datetime | None
    images: int  # on disk now: processed + failed + unreadable + waiting
    unreadable: int  # on disk, not readable as an image (never processed)
    missing: int  # catalogued, no longer on disk (not in ``images``)
    processed: int  # readable, processed (a done job of the pipeline)
    detections: int
    failed: int = 0  # readable, its job failed (and none is done)
    species: int = 0
    waiting: int = 0  # readable, no finished job yet (queued, claimed or never queued)
    pipeline_id: int | None = None
    min_score: float = 0.0
    min_label_score: float = 0.0

    @property
    def undated(self) -> bool:
        return self.night_id is None

    @property
    def title(self) -> str:
        return "Undated images" if self.date is None else f"Night of {self.date:%a %d %b %Y}"


def _state_sums():
    missing = ImageState.MISSING.value
    return (
        func.sum(case((Image.state != missing, 1), else_=0)),
        func.sum(case((Image.state == ImageState.UNREADABLE.value, 1), else_=0)),
        func.sum(case((Image.state == missing, 1), else_=0)),
    )


def list_deployments(db: Database) -> list[DeploymentRow]:
    with db.session() as s:
        deps = s.execute(select(Deployment.id, Deployment.name, Deployment.path,
                                Deployment.last_scan_at).order_by(Deployment.name,
                                                                  Deployment.id)).all()
        counts = {r[0]: r[1:] for r in s.execute(
            select(Image.deployment_id, *_state_sums()).group_by(Image.deployment_id))}
        nights = dict(s.execute(select(Night.deployment_id, func.count())
                                .group_by(Night.deployment_id)).all())
    rows = []
    for dep_id, name, path, last_scan in deps:
        images, unreadable, missing = counts.get(dep_id, (0, 0, 0))
        rows.append(DeploymentRow(dep_id, name, path, int(images or 0), int(unreadable or 0),
                                  int(missing or 0), int(nights.get(dep_id, 0)), last_scan))
    return rows


def find_deployment(db: Database, folder: str | Path) -> DeploymentRow | None:
    """The catalogued trap whose folder is ``folder`` (compared after resolving links)."""
    wanted = to_stored(str(Path(folder).expanduser().resolve()))
    return next((d for d in list_deployments(db) if d.path == wanted), None)


def nights_table(db: Database, deployment_ids: Sequence[int] | None = None,
                 pipeline_id: int | None = None, *, min_score: float = 0.0,
                 min_label_score: float = 0.0, counted_only: bool = False) -> list[NightRow]:
    """Every night of the chosen traps (all when None), dated nights first, then "undated",
    with counts for ``pipeline_id`` (None: any pipeline) at the given thresholds: the one query
    behind every per-night count the app shows. ``images`` are the files on disk now (readable
    or not; ``missing`` apart), split into ``processed`` (readable, a done job of the
    pipeline), ``failed`` (readable, a failed job and no done one), ``unreadable`` and
    ``waiting`` (readable, no finished job); ``detections`` those scoring at least
    ``min_score`` and, with ``counted_only``, not of a fixture (the detections ``db.counts`` and the exports count)."""
    dep_filter = [] if deployment_ids is None else [Image.deployment_id.in_(list(deployment_ids))]
    group = (Image.deployment_id, Image.night_id)
    with db.session() as s:
        deps = {r[0]: (r[1], r[2]) for r in s.execute(
            select(Deployment.id, Deployment.name, Deployment.path))}
        nights = {r[0]: r[1:] for r in s.execute(
            select(Night.id, Night.date, Night.start, Night.end))}
        image_counts = image_partition(s, pipeline_id, dep_filter)
        labelled = case((and_(Detection.top_score >= min_label_score,
                              Detection.top_rank != Rank.BINARY.value), Detection.top_label))
        det = select(*group, func.count(Detection.id), func.count(distinct(labelled))).join(
            Detection, Detection.image_id == Image.id).where(*dep_filter)
        if counted_only:
            det = det.where(*counted_detection_filters(pipeline_id, min_score))
        else:
            det = det.where(Detection.score >= min_score)
            if pipeline_id is not None:
                det = det.where(Detection.pipeline_id == pipeline_id)
        detections = {(r[0], r[1]): (r[2], r[3]) for r in s.execute(det.group_by(*group))}
    rows = []
    for (dep_id, night_id), part in image_counts.items():
        images, unreadable, missing, done, failed, waiting, _ = part
        name, path = deps[dep_id]
        date, start, end = nights.get(night_id, (None, None, None))
        key = (dep_id, night_id)
        found, species = detections.get(key, (0, 0))
        rows.append(NightRow(dep_id, name, path, night_id, _as_date(date), _as_datetime(start),
                             _as_datetime(end), int(images or 0), int(unreadable or 0),
                             int(missing or 0), int(done or 0), int(found),
                             failed=int(failed or 0),
                             species=int(species), waiting=int(waiting or 0),
                             pipeline_id=pipeline_id,
                             min_score=min_score, min_label_score=min_label_score))
    rows.sort(key=lambda r: (r.deployment_name, r.deployment_id, r.date is None,
                             r.date or dt.date.min))
    return rows


def image_partition(session, pipeline_id: int | None,
                    where: Sequence = ()) -> dict[tuple[int, int | None], tuple[int, ...]]:
    """(trap, night) -> (images, unreadable, missing, processed, failed, waiting,
    missing_processed) of the
    images matching ``where``, for ``pipeline_id`` (None: any pipeline): the one definition
    of a night's image counts (``core.night_counts``), behind :func:`nights_table` and the
    exports' effort (``db.counts.night_effort``). ``images`` are the files on disk now
    (readable or not) = processed + failed + unreadable + waiting; ``missing`` (deleted since)
    are apart, and ``missing_processed`` are those of them that were processed (their results
    are kept: the night was sampled). An image with a done job is processed, one with only
    failed jobs failed, each counted once."""
    finished = (JobState.DONE.value, JobState.FAILED.value)
    outcome = select(Job.image_id,
                     func.max(case((Job.state == JobState.DONE.value, 1), else_=0))
                     .label("done")).where(Job.state.in_(finished))
    if pipeline_id is not None:
        outcome = outcome.where(Job.pipeline_id == pipeline_id)
    outcome = outcome.group_by(Job.image_id).subquery()
    readable = Image.state == ImageState.OK.value
    group = (Image.deployment_id, Image.night_id)
    rows = session.execute(
        select(*group, *_state_sums(),
               func.sum(case((and_(readable, outcome.c.done == 1), 1), else_=0)),
               func.sum(case((and_(readable, outcome.c.done == 0), 1), else_=0)),
               func.sum(case((and_(readable, outcome.c.image_id.is_(None)), 1), else_=0)),
               func.sum(case((and_(Image.state == ImageState.MISSING.value,
                                   outcome.c.done == 1), 1), else_=0)))
        .outerjoin(outcome, outcome.c.image_id == Image.id)
        .where(*where).group_by(*group)).all()
    return {(r[0], r[1]): tuple(int(v or 0) for v in r[2:]) for r in rows}


def hourly_detections(db: Database, night_ids: Sequence[int], pipeline_id: int,
                      min_score: float) -> list[tuple[int, int, int]]:
    """(night id, hour of the capture clock, detections scoring at least ``min_score``)."""
    if not night_ids:
        return []
    hour = func.cast(func.strftime("%H", Image.captured_at), Integer)
    stmt = (select(Image.night_id, hour, func.count()).select_from(Detection)
            .join(Image, Image.id == Detection.image_id)
            .where(Image.night_id.in_([int(n) for n in night_ids]),
                   Detection.pipeline_id == pipeline_id, Detection.score >= min_score)
            .group_by(Image.night_id, hour))
    with db.session() as s:
        return [(int(n), int(h), int(c)) for n, h, c in s.execute(stmt) if h is not None]


def results_pipeline_id(db: Database, preferred_key: str | None = None) -> int | None:
    """The pipeline whose results the views and the CLI show: the one with ``preferred_key``
    (the current settings') if it exists, else the one that finished an image most recently."""
    with db.session() as s:
        if preferred_key:
            found = s.execute(select(PipelineConfig.id).where(
                PipelineConfig.key == preferred_key)).scalar()
            if found is not None:
                return found
        return s.execute(select(Job.pipeline_id).where(
            Job.state.in_((JobState.DONE.value, JobState.FAILED.value)))
            .order_by(Job.updated_at.desc()).limit(1)).scalar()


def pipeline_id_for_key(db: Database, key: str) -> int | None:
    with db.session() as s:
        return s.execute(select(PipelineConfig.id).where(PipelineConfig.key == key)).scalar()


def image_ids_for_files(db: Database, files: Sequence[str | Path]) -> tuple[list[int], list[str]]:
    """Catalogue ids of image files chosen by the user; returns (ids, files not found)."""
    with db.session() as s:
        deployments = s.execute(select(Deployment.id, Deployment.path)).all()
        found, missing = [], []
        for f in files:
            path = Path(f).resolve()
            hit = None
            for dep_id, dep_path in deployments:
                try:
                    rel = to_stored(path.relative_to(Path(from_stored(dep_path))).as_posix())
                except ValueError:
                    continue
                hit = s.execute(select(Image.id).where(Image.deployment_id == dep_id,
                                                       Image.rel_path == rel)).scalar()
                if hit is not None:
                    break
            (found.append(hit) if hit is not None else missing.append(str(f)))
    return found, missing


def image_ids(db: Database, deployment_id: int | None = None,
              night_ids: Sequence[int] | None = None, include_undated: bool = False) -> list[int]:
    """Readable images of a trap, or of some of its nights (``night_ids`` None: all nights
    and the undated group; a list: those nights, plus the undated group if
    ``include_undated``): what a processing run covers."""
    query = select(Image.id).where(Image.state == "ok")
    if deployment_id is not None:
        query = query.where(Image.deployment_id == deployment_id)
    if night_ids is not None:
        chosen = [Image.night_id.in_([int(n) for n in night_ids])] if night_ids else []
        if include_undated:
            chosen.append(Image.night_id.is_(None))
        query = query.where(or_(*chosen) if chosen else false())
    with db.session() as s:
        return list(s.execute(query.order_by(Image.id)).scalars())


def _as_date(value) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value)[:10])


def _as_datetime(value) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))
