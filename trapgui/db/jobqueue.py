"""The processing queue: one job row per image × pipeline configuration.

States: pending → claimed (by a worker, with a lease) → done | failed (reason). Claims and
result writes run in ``BEGIN IMMEDIATE`` transactions, so they are atomic across threads and
processes. Results and the state change are committed together: a crash before the commit
leaves the job claimed, its lease expires, and it is processed again from scratch; a crash after
leaves it done. Either way each image ends done exactly once, with one set of detections.

A worker whose lease ran out and was taken over by another worker can no longer write: its
results are ignored because the job is no longer claimed under its name.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import and_, delete, func, insert, or_, select, update

from trapgui.core.file_names import disk_path
from trapgui.core.types import ImageResult, ImageState, JobState, Rank
from trapgui.db.database import Database
from trapgui.db.tables import (
    Classification,
    Deployment,
    Detection,
    Image,
    Job,
    PipelineConfig,
    ProcessingRun,
)

# An image that was claimed this many times without finishing (the process died each time,
# e.g. a decoder crash) is failed instead of being handed out forever.
MAX_ATTEMPTS = 3
_CHUNK = 500  # SQLite's bound-parameter limit is generous, but keep statements modest


@dataclass(frozen=True, slots=True)
class ClaimedImage:
    job_id: int
    image_id: int
    abs_path: str
    rel_path: str
    width: int | None
    height: int | None
    attempts: int


def pipeline_key(config: dict) -> str:
    """Stable key for a configuration: sha256 of its canonical JSON."""
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def get_or_create_pipeline(db: Database, key: str, name: str, config: dict) -> int:
    with db.write_session() as s:
        found = s.execute(select(PipelineConfig.id).where(PipelineConfig.key == key)).scalar()
        if found is not None:
            return found
        return s.execute(
            insert(PipelineConfig).values(key=key, name=name, config=config).returning(
                PipelineConfig.id)
        ).scalar_one()


def _chunks(items: Sequence, size: int = _CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def enqueue(db: Database, pipeline_id: int, image_ids: Iterable[int], *, requeue: bool = False) -> int:
    """Add pending jobs for these images. Existing jobs are left alone, unless ``requeue``,
    which sends done/failed ones back to pending and drops their old results. Returns how many
    jobs became pending."""
    ids = sorted(set(image_ids))
    now = time.time()
    changed = 0
    with db.write_session() as s:
        for part in _chunks(ids):
            existing = dict(s.execute(
                select(Job.image_id, Job.state).where(
                    Job.pipeline_id == pipeline_id, Job.image_id.in_(part))).all())
            new_rows = [{"image_id": i, "pipeline_id": pipeline_id, "state": JobState.PENDING.value,
                         "attempts": 0, "updated_at": now} for i in part if i not in existing]
            if new_rows:
                s.execute(insert(Job), new_rows)
                changed += len(new_rows)
            if requeue:
                again = [i for i, st in existing.items()
                         if st in (JobState.DONE.value, JobState.FAILED.value)]
                if again:
                    _delete_results(s, pipeline_id, again)
                    s.execute(update(Job).where(
                        Job.pipeline_id == pipeline_id, Job.image_id.in_(again)).values(
                        state=JobState.PENDING.value, worker=None, lease_expires_at=None,
                        error=None, attempts=0, updated_at=now))
                    changed += len(again)
    return changed


def _delete_results(session, pipeline_id: int, image_ids: Sequence[int]) -> None:
    det_ids = select(Detection.id).where(
        Detection.pipeline_id == pipeline_id, Detection.image_id.in_(image_ids))
    session.execute(delete(Classification).where(Classification.detection_id.in_(det_ids)))
    session.execute(delete(Detection).where(
        Detection.pipeline_id == pipeline_id, Detection.image_id.in_(image_ids)))


def claim(db: Database, pipeline_id: int, worker: str, limit: int, lease_s: float,
          *, image_ids: Sequence[int] | None = None, now: float | None = None) -> list[ClaimedImage]:
    """Atomically take up to ``limit`` pending jobs (or claims whose lease has expired).
    ``image_ids`` restricts the claim to a selection (selected nights or images)."""
    now = time.time() if now is None else now
    with db.write_session() as s:
        _fail_exhausted(s, pipeline_id, now)
        _fail_unavailable(s, pipeline_id, now)
        claimable = or_(
            Job.state == JobState.PENDING.value,
            and_(Job.state == JobState.CLAIMED.value, Job.lease_expires_at < now),
        )
        query = select(Job.id).where(Job.pipeline_id == pipeline_id, claimable)
        if image_ids is not None:
            query = query.where(Job.image_id.in_(list(image_ids)))
        job_ids = list(s.execute(query.order_by(Job.id).limit(limit)).scalars())
        if not job_ids:
            return []
        s.execute(update(Job).where(Job.id.in_(job_ids)).values(
            state=JobState.CLAIMED.value, worker=worker, lease_expires_at=now + lease_s,
            attempts=Job.attempts + 1, updated_at=now))
        rows = s.execute(
            select(Job.id, Job.image_id, Deployment.path, Image.rel_path, Image.width,
                   Image.height, Job.attempts)
            .join(Image, Image.id == Job.image_id)
            .join(Deployment, Deployment.id == Image.deployment_id)
            .where(Job.id.in_(job_ids)).order_by(Job.id)).all()
    # stored names are escaped when they are not valid text: disk_path gives the real name
    return [ClaimedImage(job_id=r[0], image_id=r[1], abs_path=disk_path(r[2], r[3]),
                         rel_path=r[3], width=r[4], height=r[5], attempts=r[6]) for r in rows]


def _fail_exhausted(session, pipeline_id: int, now: float) -> None:
    session.execute(update(Job).where(
        Job.pipeline_id == pipeline_id, Job.state == JobState.CLAIMED.value,
        Job.lease_expires_at < now, Job.attempts >= MAX_ATTEMPTS).values(
        state=JobState.FAILED.value, lease_expires_at=None, updated_at=now,
        error=f"processing stopped {MAX_ATTEMPTS} times while working on this image "
              "(the program crashed or was killed); skipped"))


def _fail_unavailable(session, pipeline_id: int, now: float) -> None:
    """Pending jobs whose file went missing or is unreadable fail with the catalogue's reason
    instead of being handed to a worker that can only fail them one by one."""
    bad = select(Image.id).where(Image.state != ImageState.OK.value)
    reason = (select(func.coalesce(Image.error, "the file is no longer in the trap folder"))
              .where(Image.id == Job.image_id).scalar_subquery())
    session.execute(update(Job).where(
        Job.pipeline_id == pipeline_id, Job.state == JobState.PENDING.value,
        Job.image_id.in_(bad)).values(state=JobState.FAILED.value, error=reason, updated_at=now))


def renew(db: Database, worker: str, job_ids: Sequence[int], lease_s: float) -> int:
    """Extend the lease of jobs this worker still holds; returns how many it still holds."""
    now = time.time()
    with db.write_session() as s:
        result = s.execute(update(Job).where(
            Job.id.in_(list(job_ids)), Job.worker == worker,
            Job.state == JobState.CLAIMED.value).values(
            lease_expires_at=now + lease_s, updated_at=now))
        return result.rowcount


def release(db: Database, worker: str, job_ids: Sequence[int]) -> int:
    """Give unfinished claims back (cancel, pause): they become pending again, unchanged."""
    now = time.time()
    with db.write_session() as s:
        result = s.execute(update(Job).where(
            Job.id.in_(list(job_ids)), Job.worker == worker,
            Job.state == JobState.CLAIMED.value).values(
            state=JobState.PENDING.value, worker=None, lease_expires_at=None,
            attempts=func.max(Job.attempts - 1, 0), updated_at=now))
        return result.rowcount


def reset_expired(db: Database, now: float | None = None) -> int:
    """Send claims whose lease ran out (a crashed or killed process) back to pending."""
    now = time.time() if now is None else now
    with db.write_session() as s:
        pipelines = s.execute(select(Job.pipeline_id).where(
            Job.state == JobState.CLAIMED.value, Job.lease_expires_at < now).distinct()).scalars()
        for pid in list(pipelines):
            _fail_exhausted(s, pid, now)
        result = s.execute(update(Job).where(
            Job.state == JobState.CLAIMED.value, Job.lease_expires_at < now).values(
            state=JobState.PENDING.value, worker=None, lease_expires_at=None, updated_at=now))
        return result.rowcount


def complete(db: Database, pipeline_id: int, run_id: int | None, worker: str,
             results: Sequence[ImageResult]) -> int:
    """Write results and mark jobs done (or failed, for results with ``error``) in one
    transaction. Only jobs still claimed by ``worker`` are written; returns how many."""
    if not results:
        return 0
    now = time.time()
    by_image = {r.image_id: r for r in results}
    with db.write_session() as s:
        held = dict(s.execute(select(Job.image_id, Job.id).where(
            Job.pipeline_id == pipeline_id, Job.worker == worker,
            Job.state == JobState.CLAIMED.value, Job.image_id.in_(list(by_image)))).all())
        if not held:
            return 0
        ok = [by_image[i] for i in held if by_image[i].error is None]
        failed = [by_image[i] for i in held if by_image[i].error is not None]
        if ok:
            _delete_results(s, pipeline_id, [r.image_id for r in ok])
            _insert_results(s, pipeline_id, run_id, ok)
            s.execute(update(Job).where(Job.id.in_([held[r.image_id] for r in ok])).values(
                state=JobState.DONE.value, lease_expires_at=None, error=None, run_id=run_id,
                updated_at=now))
        for r in failed:
            s.execute(update(Job).where(Job.id == held[r.image_id]).values(
                state=JobState.FAILED.value, lease_expires_at=None, error=r.error,
                run_id=run_id, updated_at=now))
        return len(held)


def _insert_results(session, pipeline_id: int, run_id: int | None,
                    results: Sequence[ImageResult]) -> None:
    # Explicit ids: we hold SQLite's write lock, so max(id)+1.. is ours; this avoids a
    # RETURNING round trip per row to link classifications to their detection.
    next_id = (session.execute(select(func.max(Detection.id))).scalar() or 0) + 1
    det_rows, cls_rows = [], []
    for result in results:
        for det in result.detections:
            row = {"id": next_id, "image_id": result.image_id, "pipeline_id": pipeline_id,
                   "run_id": run_id, "x1": det.box.x1, "y1": det.box.y1, "x2": det.box.x2,
                   "y2": det.box.y2, "score": det.score, "detector": det.detector,
                   "binary_label": None, "binary_score": None, "top_label": None,
                   "top_score": None, "top_rank": None}
            best_rank = -1
            for c in det.classifications:
                cls_rows.append({"detection_id": next_id, "model": c.model, "rank": c.rank.value
                                 if isinstance(c.rank, Rank) else c.rank, "label": c.label,
                                 "score": c.score, "top_labels": list(c.top_labels),
                                 "top_scores": [float(x) for x in c.top_scores]})
                rank = Rank(c.rank)
                if rank is Rank.BINARY:
                    row["binary_label"], row["binary_score"] = c.label, c.score
                order = {Rank.BINARY: 0, Rank.ORDER: 1, Rank.SPECIES: 2}[rank]
                if order > best_rank:
                    best_rank = order
                    row["top_label"], row["top_score"], row["top_rank"] = c.label, c.score, rank.value
            det_rows.append(row)
            next_id += 1
    for part in _chunks(det_rows, 2000):
        session.execute(insert(Detection), part)
    for part in _chunks(cls_rows, 2000):
        session.execute(insert(Classification), part)


def counts(db: Database, pipeline_id: int, image_ids: Sequence[int] | None = None) -> dict[str, int]:
    """Jobs per state (all four states always present)."""
    query = select(Job.state, func.count()).where(Job.pipeline_id == pipeline_id)
    if image_ids is not None:
        query = query.where(Job.image_id.in_(list(image_ids)))
    with db.session() as s:
        found = dict(s.execute(query.group_by(Job.state)).all())
    return {state.value: int(found.get(state.value, 0)) for state in JobState}


def start_run(db: Database, pipeline_id: int, *, models: dict, devices: list, settings: dict,
              app_version: str) -> int:
    with db.write_session() as s:
        return s.execute(insert(ProcessingRun).values(
            pipeline_id=pipeline_id, models=models, devices=devices, settings=settings,
            app_version=app_version, status="running", images_done=0, images_failed=0,
            notes=[]).returning(ProcessingRun.id)).scalar_one()


def finish_run(db: Database, run_id: int, *, status: str, images_done: int, images_failed: int,
               notes: list | None = None) -> None:
    import datetime as dt

    with db.write_session() as s:
        s.execute(update(ProcessingRun).where(ProcessingRun.id == run_id).values(
            status=status, images_done=images_done, images_failed=images_failed,
            notes=notes or [], ended_at=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)))

