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

from sqlalchemy import and_, bindparam, delete, exists, func, insert, or_, select, update

from trapgui.core.box_match import match_boxes
from trapgui.core.file_names import disk_path
from trapgui.core.types import HUMAN_DETECTOR, ImageResult, ImageState, JobState, Rank
from trapgui.db.database import Database
from trapgui.db.review_store import refresh_summaries
from trapgui.db.tables import (
    Classification,
    Deployment,
    Detection,
    Image,
    Job,
    Occurrence,
    PipelineConfig,
    ProcessingRun,
)

# An image in flight when the process crashed (a fatal signal of its own: a decoder segfault)
# this many times is failed instead of being handed out forever; after the first crash it is
# processed alone, so innocent batch-mates clear themselves.
MAX_CRASHES = 3
# Stopped from outside (killed, power cut) while working on it alone this many times: perhaps
# it exhausts memory every time (the kernel's OOM killer leaves no crash report).
MAX_INTERRUPTIONS = 8
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
    suspect: bool = False  # in flight when a process died: handed out alone


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


def pipeline_id_for_key(db: Database, key: str) -> int | None:
    """The registered configuration with this key, or None (nothing was run with it)."""
    with db.session() as s:
        return s.execute(select(PipelineConfig.id).where(PipelineConfig.key == key)).scalar()


