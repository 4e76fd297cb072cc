"""One device worker: takes batches from the source, runs the device step, hands results to
the writer. Its own processors (model copies), its own torch thread count, inference mode for
the whole loop — set inside its own thread, where torch keeps them."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import torch

from trapgui.core.allocator import release_free_memory_paced
from trapgui.core.jobs import DeviceStatus, JobControl
from trapgui.core.types import ImageResult
from trapgui.ml.devices import DeviceChoice
from trapgui.pipeline.processor import BatchProcessor, ProcessedImage, describe_error
from trapgui.pipeline.work import WorkBatch, WorkSource

log = logging.getLogger(__name__)

WAIT_S = 0.2  # longest wait for a batch before pause and cancel are looked at again


class DeviceWorker:
    def __init__(self, *, name: str, choice: DeviceChoice, processors: dict[str, BatchProcessor],
                 source: WorkSource, put: Callable[[WorkBatch, list[ProcessedImage]], None],
                 control: JobControl, batch_size: int, want_scores: bool,
                 log_line: Callable[[str, str], None],
                 stage_seconds: dict[str, float] | None = None):
        self.name = name  # unique per process and run: queue claims are made in this name
        self.choice = choice
        self.processors = processors  # pipeline key -> processor
        self.source = source
        self._put = put
        self.control = control
        self.batch_size = batch_size
        self.want_scores = want_scores
        self._log_line = log_line
        self._stage_seconds = stage_seconds  # time waiting for decoding, when profiling
        self.finished = threading.Event()
        self.error: BaseException | None = None
        self.started_at: float | None = None
        self.images_done = 0
        self.state = "idle"
        self._lock = threading.Lock()

    @property
    def label(self) -> str:
        return self.choice.label

    def counted(self, n: int) -> None:
        """The writer has stored ``n`` of this worker's images (thread-safe)."""
        with self._lock:
            self.images_done += n

    def status(self) -> DeviceStatus:
        elapsed = time.monotonic() - self.started_at if self.started_at else 0.0
        rate = self.images_done / elapsed if elapsed > 0 else 0.0
        limits = [p.detection_batch_limit for p in self.processors.values()
                  if p.detection_batch_limit]
        batch = min([self.batch_size, *limits])
        return DeviceStatus(self.label, self.choice.name, self.state, batch, rate,
                            self.images_done)

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
            log.exception("Worker %s stopped", self.label)
            self._log_line("error", f"{self.label}: worker stopped: {describe_error(exc)}")
        finally:
            try:
                self.source.give_back(self.name)
            except Exception:  # noqa: BLE001 - the leases expire; the next run takes them over
                log.exception("Could not give back the work of %s", self.name)
            self.finished.set()

    def _loop(self) -> None:
        """Until the source has nothing more for this worker: after a cancel the source
        decides what still comes (nothing from the local queue, the claimed remote tasks);
        an abort stops at once."""
        self.started_at = time.monotonic()
        control = self.control
        while not control.aborted:
            if control.paused:
                self.state = "paused"
                control.wait_while_paused(WAIT_S)
                continue
            self.state = "waiting"
            batch = self.source.next_batch(self.name, self.batch_size, WAIT_S)
            if batch is None:
                break
            if batch.items:
                self._put(batch, self._process(batch))
                release_free_memory_paced()  # see core/allocator: what the batch freed
        self.state = "idle"

    def _process(self, batch: WorkBatch) -> list[ProcessedImage]:
        self.source.on_device(batch, True)
        try:
            return self._device_step(batch)
        finally:
            self.source.on_device(batch, False)

    def _device_step(self, batch: WorkBatch) -> list[ProcessedImage]:
        start = time.perf_counter()
        try:
            images = batch.images()
            if self._stage_seconds is not None:
                self._stage_seconds["waiting for decoded images"] = (
                    self._stage_seconds.get("waiting for decoded images", 0.0)
                    + time.perf_counter() - start)
            self.state = "working"
            out: list[ProcessedImage | None] = [None] * len(images)
            groups: dict[str, list[int]] = {}
            for i, item in enumerate(batch.items):
                groups.setdefault(item.pipeline, []).append(i)
            for key, positions in groups.items():
                processor = self.processors[key]
                chosen = [images[i] for i in positions]
                done = (processor.process_with_scores(chosen) if self.want_scores else
                        [ProcessedImage(r) for r in processor.process(chosen)])
                for i, p in zip(positions, done):
                    out[i] = p
            batch.device_seconds = time.perf_counter() - start
            return out  # type: ignore[return-value]
        except Exception as exc:
            reason = f"Processing failed on {self.label}: {describe_error(exc)}"
            log.warning("%s (batch of %d images)", reason, len(batch.items), exc_info=True)
            self._log_line("warning", f"{reason}; the {len(batch.items)} images of this batch "
                                      "are marked failed, the run goes on.")
            return [ProcessedImage(ImageResult(i.image_id, error=reason)) for i in batch.items]
