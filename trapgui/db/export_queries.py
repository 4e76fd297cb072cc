"""The selects behind the exports: which traps, nights, images, detections and occurrences an
export covers, streamed (``yield_per``) so memory stays flat however big the catalogue.

Every export names one model configuration (``pipeline``): images processed with two of them
have two sets of detections and occurrences, and adding both would count each insect twice.
:func:`resolve_pipeline` picks the only one in scope or asks the user to choose.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import and_, case, false, func, or_, select

from trapgui.core.errors import UserInputError
from trapgui.core.types import JobState
from trapgui.db import final_labels
from trapgui.db.database import Database
from trapgui.db.unclassified import CLASSIFY_BELOW_FLOOR, floors_of
from trapgui.db.tables import (
    Deployment,
    Detection,
    Image,
    Job,
    Night,
    Occurrence,
    PipelineConfig,
    ProcessingRun,
)

PARTITION = 2000


@dataclass(frozen=True)
class ExportScope:
    """What an export covers. None = everything (all traps, all nights)."""

    deployment_ids: tuple[int, ...] | None = None
    night_ids: tuple[int, ...] | None = None
    nights: tuple[dt.date, ...] | None = None  # evening dates (the CLI's --night)
    pipeline_id: int | None = None

    @classmethod
    def of(cls, deployment_ids: Sequence[int] | None = None,
           night_ids: Sequence[int] | None = None, nights: Sequence[dt.date] | None = None,
           pipeline_id: int | None = None) -> "ExportScope":
        return cls(tuple(deployment_ids) if deployment_ids else None,
                   tuple(night_ids) if night_ids else None,
                   tuple(nights) if nights else None, pipeline_id)

    def with_pipeline(self, pipeline_id: int | None) -> "ExportScope":
        return replace(self, pipeline_id=pipeline_id)

    def as_dict(self) -> dict:
        return {"trap_ids": list(self.deployment_ids) if self.deployment_ids else "all",
                "night_ids": list(self.night_ids) if self.night_ids else None,
                "nights": [d.isoformat() for d in self.nights] if self.nights else
                ("all" if not self.night_ids else None),
                "pipeline_id": self.pipeline_id}


@dataclass(frozen=True)
class Thresholds:
    """The two score thresholds an export counts at (all scores are stored)."""

    detection: float = 0.5  # a detection counts from this detector score
    label: float = 0.5  # a machine label counts from this classifier score

    def __post_init__(self):
        for name in ("detection", "label"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise UserInputError(f"The {name} threshold must be between 0 and 1, not {value}.")

    def as_dict(self) -> dict:
        return {"detection_score": self.detection, "label_score": self.label}


# ---- scope filters ----------------------------------------------------------------------------
def image_filters(scope: ExportScope, *, dated_only: bool = False) -> list:
    """WHERE clauses on ``images`` (joined with ``nights`` where a date is asked for)."""
    where = []
    if scope.deployment_ids is not None:
        where.append(Image.deployment_id.in_(scope.deployment_ids))
    if scope.night_ids is not None:
        where.append(Image.night_id.in_(scope.night_ids))
    if scope.nights is not None:
        where.append(Image.night_id.in_(select(Night.id).where(Night.date.in_(scope.nights))))
    if dated_only:
        where.append(Image.night_id.is_not(None))
    return where


def occurrence_filters(scope: ExportScope, pipeline_id: int | None) -> list:
    where = [Occurrence.night_id.is_not(None)]
    if pipeline_id is not None:
        where.append(Occurrence.pipeline_id == pipeline_id)
    if scope.deployment_ids is not None:
        where.append(Occurrence.deployment_id.in_(scope.deployment_ids))
    if scope.night_ids is not None:
        where.append(Occurrence.night_id.in_(scope.night_ids))
    if scope.nights is not None:
        where.append(Occurrence.night_id.in_(select(Night.id).where(Night.date.in_(scope.nights))))
    return where


def night_filters(scope: ExportScope) -> list:
    where = []
    if scope.deployment_ids is not None:
        where.append(Night.deployment_id.in_(scope.deployment_ids))
    if scope.night_ids is not None:
        where.append(Night.id.in_(scope.night_ids))
    if scope.nights is not None:
        where.append(Night.date.in_(scope.nights))
    return where


# ---- which model configuration ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class PipelineChoice:
    id: int
    name: str
    images_done: int  # images of the scope processed with it


def pipelines_in_scope(db: Database, scope: ExportScope) -> list[PipelineChoice]:
    """The model configurations that processed images of ``scope``, most images first."""
    q = (select(Job.pipeline_id, PipelineConfig.name, func.count())
         .join(Image, Image.id == Job.image_id)
         .join(PipelineConfig, PipelineConfig.id == Job.pipeline_id)
         .where(Job.state == JobState.DONE.value, *image_filters(scope))
         .group_by(Job.pipeline_id, PipelineConfig.name))
    with db.session() as s:
        rows = s.execute(q).all()
    return sorted((PipelineChoice(r[0], r[1], int(r[2])) for r in rows),
                  key=lambda p: (-p.images_done, p.id))


def resolve_pipeline(db: Database, scope: ExportScope) -> int | None:
    """The scope's model configuration: the one given, the only one used, or None when no
    image in scope was processed. Several used and none given: a UserInputError that names
    them (counts from two configurations would count every insect twice)."""
    if scope.pipeline_id is not None:
        return scope.pipeline_id
    used = pipelines_in_scope(db, scope)
    if len(used) <= 1:
        return used[0].id if used else None
    names = "; ".join(f"{p.name!r} ({p.images_done:,} images)" for p in used)
    raise UserInputError(
        f"The selected images were processed with {len(used)} model configurations ({names}): "
        "choose one, or every insect would be counted once per configuration.",
        hint="CLI: --pipeline NAME; in the app: the Export dialog's model configuration.")


def pipeline_id_by_name(db: Database, name: str) -> int:
    with db.session() as s:
        rows = dict(s.execute(select(PipelineConfig.name, PipelineConfig.id)).all())
    if name not in rows:
        known = "; ".join(sorted(rows)) or "none yet"
        raise UserInputError(f"No model configuration is called {name!r}.",
                             hint=f"Known configurations: {known}.")
    return rows[name]


def pipeline_name(db: Database, pipeline_id: int) -> str:
    with db.session() as s:
        return s.execute(select(PipelineConfig.name).where(
            PipelineConfig.id == pipeline_id)).scalar_one()


# ---- streams -----------------------------------------------------------------------------------
def _stream(session, statement):
    """Rows of ``statement`` in partitions of PARTITION, on the session's connection (plain
    Core rows: the ORM's per-row work costs a third of a 100,000-row export)."""
    return session.connection().execute(statement.execution_options(yield_per=PARTITION))


