"""One device worker: claims batches from the SQLite queue, has the loader pool decode the next
batch while this one is on the device, runs the ``BatchProcessor`` and hands results to the
writer. Its own model copies, its own torch thread count, inference mode for the whole loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

import torch

from trapgui.core.types import ImageResult
from trapgui.db import jobqueue
from trapgui.ml.devices import DeviceChoice
from trapgui.pipeline.events import DeviceStatus
from trapgui.pipeline.processor import BatchProcessor, describe_error
from trapgui.pipeline.writer import WriteRequest

log = logging.getLogger(__name__)

PREFETCH = 1  # batches claimed and decoding ahead of the one on the device


@dataclass
class RunControl:
    """Shared by the engine and its workers."""

    cancel: threading.Event = field(default_factory=threading.Event)
    resume: threading.Event = field(default_factory=threading.Event)  # set = not paused

    def __post_init__(self):
        self.resume.set()

    @property
    def paused(self) -> bool:
        return not self.resume.is_set()


class DeviceWorker:
    def __init__(self, *, db, pipeline_id: int, name: str, choice: DeviceChoice,
                 processor: BatchProcessor, loader, writer, control: RunControl,
                 batch_size: int, lease_s: float, scope: list[int] | None, log_event):
        self.db = db
        self.pipeline_id = pipeline_id
        self.name = name  # queue worker name, unique per process and run
        self.choice = choice
        self.processor = processor
        self.loader = loader
        self.writer = writer
        self.control = control
        self.batch_size = batch_size
        self.lease_s = lease_s
        self.scope = scope
        self._log_event = log_event
        self._lock = threading.Lock()
        self._held: dict[int, int] = {}  # job id -> image id, claimed and not yet committed
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.images_done = 0
        self.state = "idle"

    # -- called from other threads ------------------------------------------------------
    def held_job_ids(self) -> list[int]:
        with self._lock:
            return list(self._held)

    def committed(self, claims) -> None:
        """The writer committed (or gave up on) these claims: stop renewing them."""
        with self._lock:
            for c in claims:
                self._held.pop(c.job_id, None)
            self.images_done += len(claims)

    def status(self) -> DeviceStatus:
        elapsed = time.monotonic() - self.started_at if self.started_at else 0.0
        rate = self.images_done / elapsed if elapsed > 0 else 0.0
        batch = self.processor.detection_batch_limit or self.batch_size
        return DeviceStatus(self.choice.label, self.choice.name, self.state,
                            min(batch, self.batch_size), rate, self.images_done)

    # -- the thread ---------------------------------------------------------------------
    def run(self) -> None:
        try:
            if self.choice.threads:
                torch.set_num_threads(self.choice.threads)
            with torch.inference_mode():
                self._loop()
            self.state = "stopped"
        except BaseException as exc:  # a database or programming error: stop this worker only
            self.error = exc
            self.state = "error"
            log.exception("Worker %s stopped", self.choice.label)
            self._log_event("error", f"{self.choice.label}: worker stopped: {describe_error(exc)}")
        finally:
            self._release_all()
            self.finished.set()

    def _claim(self):
        claims = jobqueue.claim(self.db, self.pipeline_id, self.name, self.batch_size,
                                self.lease_s, image_ids=self.scope)
        if claims:
            with self._lock:
                self._held.update((c.job_id, c.image_id) for c in claims)
        return claims

    def _loop(self) -> None:
        self.started_at = time.monotonic()
        ahead: deque = deque()
        self._ahead = ahead
        drained = False
        while not self.control.cancel.is_set():
            if self.control.paused:
                self.state = "paused"
                self.control.resume.wait(0.2)
                continue
            while not drained and len(ahead) <= PREFETCH:
                claims = self._claim()
                if not claims:
                    drained = True
                    break
                ahead.append((claims, self.loader.submit(claims)))
            if not ahead:
                break
            claims, future = ahead.popleft()
            if self.control.cancel.is_set():
                ahead.appendleft((claims, future))  # never started on the device: give back
                break
            self.state = "waiting"
            decoded = None
            try:
                decoded = future.result()
                self.state = "working"
                results = self.processor.process(decoded)
            except Exception as exc:
                reason = f"Processing failed on {self.choice.label}: {describe_error(exc)}"
                log.warning("%s (batch of %d images)", reason, len(claims), exc_info=True)
                self._log_event("warning", f"{reason}; the {len(claims)} images of this batch "
                                "are marked failed, the run goes on.")
                results = [ImageResult(c.image_id, error=reason) for c in claims]
            del decoded
            self.writer.put(WriteRequest(self.name, self.choice.label, claims, results))
        self.state = "idle"

    def _release_all(self) -> None:
        """Claims never put on the device go back to pending (cancel, error)."""
        ahead = getattr(self, "_ahead", None) or ()
        job_ids = []
        for claims, future in ahead:
            future.cancel()
            job_ids.extend(c.job_id for c in claims)
        if not job_ids:
            return
        try:
            jobqueue.release(self.db, self.name, job_ids)
        except Exception:
            log.exception("Could not release %d claims (their leases will expire)", len(job_ids))
        with self._lock:
            for j in job_ids:
                self._held.pop(j, None)
        ahead.clear()
