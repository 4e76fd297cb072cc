"""The processing queue on a real SQLite file: atomic claims, leases, one-transaction result
writes, stale workers, and never processing an image twice."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue, open_database
from trapgui.db.tables import Classification, Detection, Image, Job
from tests.queue_helpers import add_images, queue_images


@pytest.fixture
def queued(db):
    pid, ids = queue_images(db, 20)
    return db, pid, ids


def result(image_id: int, n: int = 2, label: str = "moth") -> ImageResult:
    return ImageResult(image_id, [
        DetectionResult(Box(i, i, i + 20, i + 20), 0.9 - i / 100, "builtin", [
            ClassificationResult("bin", Rank.BINARY, label, 0.8),
            ClassificationResult("sp", Rank.SPECIES, "Noctua pronuba", 0.6,
                                 ["Noctua pronuba", "Noctua comes"], [0.6, 0.3])])
        for i in range(n)])


def detections(db, image_id=None):
    with db.session() as s:
        q = select(func.count()).select_from(Detection)
        if image_id is not None:
            q = q.where(Detection.image_id == image_id)
        return s.execute(q).scalar()


def test_pipeline_key_and_get_or_create_are_stable(db):
    assert jobqueue.pipeline_key({"a": 1, "b": 2}) == jobqueue.pipeline_key({"b": 2, "a": 1})
    first = jobqueue.get_or_create_pipeline(db, "k", "one", {})
    assert jobqueue.get_or_create_pipeline(db, "k", "other name", {}) == first


def test_enqueue_is_idempotent(queued):
    db, pid, ids = queued
    assert jobqueue.enqueue(db, pid, ids) == 0
    assert jobqueue.counts(db, pid) == {"pending": 20, "claimed": 0, "done": 0, "failed": 0}


def test_claim_gives_paths_and_sizes(queued):
    db, pid, ids = queued
    got = jobqueue.claim(db, pid, "w", 3, 60)
    assert [c.image_id for c in got] == ids[:3]
    assert got[0].abs_path == "/traps/20/0000.jpg" and (got[0].width, got[0].height) == (400, 300)
    assert got[0].attempts == 0  # a claim is not evidence against the image
    assert jobqueue.counts(db, pid)["claimed"] == 3


def test_concurrent_claims_never_hand_out_a_job_twice(tmp_path):
    """Four threads, each with its own connection pool (so only SQLite's lock separates them),
    claim small batches until the queue is empty."""
    path = tmp_path / "q.sqlite3"
    setup = open_database(path)
    ids = add_images(setup, 300)
    pid = jobqueue.get_or_create_pipeline(setup, "k", "p", {})
    jobqueue.enqueue(setup, pid, ids)
    setup.close()
    claimed: dict[str, list[int]] = {}
    errors = []
    # all four start claiming together: on a quiet machine the first thread used to drain the
    # queue before the others had opened the database
    start = threading.Barrier(4)

    def worker(name):
        db = open_database(path)
        try:
            mine = claimed.setdefault(name, [])
            start.wait(30)
            while batch := jobqueue.claim(db, pid, name, 7, 60):
                mine.extend(c.image_id for c in batch)
                # a real worker processes its batch before claiming again; without this the
                # winner re-takes SQLite's lock while the others sleep in the busy handler
                time.sleep(0.005)
        except Exception as exc:  # noqa: BLE001 - surfaced below
            errors.append(exc)
        finally:
            db.close()

    threads = [threading.Thread(target=worker, args=(f"w{i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    everything = [i for got in claimed.values() for i in got]
    assert sorted(everything) == sorted(ids)  # all of them, none twice
    assert sum(1 for got in claimed.values() if got) >= 2  # they really competed


def test_complete_writes_results_and_state_together(queued):
    db, pid, ids = queued
    batch = jobqueue.claim(db, pid, "w", 2, 60)
    run = jobqueue.start_run(db, pid, models={}, devices=["cpu"], settings={}, app_version="t")
    assert jobqueue.complete(db, pid, run, "w", [result(b.image_id) for b in batch]) == 2
    with db.session() as s:
        job = s.scalars(select(Job).where(Job.image_id == batch[0].image_id)).one()
        assert (job.state, job.run_id, job.lease_expires_at) == ("done", run, None)
        det = s.scalars(select(Detection).where(Detection.image_id == batch[0].image_id)
                        .order_by(Detection.id)).first()
        assert (det.x1, det.x2, det.score, det.run_id) == (0, 20, 0.9, run)
        assert (det.binary_label, det.top_label, det.top_rank) == ("moth", "Noctua pronuba",
                                                                   "species")
        cls = s.scalars(select(Classification).where(Classification.detection_id == det.id)
                        .where(Classification.rank == "species")).one()
        assert cls.top_labels == ["Noctua pronuba", "Noctua comes"]
    assert detections(db) == 4


def test_a_failing_write_leaves_no_partial_results(queued):
    """An error in the middle of writing (here the database refuses a classification without a
    label, after the batch's detections were inserted) rolls back everything: the jobs stay
    claimed and no detection of the batch is stored."""
    db, pid, ids = queued
    batch = jobqueue.claim(db, pid, "w", 2, 60)
    bad = result(batch[1].image_id)
    bad.detections[1].classifications[1].label = None
    with pytest.raises(IntegrityError):
        jobqueue.complete(db, pid, None, "w", [result(batch[0].image_id), bad])
    assert detections(db) == 0
    assert jobqueue.counts(db, pid)["claimed"] == 2
    assert jobqueue.complete(db, pid, None, "w", [result(b.image_id) for b in batch]) == 2
    assert detections(db) == 4


def test_expired_lease_goes_back_to_pending(queued):
    db, pid, ids = queued
    t0 = time.time()
    jobqueue.claim(db, pid, "crashed", 5, 10, now=t0)
    assert jobqueue.reset_expired(db, now=t0 + 5) == 0  # still leased
    assert jobqueue.reset_expired(db, now=t0 + 11) == 5
    assert jobqueue.counts(db, pid) == {"pending": 20, "claimed": 0, "done": 0, "failed": 0}
    again = jobqueue.claim(db, pid, "fresh", 5, 10, now=t0 + 12)
    # an expired lease blames nobody (what was in flight is charged from the dead process's
    # evidence, see test_interruptions.py): the images come back as a normal batch
    assert [c.image_id for c in again] == ids[:5] and again[0].attempts == 0


def test_claim_takes_over_expired_claims_directly(queued):
    db, pid, ids = queued
    t0 = time.time()
    jobqueue.claim(db, pid, "old", 20, 10, now=t0)
    assert jobqueue.claim(db, pid, "new", 20, 10, now=t0 + 1) == []
    assert len(jobqueue.claim(db, pid, "new", 20, 10, now=t0 + 11)) == 20


def test_stale_worker_cannot_overwrite(queued):
    db, pid, ids = queued
    t0 = time.time()
    stale = jobqueue.claim(db, pid, "slow", 1, 10, now=t0)
    fresh = jobqueue.claim(db, pid, "quick", 1, 10, now=t0 + 20)  # lease ran out: taken over
    assert [c.image_id for c in fresh] == [c.image_id for c in stale]
    image_id = stale[0].image_id
    assert jobqueue.complete(db, pid, None, "slow", [result(image_id, n=5, label="stale")]) == 0
    assert detections(db) == 0  # nothing written by the stale worker
    assert jobqueue.complete(db, pid, None, "quick", [result(image_id, n=1)]) == 1
    assert jobqueue.complete(db, pid, None, "slow", [result(image_id, n=5, label="stale")]) == 0
    assert detections(db, image_id) == 1
    with db.session() as s:
        assert s.execute(select(Detection.binary_label)).scalars().all() == ["moth"]


def test_done_images_are_never_processed_again(queued):
    db, pid, ids = queued
    while batch := jobqueue.claim(db, pid, "w", 6, 60):
        assert jobqueue.complete(db, pid, None, "w", [result(b.image_id) for b in batch]) == len(batch)
    assert jobqueue.claim(db, pid, "w2", 100, 60) == []
    assert jobqueue.enqueue(db, pid, ids) == 0  # already there: untouched
    assert jobqueue.claim(db, pid, "w2", 100, 60) == []
    assert detections(db) == 40
    # asked explicitly (the user wants a re-run): old results go, jobs are pending again
    assert jobqueue.enqueue(db, pid, ids[:3], requeue=True) == 3
    assert detections(db) == 34
    assert jobqueue.counts(db, pid)["pending"] == 3


def test_failed_result_records_the_reason_and_is_not_retried(queued):
    db, pid, ids = queued
    batch = jobqueue.claim(db, pid, "w", 2, 60)
    out = [ImageResult(batch[0].image_id, error="cannot decode image: truncated"),
           result(batch[1].image_id)]
    assert jobqueue.complete(db, pid, None, "w", out) == 2
    with db.session() as s:
        job = s.scalars(select(Job).where(Job.image_id == batch[0].image_id)).one()
    assert (job.state, job.error) == ("failed", "cannot decode image: truncated")
    assert batch[0].image_id not in [c.image_id for c in jobqueue.claim(db, pid, "w", 100, 60)]


def test_an_image_that_keeps_crashing_the_program_is_isolated_then_failed(queued):
    db, pid, ids = queued
    batch = jobqueue.claim(db, pid, "w0", 4, 60)
    # the program crashed with these on the device: all four are suspects now
    assert jobqueue.charge_interrupted(db, [c.job_id for c in batch], crashed=True) == (4, 0)
    clean = jobqueue.claim(db, pid, "w1", 10, 60)
    assert [c.image_id for c in clean] == ids[4:14]  # the others first, in a batch
    jobqueue.complete(db, pid, None, "w1", [result(c.image_id) for c in clean])
    jobqueue.complete(db, pid, None, "w1", [result(c.image_id) for c in
                                            jobqueue.claim(db, pid, "w1", 10, 60)])
    assert not any(c.suspect for c in clean)
    # a caller with other work in flight does not take a suspect
    assert jobqueue.claim(db, pid, "w1", 4, 60, suspects=False) == []
    for crash in range(2, jobqueue.MAX_CRASHES + 1):
        alone = jobqueue.claim(db, pid, f"w{crash}", 4, 60)
        assert [c.image_id for c in alone] == [ids[0]]  # a suspect is handed out alone
        assert alone[0].suspect
        charged, failed = jobqueue.charge_interrupted(db, [alone[0].job_id], crashed=True,
                                                      report="Fatal Python error: Segfault")
        assert charged == 1 and failed == (crash == jobqueue.MAX_CRASHES)
    with db.session() as s:
        job = s.scalars(select(Job).where(Job.image_id == ids[0])).one()
    assert job.state == "failed" and "crashed" in job.error and "Segfault" in job.error
    # its batch-mates, tried alone, are processed
    for _ in range(3):
        alone = jobqueue.claim(db, pid, "w", 4, 60)
        assert len(alone) == 1 and alone[0].image_id in ids[1:4]
        jobqueue.complete(db, pid, None, "w", [result(alone[0].image_id)])
    assert jobqueue.counts(db, pid) == {"pending": 0, "claimed": 0, "done": 19, "failed": 1}
    # the user can try it again (a fixed decoder, a replaced file)
    assert jobqueue.enqueue(db, pid, ids, retry_failed=True) == 1
    again = jobqueue.claim(db, pid, "w", 4, 60)
    assert [c.image_id for c in again] == [ids[0]] and again[0].attempts == 0


def test_stops_from_outside_need_much_more_evidence(queued):
    db, pid, ids = queued
    for n in range(1, jobqueue.MAX_INTERRUPTIONS + 1):
        alone = jobqueue.claim(db, pid, "w", 4, 60, image_ids=ids[:1])
        charged, failed = jobqueue.charge_interrupted(db, [alone[0].job_id], crashed=False)
        assert charged == 1 and failed == (n == jobqueue.MAX_INTERRUPTIONS)
    with db.session() as s:
        job = s.scalars(select(Job).where(Job.image_id == ids[0])).one()
    assert job.state == "failed" and "stopped" in job.error and job.attempts == 0


def test_release_and_renew(queued):
    db, pid, ids = queued
    batch = jobqueue.claim(db, pid, "w", 4, 1)
    job_ids = [b.job_id for b in batch]
    assert jobqueue.renew(db, "someone-else", job_ids, 60) == 0
    assert jobqueue.renew(db, "w", job_ids, 60) == 4
    with db.session() as s:
        leases = s.execute(select(Job.lease_expires_at).where(Job.id.in_(job_ids))).scalars()
        assert min(leases) > time.time() + 50
    assert jobqueue.release(db, "w", job_ids[:2]) == 2
    counts = jobqueue.counts(db, pid)
    assert (counts["pending"], counts["claimed"]) == (18, 2)
    again = jobqueue.claim(db, pid, "w", 1, 60)
    assert again[0].attempts == 0  # a release is not a failed attempt


def test_claim_can_be_limited_to_a_selection(queued):
    db, pid, ids = queued
    got = jobqueue.claim(db, pid, "w", 10, 60, image_ids=ids[5:8])
    assert sorted(c.image_id for c in got) == ids[5:8]
    assert jobqueue.counts(db, pid, image_ids=ids[5:8])["claimed"] == 3


def test_missing_or_unreadable_images_fail_with_the_catalogue_reason(queued):
    db, pid, ids = queued
    from sqlalchemy import update

    with db.write_session() as s:
        s.execute(update(Image).where(Image.id == ids[0]).values(state="missing", error=None))
        s.execute(update(Image).where(Image.id == ids[1]).values(
            state="unreadable", error="the file is empty (0 bytes)"))
    claimed = jobqueue.claim(db, pid, "w", 100, 60)
    assert ids[0] not in {c.image_id for c in claimed}
    assert ids[1] not in {c.image_id for c in claimed}
    with db.session() as s:
        errors = dict(s.execute(select(Job.image_id, Job.error).where(
            Job.image_id.in_(ids[:2]), Job.state == "failed")).all())
    assert errors == {ids[0]: "the file is no longer in the trap folder",
                      ids[1]: "the file is empty (0 bytes)"}
