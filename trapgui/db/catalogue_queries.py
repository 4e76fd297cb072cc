"""Read-only questions about the catalogue: which traps, which nights, how far along.

Used by the CLI now and by the GUI's services later; everything returns plain frozen
dataclasses (no ORM objects escape a session). Counts are aggregated in SQL, so the cost does
not grow with Python-side loops over images.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import case, distinct, false, func, or_, select

from trapgui.core.file_names import to_stored
from trapgui.core.types import ImageState, JobState
from trapgui.db.database import Database
from trapgui.db.export_queries import counted_detection_filters
from trapgui.db.tables import Deployment, Detection, Image, Job, Night


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
    """One night of one trap; ``night_id``/``date`` None is the trap's "undated" group."""

    deployment_id: int
    deployment_name: str
    deployment_path: str
    night_id: int | None
    date: dt.date | None
    start: dt.datetime | None
    end: dt.datetime | None
    images: int  # on disk now (readable or not)
    unreadable: int
    missing: int
    processed: int  # images whose job is done (for the given pipeline, or any pipeline)
    detections: int  # of the pipeline (any pipeline when none is given), see nights_table
    failed: int = 0  # images whose job failed (the reason is stored with the job)

    @property
    def undated(self) -> bool:
        return self.night_id is None


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
                 pipeline_id: int | None = None, *, min_score: float | None = None,
                 counted_only: bool = False) -> list[NightRow]:
    """Every night of the chosen traps (all when None), dated nights first, then "undated".

    The one night-count query of the CLI and the views: ``images`` are the files on disk now
    (readable or not; ``missing`` ones apart), ``processed``/``failed`` the images whose job
    of the pipeline is done/failed, ``detections`` those scoring at least ``min_score`` and,
    with ``counted_only``, not of a fixture (the detections ``db.counts`` and the exports
    count; individuals come from ``db.counts.count_individuals``)."""
    dep_filter = [] if deployment_ids is None else [Image.deployment_id.in_(list(deployment_ids))]
    group = (Image.deployment_id, Image.night_id)
    with db.session() as s:
        deps = {r[0]: (r[1], r[2]) for r in s.execute(
            select(Deployment.id, Deployment.name, Deployment.path))}
        nights = {r[0]: r[1:] for r in s.execute(
            select(Night.id, Night.date, Night.start, Night.end))}
        image_counts = s.execute(select(*group, *_state_sums()).where(*dep_filter)
                                 .group_by(*group)).all()
        done = select(*group, func.count(distinct(Job.image_id))).join(
            Job, Job.image_id == Image.id).where(Job.state == JobState.DONE.value, *dep_filter)
        bad = select(*group, func.count(distinct(Job.image_id))).join(
            Job, Job.image_id == Image.id).where(Job.state == JobState.FAILED.value, *dep_filter)
        det = select(*group, func.count(Detection.id)).join(
            Detection, Detection.image_id == Image.id).where(*dep_filter)
        if pipeline_id is not None:
            done = done.where(Job.pipeline_id == pipeline_id)
            bad = bad.where(Job.pipeline_id == pipeline_id)
        if counted_only:
            det = det.where(*counted_detection_filters(pipeline_id, min_score))
        else:
            if pipeline_id is not None:
                det = det.where(Detection.pipeline_id == pipeline_id)
            if min_score is not None:
                det = det.where(Detection.score >= min_score)
        processed = {(r[0], r[1]): r[2] for r in s.execute(done.group_by(*group))}
        failed = {(r[0], r[1]): r[2] for r in s.execute(bad.group_by(*group))}
        detections = {(r[0], r[1]): r[2] for r in s.execute(det.group_by(*group))}
    rows = []
    for dep_id, night_id, images, unreadable, missing in image_counts:
        name, path = deps[dep_id]
        date, start, end = nights.get(night_id, (None, None, None))
        key = (dep_id, night_id)
        rows.append(NightRow(dep_id, name, path, night_id, date, start, end, int(images or 0),
                             int(unreadable or 0), int(missing or 0), int(processed.get(key, 0)),
                             int(detections.get(key, 0)), int(failed.get(key, 0))))
    rows.sort(key=lambda r: (r.deployment_name, r.deployment_id, r.date is None,
                             r.date or dt.date.min))
    return rows


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