def _chunks(items: Sequence, size: int = _CHUNK):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def enqueue(db: Database, pipeline_id: int, image_ids: Iterable[int], *, requeue: bool = False,
            retry_failed: bool = False) -> int:
    """Add pending jobs for these images. Existing jobs are left alone, unless ``requeue``,
    which sends done/failed ones back to pending and drops their old results, or
    ``retry_failed``, which sends failed ones back (with a clean record). Returns how many
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
                         "attempts": 0, "interruptions": 0, "updated_at": now}
                        for i in part if i not in existing]
            if new_rows:
                s.execute(insert(Job), new_rows)
                changed += len(new_rows)
            if requeue or retry_failed:
                again_states = ((JobState.DONE.value, JobState.FAILED.value) if requeue
                                else (JobState.FAILED.value,))
                again = [i for i, st in existing.items() if st in again_states]
                if again:
                    _delete_results(s, pipeline_id, again)
                    s.execute(update(Job).where(
                        Job.pipeline_id == pipeline_id, Job.image_id.in_(again)).values(
                        state=JobState.PENDING.value, worker=None, lease_expires_at=None,
                        error=None, attempts=0, interruptions=0, updated_at=now))
                    changed += len(again)
    return changed


def _delete_results(session, pipeline_id: int | None, image_ids: Sequence[int], *,
                    drawn_too: bool = False) -> None:
    """The machine's results of these images, before they are processed again (of every
    configuration when ``pipeline_id`` is None). Boxes a person drew stay unless
    ``drawn_too`` (the file changed: they describe other pixels). A machine box that a
    person's decision holds (it belongs to a pinned occurrence: deleted as not an insect,
    confirmed, relabelled, grouped by hand) stays until the image's new results come: it is
    then replaced by the same box of the new results, or goes when there is none
    (:func:`_replace_held`)."""
    ids = list(image_ids)
    if not ids:
        return
    free = or_(Detection.occurrence_id.is_(None), ~_held_by_a_person())
    doomed = [Detection.image_id.in_(ids),
              or_(Detection.detector == HUMAN_DETECTOR, free) if drawn_too
              else and_(Detection.detector != HUMAN_DETECTOR, free)]
    if pipeline_id is not None:
        doomed.append(Detection.pipeline_id == pipeline_id)
    det_ids = select(Detection.id).where(*doomed)
    session.execute(delete(Classification).where(Classification.detection_id.in_(det_ids)))
    session.execute(delete(Detection).where(*doomed))


def delete_results_of_changed_files(session, image_ids: Sequence[int]) -> None:
    """A changed file's results of every configuration, before it is processed again (the
    scanner): as :func:`_delete_results`, boxes a person drew included."""
    for part in _chunks(list(image_ids)):
        _delete_results(session, None, part, drawn_too=True)


def _held_by_a_person():
    # correlated (a primary-key lookup per box): the images' boxes are few, pinned rows many
    return exists().where(Occurrence.id == Detection.occurrence_id, Occurrence.pinned.is_(True))


def _held(session, pipeline_id: int, image_ids: Sequence[int]) -> dict[int, list]:
    """image -> [(detection, box)] of the machine's boxes there that a person's decision
    holds, oldest first."""
    out: dict[int, list] = {}
    for part in _chunks(list(image_ids)):
        for det, image, x1, y1, x2, y2 in session.execute(
                select(Detection.id, Detection.image_id, Detection.x1, Detection.y1,
                       Detection.x2, Detection.y2)
                .where(Detection.pipeline_id == pipeline_id, Detection.image_id.in_(part),
                       Detection.detector != HUMAN_DETECTOR,
                       _held_by_a_person())
                .order_by(Detection.id)):
            out.setdefault(image, []).append((det, (x1, y1, x2, y2)))
    return out


def _replace_held(session, pipeline_id: int, results: Sequence[ImageResult]) -> dict:
    """The machine boxes a person's decision holds on these images, against the new results:
    each new box that is the same box as a held one (``core.box_match``: same image, the
    largest IoU, at least 0.5, one-to-one) takes the held box's id, so it stays in the
    person's occurrence and the review log (undo) goes on naming it; a held box with no such
    new box goes. Returns (image, index of the new box) -> the id it takes."""
    held = _held(session, pipeline_id, [r.image_id for r in results])
    if not held:
        return {}
    reuse: dict[tuple[int, int], int] = {}
    for r in results:
        boxes = held.get(r.image_id)
        if boxes:
            found = match_boxes(boxes, [(k, d.box.as_tuple()) for k, d in enumerate(r.detections)])
            reuse.update({(r.image_id, k): det for det, k in found.items()})
    every = [det for boxes in held.values() for det, _ in boxes]
    kept = set(reuse.values())
    gone = [det for det in every if det not in kept]
    for part in _chunks(every):
        session.execute(delete(Classification).where(Classification.detection_id.in_(part)))
    if gone:
        owners = set()
        for part in _chunks(gone):
            owners.update(session.execute(select(Detection.occurrence_id)
                                          .where(Detection.id.in_(part))).scalars())
            session.execute(delete(Detection).where(Detection.id.in_(part)))
        refresh_summaries(session, {o for o in owners if o is not None})
    return reuse


def claim(db: Database, pipeline_id: int, worker: str, limit: int, lease_s: float,
          *, image_ids: Sequence[int] | None = None, suspects: bool = True,
          now: float | None = None) -> list[ClaimedImage]:
    """Atomically take up to ``limit`` pending jobs (or claims whose lease has expired).
    ``image_ids`` restricts the claim to a selection (selected nights or images). A job that
    was in flight when a process died (a suspect) is handed out alone, after the others, and
    only if ``suspects``: a caller with other work in flight says False, so that if the
    suspect crashes the program again, the crash is charged to it alone."""
    now = time.time() if now is None else now
    with db.write_session() as s:
        _fail_unavailable(s, pipeline_id, now)
        claimable = or_(
            Job.state == JobState.PENDING.value,
            and_(Job.state == JobState.CLAIMED.value, Job.lease_expires_at < now),
        )
        query = select(Job.id).where(Job.pipeline_id == pipeline_id, claimable)
        if image_ids is not None:
            query = query.where(Job.image_id.in_(list(image_ids)))
        clean = and_(Job.attempts == 0, Job.interruptions == 0)
        job_ids = list(s.execute(query.where(clean).order_by(Job.id).limit(limit)).scalars())
        suspect = not job_ids
        if suspect and suspects:
            job_ids = list(s.execute(query.order_by(Job.id).limit(1)).scalars())
        if not job_ids:
            return []
        s.execute(update(Job).where(Job.id.in_(job_ids)).values(
            state=JobState.CLAIMED.value, worker=worker, lease_expires_at=now + lease_s,
            updated_at=now))
        rows = s.execute(
            select(Job.id, Job.image_id, Deployment.path, Image.rel_path, Image.width,
                   Image.height, Job.attempts)
            .join(Image, Image.id == Job.image_id)
            .join(Deployment, Deployment.id == Image.deployment_id)
            .where(Job.id.in_(job_ids)).order_by(Job.id)).all()
    # stored names are escaped when they are not valid text: disk_path gives the real name
    return [ClaimedImage(job_id=r[0], image_id=r[1], abs_path=disk_path(r[2], r[3]),
                         rel_path=r[3], width=r[4], height=r[5], attempts=r[6],
                         suspect=suspect) for r in rows]


def charge_interrupted(db: Database, job_ids: Sequence[int], *, crashed: bool,
                       report: str = "") -> tuple[int, int]:
    """Jobs that were in flight (being decoded, or on the device) when their process died:
    a crash of its own counts against them (``attempts``), a stop from outside only as an
    interruption; they go back to pending, or fail once the evidence is strong enough.
    Returns (charged, failed)."""
    ids = list(job_ids)
    if not ids:
        return 0, 0
    now = time.time()
    column = Job.attempts if crashed else Job.interruptions
    with db.write_session() as s:
        charged = s.execute(update(Job).where(
            Job.id.in_(ids), Job.state == JobState.CLAIMED.value).values(
            {column.key: column + 1})).rowcount
        crash_reason = (f"the program crashed {MAX_CRASHES} times while working on this image"
                        + (f" ({report})" if report else "") + "; skipped (Retry failed "
                        "images to try it again)")
        stop_reason = (f"the program was stopped {MAX_INTERRUPTIONS} times while working on "
                       "this image alone (perhaps it needs more memory than this computer "
                       "has); skipped (Retry failed images to try it again)")
        failed = 0
        for limit_col, limit, reason in ((Job.attempts, MAX_CRASHES, crash_reason),
                                         (Job.interruptions, MAX_INTERRUPTIONS, stop_reason)):
            failed += s.execute(update(Job).where(
                Job.id.in_(ids), Job.state == JobState.CLAIMED.value, limit_col >= limit).values(
                state=JobState.FAILED.value, lease_expires_at=None, error=reason,
                updated_at=now)).rowcount
        s.execute(update(Job).where(Job.id.in_(ids), Job.state == JobState.CLAIMED.value).values(
            state=JobState.PENDING.value, worker=None, lease_expires_at=None, updated_at=now))
    return charged, failed


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
            state=JobState.PENDING.value, worker=None, lease_expires_at=None, updated_at=now))
        return result.rowcount


def reset_expired(db: Database, now: float | None = None) -> int:
    """Send claims whose lease ran out back to pending. Nobody is blamed: what was in flight
    when a process on this computer died is charged first (``charge_interrupted``), from the
    evidence it left."""
    now = time.time() if now is None else now
    with db.write_session() as s:
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
    by_image = {r.image_id: r for r in results}
    with db.write_session() as s:
        held = dict(s.execute(select(Job.image_id, Job.id).where(
            Job.pipeline_id == pipeline_id, Job.worker == worker,
            Job.state == JobState.CLAIMED.value, Job.image_id.in_(list(by_image)))).all())
        _write_results(s, pipeline_id, run_id, held, by_image)
        return len(held)


def record_results(session, pipeline_id: int, run_id: int | None,
                   results: Sequence[ImageResult]) -> int:
    """Write results for images whose work was handed out elsewhere (remote tasks: the outbox
    guarantees each task is processed once), in the caller's transaction: they replace the
    images' results of this pipeline and mark their jobs done or failed, creating the jobs if
    needed. Returns how many were written."""
    by_image = {r.image_id: r for r in results if r.image_id >= 0}
    if not by_image:
        return 0
    now = time.time()
    held = dict(session.execute(select(Job.image_id, Job.id).where(
        Job.pipeline_id == pipeline_id, Job.image_id.in_(list(by_image)))).all())
    new = [{"image_id": i, "pipeline_id": pipeline_id, "state": JobState.CLAIMED.value,
            "attempts": 0, "interruptions": 0, "updated_at": now}
           for i in by_image if i not in held]
    if new:
        session.execute(insert(Job), new)
        held = dict(session.execute(select(Job.image_id, Job.id).where(
            Job.pipeline_id == pipeline_id, Job.image_id.in_(list(by_image)))).all())
    _write_results(session, pipeline_id, run_id, held, by_image)
    return len(held)


def _write_results(session, pipeline_id: int, run_id: int | None, held: dict[int, int],
                   by_image: dict[int, ImageResult]) -> None:
    """Results of the images in ``held`` (image id -> job id) replace their old ones; their
    jobs become done, or failed with the result's error."""
    if not held:
        return
    now = time.time()
    ok = [by_image[i] for i in held if by_image[i].error is None]
    failed = [by_image[i] for i in held if by_image[i].error is not None]
    if ok:
        _delete_results(session, pipeline_id, [r.image_id for r in ok])
        _insert_results(session, pipeline_id, run_id, ok, _replace_held(session, pipeline_id, ok))
        session.execute(update(Job).where(Job.id.in_([held[r.image_id] for r in ok])).values(
            state=JobState.DONE.value, lease_expires_at=None, error=None,
            run_id=run_id, updated_at=now))
    for r in failed:
        session.execute(update(Job).where(Job.id == held[r.image_id]).values(
            state=JobState.FAILED.value, lease_expires_at=None, error=r.error,
            run_id=run_id, updated_at=now))


