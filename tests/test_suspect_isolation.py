"""A suspect (an image in flight when an earlier process crashed) is processed with nothing
else of the process in flight: not decoding ahead, not on another device. Otherwise a crash it
causes again would be charged to an innocent image decoding beside it, which after three such
crashes would be skipped as if it were the culprit."""

from __future__ import annotations


from trapgui.core.jobs import JobControl
from trapgui.core.types import ImageResult
from trapgui.db import jobqueue
from trapgui.pipeline.queue_source import QueueSource
from tests.queue_helpers import queue_images


def _source(db, pid) -> QueueSource:
    source = QueueSource(db, pid, loader_threads=1)
    source.start(lambda image_id, path, size: None, JobControl())
    return source


def _claimed(db, pid) -> int:
    return jobqueue.counts(db, pid)["claimed"]


def _write(db, pid, source, batch) -> None:
    """The batch's results are written, as the engine's sink does."""
    jobqueue.complete(db, pid, None, batch.worker, [ImageResult(i) for i in batch.image_ids])
    source.settled(batch.worker, [i.ref.job_id for i in batch.items])


def test_a_suspect_waits_for_the_others_and_runs_alone(db):
    pid, ids = queue_images(db, 10)
    crashed = jobqueue.claim(db, pid, "dead", 3, 60)
    jobqueue.charge_interrupted(db, [c.job_id for c in crashed], crashed=True)
    source = _source(db, pid)
    try:
        first = source.next_batch("w1", 4, 1.0)
        assert first.image_ids == ids[3:7]  # the clean images first, in batches
        assert _claimed(db, pid) == 7  # and one batch claimed ahead: ids[7:10]
        source.on_device(first, True)
        # w2 finds only suspects while w1 has work in flight: it waits, claiming nothing
        waiting = source.next_batch("w2", 4, 1.0)
        assert waiting is not None and waiting.items == []
        assert _claimed(db, pid) == 7
        source.on_device(first, False)
        _write(db, pid, source, first)
        second = source.next_batch("w1", 4, 1.0)
        assert second.image_ids == ids[7:10]
        assert _claimed(db, pid) == 3, "nothing may be claimed behind the last clean batch"
        assert source.next_batch("w2", 4, 1.0).items == []  # w1 still has a batch out
        source.on_device(second, True)
        source.on_device(second, False)  # off the device: writing it does not hold anyone
        for n, suspect in enumerate(ids[:3]):
            worker, other = ("w2", "w1") if n % 2 == 0 else ("w1", "w2")
            alone = source.next_batch(worker, 4, 1.0)
            assert alone.image_ids == [suspect]
            # neither worker claims anything more while it is decoding or on the device
            assert source.next_batch(other, 4, 1.0).items == []
            assert source.next_batch(worker, 4, 1.0).items == []
            source.on_device(alone, True)
            assert source.next_batch(other, 4, 1.0).items == []
            assert _claimed(db, pid) == 1 + (3 if n == 0 else 0)
            if n == 0:
                _write(db, pid, source, second)
            source.on_device(alone, False)
            _write(db, pid, source, alone)
        assert source.next_batch("w1", 4, 1.0) is None
        assert source.next_batch("w2", 4, 1.0) is None
        assert jobqueue.counts(db, pid)["done"] == 10
    finally:
        source.close()