def _job_for(pipeline_id: int | None):
    cond = Job.image_id == Image.id
    # no pipeline (nothing processed yet): images still listed, with no job
    return and_(cond, Job.pipeline_id == pipeline_id) if pipeline_id is not None else false()


IMAGE_COLUMNS = (Image.id, Image.deployment_id, Image.night_id, Image.rel_path, Image.width,
                 Image.height, Image.captured_at, Image.utc_offset_min, Image.time_source,
                 Image.state, Image.error, Job.state.label("job_state"),
                 Job.error.label("job_error"))


def image_rows(session, scope: ExportScope, pipeline_id: int | None, *,
               dated_only: bool = False, counted_at: float | None = None):
    """Every image of the scope with its job state for ``pipeline_id``, in capture order per
    trap: the media of Camtrap DP and the images of a MegaDetector file. With ``counted_at``
    each row also has ``counted``: its detections that count at that detector score."""
    columns = list(IMAGE_COLUMNS)
    if counted_at is not None:
        per_image = (select(Detection.image_id.label("img"), func.count().label("n"))
                     .where(*counted_detection_filters(pipeline_id, counted_at))
                     .group_by(Detection.image_id).subquery())
        columns.append(func.coalesce(per_image.c.n, 0).label("counted"))
    q = (select(*columns)
         .join(Deployment, Deployment.id == Image.deployment_id)
         .outerjoin(Job, _job_for(pipeline_id)))
    if counted_at is not None:
        q = q.outerjoin(per_image, per_image.c.img == Image.id)
    q = (q.where(*image_filters(scope, dated_only=dated_only))
         .order_by(Deployment.name, Deployment.id, Image.captured_at.is_(None),
                   Image.captured_at, Image.rel_path, Image.id))
    return _stream(session, q)


def scope_images(scope: ExportScope):
    """A select of the scope's image ids (for ``IN``: any size); None for everything."""
    where = image_filters(scope)
    return select(Image.id).where(*where) if where else None


def count_images(db: Database, scope: ExportScope, *, dated_only: bool = False) -> int:
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(Image).where(
            *image_filters(scope, dated_only=dated_only))).scalar_one())


def fixture_occurrences(pipeline_id: int | None):
    """The ids of fixture occurrences (screws, stains...) and of those a person rejected as
    not an insect: left out of every count."""
    q = select(Occurrence.id).where(or_(Occurrence.fixture.is_(True),
                                        ~final_labels.counted_occurrence()))
    if pipeline_id is not None:
        q = q.where(Occurrence.pipeline_id == pipeline_id)
    return q


def reviewed_occurrences(pipeline_id: int | None):
    """The ids of occurrences a person identified: they count at every detection threshold
    (a person saw the insect; a threshold must not take that back)."""
    q = select(Occurrence.id).where(final_labels.reviewed_occurrence())
    if pipeline_id is not None:
        q = q.where(Occurrence.pipeline_id == pipeline_id)
    return q


