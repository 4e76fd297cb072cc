"""The local processing queue as the engine's source and sink.

Source: each device worker claims batches from ``db.jobqueue`` in its own name, with leases,
and keeps one batch claimed and decoding ahead of the one on its device (the loader pool
decodes it meanwhile). A suspect (an image in flight when an earlier process crashed) is the
exception: it is claimed only when nothing else of this process is decoding or on a device,
and nothing else is claimed until it has left the device, so a crash it causes again is
charged to it alone and its innocent batch-mates clear themselves. Leases of everything held
are renewed by ``keep_alive``; a worker that stops gives back what it never started.

Sink: each batch's results and job states in one transaction (``jobqueue.complete``), only for
jobs still claimed in that worker's name, and the run record (``processing_runs``).
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from trapgui.db import jobqueue
from trapgui.pipeline.flight_recorder import FlightRecorder
from trapgui.pipeline.loader import ImageLoader
from trapgui.pipeline.processor import ProcessedImage
from trapgui.pipeline.spec import PipelineSpec
from trapgui.pipeline.work import WorkBatch, WorkItem
from trapgui.version import __version__

PREFETCH = 1  # batches claimed and decoding ahead of the one on the device
ISOLATION_WAIT_S = 0.25  # at most, a worker waiting for a suspect (or for the others, to run
# one) before it asks again; a batch leaving a device wakes it sooner


class QueueSource:
    def __init__(self, db, pipeline_id: int, *, scope: Sequence[int] | None = None,
                 loader_threads: int = 2, lease_s: float = 300.0,
                 decode_initializer: Callable[[], None] | None = None,
                 recorder: FlightRecorder | None = None):
        self.db = db
        self.pipeline_id = pipeline_id
        self.scope = None if scope is None else sorted(set(scope))
        self.loader_threads = loader_threads
        self.lease_s = lease_s
        self._decode_initializer = decode_initializer
        self._recorder = recorder
        self._loader: ImageLoader | None = None
        self._lock = threading.Lock()
        self._ahead: dict[str, deque[WorkBatch]] = {}
        self._held: dict[str, dict[int, int]] = {}  # worker -> {job id: image id} not yet written
        self._drained: set[str] = set()
        self._claim_lock = threading.Lock()  # one decision at a time on running a suspect
        self._flying: dict[str, int] = {}  # worker -> batches claimed, not yet off its device
        self._landing = threading.Condition(self._lock)  # a batch left a device
        self._landings = 0  # how many times: a waiter sees one that came after its decision
        self._suspect: WorkBatch | None = None  # in flight alone
        self._last_renew = time.monotonic()
        before = jobqueue.counts(db, pipeline_id, self.scope)
        self._total = sum(before.values())
        self._done_before = before["done"]
        self._failed_before = before["failed"]

    # -- source -------------------------------------------------------------------------
    def start(self, decoder, control) -> None:
        self._control = control
        self._loader = ImageLoader(decoder, self.loader_threads, self._decode_initializer)

    def next_batch(self, worker: str, size: int, wait_s: float) -> WorkBatch | None:
        if self._control.cancelled:  # what is claimed ahead goes back in give_back
            return None
        with self._lock:
            ahead = self._ahead.setdefault(worker, deque())
            seen = self._landings
        while worker not in self._drained and len(ahead) <= PREFETCH:
            with self._claim_lock:
                with self._lock:
                    seen = self._landings
                    if self._suspect is not None:
                        break
                    alone = not any(self._flying.values())
                claims = jobqueue.claim(self.db, self.pipeline_id, worker, size, self.lease_s,
                                        image_ids=self.scope, suspects=alone)
                if not claims:
                    if alone:
                        self._drained.add(worker)
                    break
                batch = self._submit(worker, claims)
                with self._lock:
                    self._held.setdefault(worker, {}).update(
                        (c.job_id, c.image_id) for c in claims)
                    self._flying[worker] = self._flying.get(worker, 0) + 1
                    ahead.append(batch)
                    if claims[0].suspect:
                        self._suspect = batch
                        break
        with self._lock:
            if ahead:
                return ahead.popleft()
        if worker in self._drained:
            return None
        # a suspect is alone in flight, or waits for the others to finish: ask again once a
        # batch leaves a device (at once if one left since the decision above)
        with self._landing:
            self._landing.wait_for(lambda: self._landings != seen, min(wait_s, ISOLATION_WAIT_S))
        return WorkBatch(worker, [])

    def _submit(self, worker: str, claims) -> WorkBatch:
        return WorkBatch(worker, [WorkItem(c.image_id, c.abs_path, ref=c) for c in claims],
                         [self._loader.submit(c.image_id, c.abs_path, (c.width, c.height),
                                              on_start=self._decoding(c.job_id, True),
                                              on_end=self._decoding(c.job_id, False))
                          for c in claims])

    def on_device(self, batch: WorkBatch, flying: bool) -> None:
        if self._recorder is not None:
            self._recorder.mark("device", [i.ref.job_id for i in batch.items], flying)
        if not flying:
            self._landed(batch.worker, [batch])

    def _landed(self, worker: str, batches) -> None:
        """These batches are off the device (or were never put on it)."""
        with self._lock:
            self._flying[worker] = max(0, self._flying.get(worker, 0) - len(batches))
            if any(b is self._suspect for b in batches):
                self._suspect = None
            self._landings += 1
            self._landing.notify_all()

    def _decoding(self, job_id: int, flying: bool):
        if self._recorder is None:
            return None
        return lambda: self._recorder.mark("decoding", (job_id,), flying)

    def give_back(self, worker: str) -> None:
        with self._lock:
            batches = list(self._ahead.pop(worker, ()))
        job_ids = [i.ref.job_id for b in batches for i in b.items]
        for b in batches:
            b.cancel()
        self._landed(worker, batches)
        if job_ids:
            jobqueue.release(self.db, worker, job_ids)
            self.settled(worker, job_ids)

    def keep_alive(self) -> None:
        if time.monotonic() - self._last_renew < max(1.0, self.lease_s / 4):
            return
        self._last_renew = time.monotonic()
        with self._lock:
            held = {w: list(jobs) for w, jobs in self._held.items() if jobs}
        for worker, job_ids in held.items():
            jobqueue.renew(self.db, worker, job_ids, self.lease_s)

    def status(self) -> dict:
        return {"total": self._total, "done_before": self._done_before,
                "failed_before": self._failed_before, "state": "working"}

    def close(self) -> None:
        if self._loader is not None:
            self._loader.close()

    # -- shared with the sink -----------------------------------------------------------
    def settled(self, worker: str, job_ids) -> None:
        """These claims are written (or given up): stop renewing them."""
        with self._lock:
            held = self._held.get(worker, {})
            for j in job_ids:
                held.pop(j, None)

    @property
    def failed_before(self) -> int:
        return self._failed_before

    def remaining(self) -> int:
        left = jobqueue.counts(self.db, self.pipeline_id, self.scope)
        return left["pending"] + left["claimed"]


class CatalogueSink:
    """Writes a queue source's results into the catalogue and keeps the run record."""

    wants_scores = False

    def __init__(self, db, pipeline_id: int, source: QueueSource, spec: PipelineSpec, store=None):
        self.db = db
        self.pipeline_id = pipeline_id
        self.source = source
        self.spec = spec
        self.store = store
        self.run_id: int | None = None

    def begin(self, model_sets: dict, devices: list) -> None:
        """The run record: models, devices with the batch sizes each used (measured, cached
        or from the settings), the settings including both floors."""
        models = next(iter(model_sets.values()))
        batch_sizes = {c.label: self._batch_sizes(c) for c in devices}
        self.run_id = jobqueue.start_run(
            self.db, self.pipeline_id, models=models.describe(self.store),
            devices=[{"device": c.label, "name": c.name, "threads": c.threads,
                      "batch_sizes": batch_sizes[c.label]} for c in devices],
            settings={**self.spec.as_dict(), "batch_sizes": batch_sizes,
                      "process": {"host": socket.gethostname(), "pid": os.getpid()}},
            app_version=__version__)

    def _batch_sizes(self, choice) -> dict:
        plans = getattr(choice, "batch_plans", None) or {}
        if plans:
            return next(iter(plans.values()))
        keys = [k for k in (self.spec.binary, self.spec.order, self.spec.species) if k]
        return {"detection": self.spec.detection_batch_size,
                "classification": {k: self.spec.classification_batch_size for k in keys},
                "source": {k: "settings" for k in [self.spec.detector, *keys]}}

    def write(self, batch: WorkBatch, results: Sequence[ProcessedImage]) -> int:
        written = jobqueue.complete(self.db, self.pipeline_id, self.run_id, batch.worker,
                                    [p.result for p in results])
        self.source.settled(batch.worker, [i.ref.job_id for i in batch.items])
        return written

    def abandon(self, batch: WorkBatch) -> None:
        job_ids = [i.ref.job_id for i in batch.items]
        try:
            jobqueue.release(self.db, batch.worker, job_ids)
        finally:
            self.source.settled(batch.worker, job_ids)