def _insert_results(session, pipeline_id: int, run_id: int | None,
                    results: Sequence[ImageResult],
                    reuse: dict[tuple[int, int], int] | None = None) -> None:
    """``reuse``: (image, index of the box) -> the id of the held box it replaces (that row
    is written over in place: its occurrence stays)."""
    # Explicit ids: we hold SQLite's write lock, so max(id)+1.. is ours; this avoids a
    # RETURNING round trip per row to link classifications to their detection.
    next_id = (session.execute(select(func.max(Detection.id))).scalar() or 0) + 1
    reuse = reuse or {}
    det_rows, cls_rows, updates = [], [], []
    for result in results:
        for k, det in enumerate(result.detections):
            own_id = reuse.get((result.image_id, k))
            row = {"id": next_id if own_id is None else own_id, "image_id": result.image_id,
                   "pipeline_id": pipeline_id,
                   "run_id": run_id, "x1": det.box.x1, "y1": det.box.y1, "x2": det.box.x2,
                   "y2": det.box.y2, "score": det.score, "detector": det.detector,
                   "binary_label": None, "binary_score": None, "top_label": None,
                   "top_score": None, "top_rank": None, "embedding": det.embedding,
                   "sharpness": det.sharpness}
            best_rank = -1
            for c in det.classifications:
                cls_rows.append({"detection_id": row["id"], "model": c.model, "rank": c.rank.value
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
            if own_id is not None:
                updates.append(row)
            else:
                det_rows.append(row)
                next_id += 1
    for part in _chunks(det_rows, 2000):
        session.execute(insert(Detection), part)
    if updates:
        table = Detection.__table__
        cols = [c for c in updates[0] if c not in ("id", "image_id", "pipeline_id")]
        session.connection().execute(
            table.update().where(table.c.id == bindparam("b_id"))
            .values({c: bindparam(f"v_{c}") for c in cols}),
            [{"b_id": r["id"], **{f"v_{c}": r[c] for c in cols}} for r in updates])
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



# ---- taking over the work of processes that died ------------------------------------------
def claimed_workers(db: Database, prefix: str) -> list[str]:
    """Names of workers (starting with ``prefix``) that hold claims."""
    with db.session() as s:
        return list(s.execute(select(Job.worker).where(
            Job.state == JobState.CLAIMED.value, Job.worker.like(f"{prefix}%")).distinct()
        ).scalars())


def expire_claims(db: Database, workers: Sequence[str]) -> int:
    """Treat these workers' leases as run out now (their process is gone)."""
    if not workers:
        return 0
    with db.write_session() as s:
        return s.execute(update(Job).where(
            Job.state == JobState.CLAIMED.value, Job.worker.in_(list(workers))).values(
            lease_expires_at=0.0)).rowcount


def running_runs(db: Database) -> list[tuple[int, dict]]:
    """(run id, settings) of the runs still marked running."""
    with db.session() as s:
        return [(r[0], r[1] or {}) for r in s.execute(
            select(ProcessingRun.id, ProcessingRun.settings).where(
                ProcessingRun.status == "running"))]


def mark_run_crashed(db: Database, run_id: int, note: str) -> None:
    with db.write_session() as s:
        s.execute(update(ProcessingRun).where(ProcessingRun.id == run_id).values(
            status="crashed", notes=[note]))