def counted_detection_filters(pipeline_id: int | None, min_score: float | None) -> list:
    """Detections that count: of the pipeline, at the detection threshold, not of a fixture."""
    where = [or_(Detection.occurrence_id.is_(None),
                 Detection.occurrence_id.not_in(fixture_occurrences(pipeline_id)))]
    if pipeline_id is not None:
        where.append(Detection.pipeline_id == pipeline_id)
    if min_score is not None:
        where.append(or_(Detection.score >= min_score,
                         Detection.occurrence_id.in_(reviewed_occurrences(pipeline_id))))
    return where


def detection_select(scope: ExportScope, pipeline_id: int | None, min_score: float | None, *,
                     dated_only: bool = False, exclude_fixtures: bool = True):
    """Detections of the scope with their image, occurrence and final-label columns."""
    where = counted_detection_filters(pipeline_id, min_score)
    if not exclude_fixtures:
        where = where[1:]  # the first filter is the fixture one
    q = (select(Detection.id, Detection.image_id, Detection.x1, Detection.y1, Detection.x2,
                Detection.y2, Detection.score, Detection.detector, Detection.occurrence_id,
                Image.deployment_id, Image.night_id, Image.rel_path, Image.width, Image.height,
                Image.captured_at, Image.utc_offset_min, Image.time_source,
                *final_labels.detection_columns())
         .join(Image, Image.id == Detection.image_id)
         .join(Deployment, Deployment.id == Image.deployment_id)
         .outerjoin(final_labels.review_occurrence(), final_labels.review_join())
         .where(*image_filters(scope, dated_only=dated_only), *where)
         # the same order as image_rows (MegaDetector merges the two streams on it)
         .order_by(Deployment.name, Deployment.id, Image.captured_at.is_(None),
                   Image.captured_at, Image.rel_path, Image.id, Detection.id))
    return q


def detection_rows(session, scope: ExportScope, pipeline_id: int | None,
                   min_score: float | None, **kw):
    return _stream(session, detection_select(scope, pipeline_id, min_score, **kw))


def occurrence_best_scores(pipeline_id: int | None):
    """Per occurrence: its best detector score and how many detections it has."""
    q = (select(Detection.occurrence_id.label("occ"), func.max(Detection.score).label("best"),
                func.count().label("n"))
         .where(Detection.occurrence_id.is_not(None)).group_by(Detection.occurrence_id))
    if pipeline_id is not None:
        q = q.where(Detection.pipeline_id == pipeline_id)
    return q.subquery()


def occurrence_select(scope: ExportScope, pipeline_id: int | None, min_score: float | None, *,
                      include_fixtures: bool = False, by_best_image: bool = False):
    """Occurrences of the scope (an occurrence counts at the detection threshold when at least
    one of its detections reaches it) with their best detection and final-label columns."""
    best = occurrence_best_scores(pipeline_id)
    best_det = Detection.__table__.alias("best_det")
    best_img = Image.__table__.alias("best_img")
    # a person's "not an insect" is no individual, in any export
    where = [*occurrence_filters(scope, pipeline_id), final_labels.counted_occurrence()]
    if not include_fixtures:
        where.append(Occurrence.fixture.is_(False))
    if min_score is not None:
        where.append(or_(best.c.best >= min_score, final_labels.reviewed_occurrence()))
    q = (select(Occurrence.id, Occurrence.deployment_id, Occurrence.night_id, Night.date,
                Occurrence.first_seen, Occurrence.last_seen, Occurrence.n_detections,
                Occurrence.fixture, Occurrence.fixture_reason, Occurrence.pinned,
                Occurrence.created_by, Occurrence.first_image_id, Occurrence.last_image_id,
                best.c.best.label("best_score"), best.c.n.label("detections"),
                Occurrence.best_detection_id, best_det.c.image_id.label("best_image_id"),
                best_det.c.x1, best_det.c.y1, best_det.c.x2, best_det.c.y2,
                best_det.c.score.label("best_detection_score"),
                best_img.c.rel_path.label("best_rel_path"), best_img.c.width,
                best_img.c.height, best_img.c.captured_at.label("best_captured_at"),
                best_img.c.utc_offset_min.label("best_offset"),
                *final_labels.occurrence_columns())
         .join(Night, Night.id == Occurrence.night_id)
         .join(Deployment, Deployment.id == Occurrence.deployment_id)
         .outerjoin(best, best.c.occ == Occurrence.id)
         .outerjoin(best_det, best_det.c.id == Occurrence.best_detection_id)
         .outerjoin(best_img, best_img.c.id == best_det.c.image_id)
         .where(*where))
    # crops open each image once when occurrences come grouped by their best image
    q = q.order_by(best_det.c.image_id, Occurrence.id) if by_best_image else q.order_by(
        Deployment.name, Deployment.id, Night.date, Occurrence.first_seen, Occurrence.id)
    return q


