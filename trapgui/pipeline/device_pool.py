"""The engine's core: one worker per device, fed by a source, writing through one writer.

    source ──batches──► device worker × N ──results──► writer ──► sink
      ▲                  (own models, torch threads)     (one thread, one transaction a batch)
      └── keep_alive (leases, polling) ◄── supervisor: progress about every second

``DevicePool.run`` is a job in the shape of ``core.jobs``: it takes ``emit`` and ``control``,
emits ``RunProgress``, ``BatchCommitted``, ``ItemFailed`` and ``LogLine`` (from worker and
writer threads), and returns a :class:`PoolOutcome`. It knows nothing about where work comes
from or where results go (``pipeline.work``): the local queue, remote tasks and a cluster
executor all reuse it or its parts.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from trapgui.core.jobs import (BatchCommitted, Emit, ItemFailed, JobControl, LogLine,
                               RunProgress, safe_emit)
from trapgui.core.library_pages import page_out_gpu_libraries
from trapgui.ml.devices import DeviceChoice, resolve_devices
from trapgui.pipeline.batch_size_cache import BatchSizeCache
from trapgui.pipeline.batch_tuning import BatchTuner
from trapgui.pipeline.device_worker import DeviceWorker
from trapgui.pipeline.loader import Decoder
from trapgui.pipeline.model_set import ModelSet
from trapgui.pipeline.processor import BatchProcessor, describe_error
from trapgui.pipeline.spec import PipelineSpec
from trapgui.pipeline.work import ModelLoader, ResultSink, WorkBatch, WorkSource
from trapgui.pipeline.writer import ResultWriter

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0
WORKER_NICE = 10  # device workers yield to the window and the rest of the desktop


@dataclass
class PoolOutcome:
    status: str  # finished | cancelled | crashed
    done: int
    failed: int
    detections: int
    elapsed_s: float
    devices: list = field(default_factory=list)  # DeviceStatus per worker
    notes: list[str] = field(default_factory=list)
    error: BaseException | None = None

    @property
    def images_per_s(self) -> float:
        return (self.done + self.failed) / self.elapsed_s if self.elapsed_s > 0 else 0.0


def lower_thread_priority() -> None:
    """Run the calling thread at a lower priority (Linux: per-thread nice). Threads it starts
    (torch's intra-op pool) inherit it."""
    if hasattr(os, "setpriority") and hasattr(threading, "get_native_id"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except OSError:
            pass


def _thread(name: str, target: Callable[[], None]):
    return threading.Thread(target=target, name=name, daemon=True)


class DevicePool:
    """One run over ``source`` with the models of ``specs`` (pipeline key -> spec)."""

    def __init__(self, source: WorkSource, sink: ResultSink, specs: Mapping[str, PipelineSpec],
                 model_loader: ModelLoader, *, devices="auto", batch_size: int | None = None,
                 low_priority: bool = False, thread_factory: Callable | None = None,
                 batch_size_cache: BatchSizeCache | None = None, profile: bool = False):
        """``batch_size`` (images per batch) overrides the specs'; a spec whose batch sizes
        are None has them measured per device on first use and kept in ``batch_size_cache``
        (default: ``batch_sizes.json`` in the data folder). ``profile``: time every stage
        (device steps synchronised; benchmarks) into :attr:`stage_seconds`."""
        self.source = source
        self.sink = sink
        self.specs = dict(specs)
        self.model_loader = model_loader
        self.devices = devices
        first = next(iter(self.specs.values()))
        self.batch_size = batch_size or first.detection_batch_size
        self.batch_size_cache = batch_size_cache
        self.profile = profile
        self._stage_dicts: list[dict[str, float]] = []
        self.low_priority = low_priority
        self.thread_factory = thread_factory or _thread
        self._lock = threading.Lock()
        self._done = self._failed = self._detections = 0
        self._workers: list[DeviceWorker] = []
        self._write_error: BaseException | None = None
        self._started = time.monotonic()

    # -- the job ------------------------------------------------------------------------
    def run(self, emit: Emit, control: JobControl) -> PoolOutcome:
        self._emit = emit = safe_emit(emit)
        self._control = control
        choices, messages = resolve_devices(self.devices)
        for message in messages:
            emit(LogLine("warning", message))
        processors = self._load(choices)
        if all(c.device.type == "cpu" for c in choices):
            page_out_gpu_libraries()  # see core/library_pages: resident, never run on a CPU
        decoder = Decoder.for_processors(next(iter(processors[0].values())),
                                         pin_memory=any(c.device.type == "cuda" for c in choices))
        self.source.start(decoder, control)
        writer = ResultWriter(self.sink, self._written, self._write_failed,
                              stage_seconds=self._stage_dict())
        tag = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._workers = [DeviceWorker(
            name=f"{tag}:{c.label}", choice=c, processors=p, source=self.source,
            put=writer.put, control=control, batch_size=self._images_per_batch(c),
            want_scores=self.sink.wants_scores, stage_seconds=self._stage_dict(),
            log_line=lambda level, msg: emit(LogLine(level, msg)))
            for c, p in zip(choices, processors)]
        self._started = time.monotonic()
        status, crash, abandon = "crashed", None, False
        try:
            writer.start()
            threads = [self.thread_factory(f"trapgui-{w.label}", self._body(w))
                       for w in self._workers]
            for t in threads:
                t.start()
            self._supervise()
            for t in threads:
                t.join()
            status = "cancelled" if control.cancelled else "finished"
        except KeyboardInterrupt as exc:
            # "stop now" (a second Ctrl+C): do not wait for the batch on the device; the
            # process is about to exit and the next run takes its work over
            crash, status, abandon = exc, "cancelled", True
            control.abort()
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised by the caller
            crash = exc
            control.cancel()
            for w in self._workers:
                w.finished.wait()
        finally:
            if not abandon:
                writer.close()
            self.source.close()
        if self._write_error is not None and crash is None:
            status, crash = "crashed", self._write_error
        if status == "finished" and any(w.error for w in self._workers):
            status = "crashed"
            crash = next(w.error for w in self._workers if w.error)
        notes = [n for by_key in processors for p in by_key.values() for n in p.notes] + messages
        outcome = PoolOutcome(status, self._done, self._failed, self._detections,
                              time.monotonic() - self._started,
                              [w.status() for w in self._workers], notes, crash)
        emit(self.progress())
        return outcome

    def _body(self, worker: DeviceWorker) -> Callable[[], None]:
        if not self.low_priority:
            return worker.run

        def run() -> None:
            lower_thread_priority()
            worker.run()
        return run

    def _load(self, choices: list[DeviceChoice]) -> list[dict[str, BatchProcessor]]:
        """One processor per pipeline on every device, devices loading in parallel; raises
        the first loading error (a model that is not installed) before any work is taken."""
        out: list[dict[str, BatchProcessor] | None] = [None] * len(choices)
        sets: dict[str, ModelSet] = {}
        errors: list[BaseException] = []

        def load(i: int, choice: DeviceChoice) -> None:
            try:
                self._emit(LogLine("info", f"Loading models on {choice.label} ({choice.name})."))
                by_key = {}
                plans = {}
                for key, spec in self.specs.items():
                    models = self.model_loader(key, choice.device)
                    sets.setdefault(key, models)
                    plan = plans[key] = self._plan(models, choice, spec)
                    by_key[key] = BatchProcessor(
                        models.detector, models.binary, models.species, models.order,
                        classification_batch_size=spec.classification_batch_size or 64,
                        classification_batch_sizes=plan.classification if plan else None,
                        top_k=spec.top_k, score_floor=spec.storage_floor,
                        classification_floor=spec.classification_floor,
                        crop_fill=spec.crop_fill, stage_seconds=self._stage_dict(),
                        embeddings=getattr(spec, "embeddings", True))
                choice.batch_plans = {k: p.as_record() for k, p in plans.items() if p}
                out[i] = by_key
            except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
                errors.append(exc)

        threads = [threading.Thread(target=load, args=(i, c), daemon=True)
                   for i, c in enumerate(choices)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        self.sink.begin(sets, choices)
        return out  # type: ignore[return-value]

    def _stage_dict(self) -> dict[str, float] | None:
        """A dict one thread accumulates its stage times into (``profile`` only)."""
        if not self.profile:
            return None
        with self._lock:
            self._stage_dicts.append({})
            return self._stage_dicts[-1]

    @property
    def stage_seconds(self) -> dict[str, float]:
        """Seconds per stage, summed over threads (``profile=True``): ``detector``, ``crops``,
        ``classifier KEY`` (device worker), ``waiting for decoded images`` (device worker),
        ``writes`` (writer thread)."""
        total: dict[str, float] = {}
        with self._lock:
            for d in self._stage_dicts:
                for k, v in d.items():
                    total[k] = total.get(k, 0.0) + v
        return total

    def _plan(self, models: ModelSet, choice: DeviceChoice, spec: PipelineSpec):
        """The batch sizes of one pipeline on one device: the spec's, else measured once (or
        read from the cache). None when the spec fixes both."""
        if not spec.tunes_batch_sizes:
            return None
        tuner = BatchTuner(self.batch_size_cache,
                           log_line=lambda level, msg: self._emit(LogLine(level, msg)))
        return tuner.plan(models, choice.device, choice.threads,
                          detection=spec.detection_batch_size,
                          classification=spec.classification_batch_size)

    def _images_per_batch(self, choice: DeviceChoice) -> int:
        """Images per claimed batch on this device: the pool's fixed size, else the tuned
        detection batch of its (first) pipeline, else the spec's."""
        if self.batch_size:
            return self.batch_size
        sizes = [p["detection"] for p in choice.batch_plans.values()]
        return max(sizes) if sizes else 4

    def _supervise(self) -> None:
        last = time.monotonic()
        while not all(w.finished.is_set() for w in self._workers):
            time.sleep(0.1)
            if time.monotonic() - last >= PROGRESS_EVERY_S:
                last = time.monotonic()
                try:
                    self.source.keep_alive()
                except Exception as exc:  # noqa: BLE001 - reported; leases may then expire
                    log.warning("Keeping the work alive failed: %s", describe_error(exc))
                self._emit(self.progress())

    # -- writer callbacks (writer thread) -------------------------------------------------
    def _written(self, batch: WorkBatch, results, written: int) -> None:
        worker = next((w for w in self._workers if w.name == batch.worker), None)
        if written == 0:
            self._emit(LogLine("warning", f"A batch of {len(batch.items)} images was taken "
                                          "over by another worker; not written."))
            return
        ok, failed, detections = split_results(batch, results)
        with self._lock:
            self._done += len(ok)
            self._failed += len(failed)
            self._detections += detections
        if worker is not None:
            worker.counted(len(results))
        for item, r in failed:
            self._emit(ItemFailed(item.image_id, item.name, r.error or ""))
        self._emit(BatchCommitted(tuple(batch.image_ids), detections,
                                  worker.label if worker else ""))
        self._emit(self.progress())

    def _write_failed(self, batch: WorkBatch, exc: BaseException) -> None:
        self._write_error = exc
        try:
            self.sink.abandon(batch)
        except Exception:  # noqa: BLE001 - the leases expire and the work is handed out again
            log.warning("Could not give back a batch after a failed write.")
        self._emit(LogLine("error", f"Results could not be written to the database "
                                    f"({describe_error(exc)}); stopping. Nothing is lost: the "
                                    "images will be processed again."))
        self._control.cancel()

    # -- progress -----------------------------------------------------------------------
    def progress(self) -> RunProgress:
        with self._lock:
            done, failed, detections = self._done, self._failed, self._detections
        status = self.source.status()
        elapsed = time.monotonic() - self._started
        rate = (done + failed) / elapsed if elapsed > 0 and done + failed else 0.0
        before_done = status.get("done_before", 0)
        before_failed = status.get("failed_before", 0)
        total = status.get("total")
        eta = None
        if total is not None and rate > 0:
            eta = max(0, total - before_done - before_failed - done - failed) / rate
        paused = self._control.paused
        return RunProgress(
            done=before_done + done, total=total, unit=status.get("unit", "images"),
            failed=before_failed + failed,
            rate=rate, eta_s=status.get("eta_s", eta), message=status.get("message", ""),
            paused=paused, detections=detections,
            devices=tuple(w.status() for w in self._workers),
            state="paused" if paused else status.get("state", "working"),
            posted=status.get("posted"), waiting_to_post=status.get("waiting_to_post", 0),
            resent=status.get("resent", 0), offline_since=status.get("offline_since"))


def split_results(batch: WorkBatch, results):
    """A written batch's results that succeeded, the (item, result) pairs that failed, and
    the detections of the successful ones (every pool's progress counts)."""
    ok = [p.result for p in results if p.result.error is None]
    failed = [(item, p.result) for item, p in zip(batch.items, results)
              if p.result.error is not None]
    return ok, failed, sum(len(r.detections) for r in ok)