def occurrence_rows(session, scope: ExportScope, pipeline_id: int | None,
                    min_score: float | None, **kw):
    return _stream(session, occurrence_select(scope, pipeline_id, min_score, **kw))


def count_rows(db: Database, statement) -> int:
    """How many rows a select returns (for progress totals: the same filters, no rows)."""
    with db.session() as s:
        return int(s.execute(select(func.count()).select_from(
            statement.order_by(None).subquery())).scalar_one())


def untracked_detections(db: Database, scope: ExportScope, pipeline_id: int | None,
                         min_score: float | None) -> int:
    """Detections at the threshold that belong to no occurrence: tracking has not run on them,
    so individual counts miss them."""
    q = (select(func.count()).select_from(Detection).join(Image, Image.id == Detection.image_id)
         .where(Detection.occurrence_id.is_(None), *image_filters(scope, dated_only=True)))
    if pipeline_id is not None:
        q = q.where(Detection.pipeline_id == pipeline_id)
    if min_score is not None:
        q = q.where(Detection.score >= min_score)
    with db.session() as s:
        return int(s.execute(q).scalar_one())


# ---- provenance --------------------------------------------------------------------------------
def provenance(db: Database, scope: ExportScope, pipeline_id: int | None) -> dict:
    """The model configuration and the processing runs behind the scope's results: what an
    export must state (models, versions, settings, app versions, devices, dates)."""
    with db.session() as s:
        config = s.execute(select(PipelineConfig.id, PipelineConfig.key, PipelineConfig.name,
                                  PipelineConfig.config)
                           .where(PipelineConfig.id == pipeline_id)).first() \
            if pipeline_id is not None else None
        run_ids = select(Job.run_id).join(Image, Image.id == Job.image_id).where(
            Job.pipeline_id == pipeline_id, Job.state == JobState.DONE.value,
            Job.run_id.is_not(None), *image_filters(scope)).distinct()
        runs = s.execute(select(ProcessingRun).where(ProcessingRun.id.in_(run_ids),
                                                     _not_a_classification_job())
                         .order_by(ProcessingRun.id)).scalars().all() \
            if pipeline_id is not None else []
        out_runs = [{
            "id": r.id, "started_at": _utc_text(r.started_at),
            "ended_at": _utc_text(r.ended_at), "status": r.status, "models": r.models,
            "settings": r.settings, "devices": r.devices, "app_version": r.app_version,
            "images_done": r.images_done, "images_failed": r.images_failed,
            "notes": r.notes} for r in runs]
        # on-demand classification of boxes below the classification floor: runs of their own
        # (no job points at them), listed beside the processing runs
        jobs = s.execute(select(ProcessingRun).where(
            ProcessingRun.pipeline_id == pipeline_id,
            func.json_extract(ProcessingRun.settings, "$.task") == CLASSIFY_BELOW_FLOOR)
            .order_by(ProcessingRun.id)).scalars().all() if pipeline_id is not None else []
        out_jobs = [{
            "id": r.id, "started_at": _utc_text(r.started_at), "ended_at": _utc_text(r.ended_at),
            "status": r.status, "models": r.models, "settings": r.settings,
            "devices": r.devices, "app_version": r.app_version, "images_done": r.images_done,
            "images_failed": r.images_failed, "notes": r.notes} for r in jobs]
    pipeline = None if config is None else {
        "id": config.id, "name": config.name, "key": config.key, "config": config.config}
    storage, classification = floors_of(config.config if config is not None else None)
    floors = None if config is None else {"storage_floor": storage,
                                          "classification_floor": classification}
    return {"pipeline": pipeline, "floors": floors, "processing_runs": out_runs,
            "classification_jobs": out_jobs}


def _not_a_classification_job():
    task = func.json_extract(ProcessingRun.settings, "$.task")
    return or_(task.is_(None), task != CLASSIFY_BELOW_FLOOR)


def _utc_text(when: dt.datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") + "Z" if when else None


def dated_images_per_trap(db: Database, scope: ExportScope) -> dict[int, tuple[int, int, int]]:
    """Per trap: (dated images, of which without a UTC offset in the file, of which timed by
    the file's modification time)."""
    no_offset = func.sum(case((Image.utc_offset_min.is_(None), 1), else_=0))
    mtime = func.sum(case((Image.time_source == "file_mtime", 1), else_=0))
    q = (select(Image.deployment_id, func.count(), no_offset, mtime)
         .where(*image_filters(scope, dated_only=True), Image.captured_at.is_not(None))
         .group_by(Image.deployment_id))
    with db.session() as s:
        return {r[0]: (int(r[1]), int(r[2] or 0), int(r[3] or 0)) for r in s.execute(q)}
