"""A run on a Dask cluster: this process claims, Dask workers decode and process, one writer
stores. The cluster counterpart of :class:`~trapgui.pipeline.device_pool.DevicePool`:

    queue ──claim a batch──► submit ──► Dask worker × N (decode from shared storage, the same
      ▲   (bounded in flight)            BatchProcessor, models loaded once per worker)
      │                                        │ ImageResults
      └── release / renew leases ◄── writer (one thread, one transaction a batch) ◄─┘

At most ``max_in_flight`` batches are claimed and submitted at a time (and no more while the
writer is behind), so memory and claims stay flat however large the archive. A batch whose
worker dies is run again elsewhere by Dask (``allowed-failures``); one that keeps killing its
workers is split and its images tried one by one, and an image that kills workers on its own
fails with that reason. When the scheduler is lost, the run stops: results that arrived are
written, every other claim goes back to the queue, and the run ends with a
:class:`~trapgui.pipeline.cluster_config.ClusterError` sentence.

``run(emit, control) -> PoolOutcome`` is a ``core.jobs`` job like ``DevicePool.run``: the same
events (``RunProgress`` with one ``DeviceStatus`` per Dask worker, ``BatchCommitted``,
``ItemFailed``, ``LogLine``) and the same pause / cancel / abort.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from dataclasses import dataclass

from trapgui.core.jobs import (BatchCommitted, DeviceStatus, Emit, ItemFailed, JobControl,
                               LogLine, RunProgress, safe_emit)
from trapgui.core.types import ImageResult
from trapgui.pipeline.cluster_config import ClusterError
from trapgui.pipeline.cluster_source import ClusterSink, ClusterSource
from trapgui.pipeline.cluster_worker import (BatchOutcome, ClusterPipeline, WorkerReport,
                                             load_models, process_batch)
from trapgui.pipeline.device_pool import PROGRESS_EVERY_S, PoolOutcome, split_results
from trapgui.pipeline.processor import ProcessedImage, describe_error
from trapgui.pipeline.work import WorkBatch
from trapgui.pipeline.writer import ResultWriter

log = logging.getLogger(__name__)

GPU_SHARE = 0.5  # of a worker's GPU resource per batch: one decodes while one is on the GPU
POLL_S = 0.2


@dataclass
class _Flight:
    future: object
    batch: WorkBatch | None  # None: a warm-up (model loading) task
    address: str | None = None  # warm-ups: the worker it is pinned to


class _WorkerStats:
    def __init__(self, report: WorkerReport):
        self.report = report
        self.first_seen = time.monotonic()
        self.images_done = 0


class ClusterPool:
    def __init__(self, client, source: ClusterSource, sink: ClusterSink,
                 pipeline: ClusterPipeline, *, batch_size: int, cluster_info: dict,
                 max_in_flight: int | None = None):
        self.client = client
        self.source = source
        self.sink = sink
        self.pipeline = pipeline
        self.batch_size = batch_size
        self.cluster_info = cluster_info
        self.max_in_flight = max_in_flight
        self.name = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}:dask"
        self._done_q: queue.Queue = queue.Queue()
        self._flights: dict[str, _Flight] = {}
        self._count = 0
        self._lock = threading.Lock()
        self._stats: dict[str, _WorkerStats] = {}
        self._bad: dict[str, str] = {}  # worker address -> why its models did not load
        self._scheduler_workers: dict[str, dict] = {}
        self._busy: set[str] = set()
        self._said_paused: set[str] = set()
        self._batch_worker: dict[int, str] = {}  # id(batch) -> worker address
        self._done = self._failed = self._detections = 0
        self._notes: list[str] = []
        self._lost = False  # the scheduler is gone
        self._write_error: BaseException | None = None
        self._cancelling = False
        self._started = time.monotonic()
        self._last_tick = 0.0

    # -- the job ------------------------------------------------------------------------
    def run(self, emit: Emit, control: JobControl) -> PoolOutcome:
        self._emit = emit = safe_emit(emit)
        self._control = control
        self._started = time.monotonic()
        if control.cancelled:
            return self._outcome("cancelled", None)
        reports = self._warm_up()  # raises ClusterError before anything is claimed
        if reports is None:
            self._cancel_flights()
            return self._outcome("cancelled", None)
        self.sink.begin_cluster(reports[0].models, reports, self.cluster_info)
        self.source.start(None, control)
        writer = ResultWriter(self.sink, self._written, self._write_failed)
        status, crash = "crashed", None
        try:
            writer.start()
            self._dispatch(writer)
            status = "cancelled" if control.cancelled else "finished"
        except KeyboardInterrupt as exc:
            crash, status = exc, "cancelled"
            control.abort()
        except BaseException as exc:  # noqa: BLE001 - recorded, then re-raised by the caller
            crash = exc
            control.cancel()
        finally:
            self._cancel_flights()
            writer.close()  # results that arrived are written, even after an abort
            held = self.source.held()
            self.source.give_back(self.name)
            self.source.close()
        if self._lost and crash is None:
            status = "crashed"
            crash = ClusterError(
                f"The connection to the Dask scheduler at {self._address()} was lost; the run "
                f"stopped and the {held} image{'' if held == 1 else 's'} in flight went back "
                "to the queue.",
                hint="Start the cluster again and run the same command to go on.")
        if self._write_error is not None and crash is None:
            status, crash = "crashed", self._write_error
        return self._outcome(status, crash)

    def _outcome(self, status: str, crash: BaseException | None) -> PoolOutcome:
        notes = list(self._notes)
        for stats in self._stats.values():
            notes += [f"{stats.report.where}: {n}" for n in stats.report.notes]
        if self._stats:
            notes.append(f"Processed on {len(self._stats)} Dask worker"
                         f"{'s' if len(self._stats) != 1 else ''}: "
                         + "; ".join(f"{s.report.address} ({s.report.host}, "
                                     f"{s.report.device_name}): {s.images_done} images"
                                     for s in self._stats.values()))
        progress = self.progress()
        self._emit(progress)
        return PoolOutcome(status, self._done, self._failed, self._detections,
                           time.monotonic() - self._started, list(progress.devices), notes,
                           crash)

    # -- start: workers and their models ------------------------------------------------
    def _warm_up(self) -> list[WorkerReport] | None:
        """Wait for workers and load the models on every worker there is (each loads them
        once and keeps them). Returns the reports once one worker is ready, None if cancelled
        meanwhile; raises ClusterError when every worker failed to load them."""
        said_waiting = False
        pinned: set[str] = set()
        reports: list[WorkerReport] = []
        last_look = 0.0
        while True:
            if self._control.cancelled:
                return None
            if time.monotonic() - last_look >= 0.5:
                last_look = time.monotonic()
                self._refresh_workers()
            for address in self._scheduler_workers:
                if address not in pinned and address not in self._bad:
                    pinned.add(address)
                    self._submit_warm_up(address)
            for flight, fut in self._finished(POLL_S):
                report = self._warm_up_done(flight, fut)
                if report is not None:
                    reports.append(report)
            if self._lost:
                raise ClusterError(f"The connection to the Dask scheduler at "
                                   f"{self._address()} was lost before the run started; "
                                   "nothing was claimed.")
            if reports:
                return reports
            pending = [f for f in self._flights.values() if f.address in self._scheduler_workers]
            if self._bad and not pending:
                raise ClusterError(next(iter(self._bad.values())),
                                   hint="The models folder (and the images) must be on storage "
                                   "the workers share with this computer, at the same path.")
            if not self._scheduler_workers and not said_waiting:
                said_waiting = True
                self._emit(LogLine("info", "Waiting for Dask workers to join the cluster."))
            if time.monotonic() - self._last_tick >= PROGRESS_EVERY_S:
                self._last_tick = time.monotonic()
                self._emit(self.progress())

    def _submit_warm_up(self, address: str) -> None:
        fut = self.client.submit(load_models, self.pipeline, workers=[address],
                                 allow_other_workers=False, pure=False,
                                 key=f"trapgui-load-models-{uuid.uuid4().hex[:12]}")
        self._track(fut, _Flight(fut, None, address))

    def _warm_up_done(self, flight: _Flight, fut) -> WorkerReport | None:
        if fut.status == "cancelled":
            if not self._cancelling:
                self._lost = True
            return None
        if fut.status != "finished":  # the worker left while loading; a new one is warmed up
            return None
        outcome: BatchOutcome = fut.result()
        if outcome.load_error is not None:
            self._worker_failed_to_load(outcome.address or flight.address, outcome.load_error)
            return None
        self._worker_ready(outcome.worker)
        return outcome.worker

    def _worker_ready(self, report: WorkerReport) -> None:
        with self._lock:
            if report.address in self._stats:
                return
            self._stats[report.address] = _WorkerStats(report)
        self._emit(LogLine("info", f"{report.where} is ready ({report.device_name})."))

    def _worker_failed_to_load(self, address: str | None, reason: str) -> None:
        if address and address not in self._bad:
            self._bad[address] = reason
            self._emit(LogLine("warning", f"{reason} It gets no work in this run."))

    # -- the loop -----------------------------------------------------------------------
    def _dispatch(self, writer: ResultWriter) -> None:
        control = self._control
        drained = False
        while not control.aborted:
            if time.monotonic() - self._last_tick >= PROGRESS_EVERY_S:
                self._tick()
            if self._lost:
                return
            submitting = (not control.cancelled and not control.paused and not drained
                          and self._write_error is None)
            while submitting and self._batches() < self._capacity() \
                    and writer.pending() < self._capacity():
                batch = self.source.claim(self.name, self.batch_size)
                if batch is None:
                    drained = True
                    break
                self._submit(batch)
            if not self._batches() and (drained or control.cancelled
                                        or self._write_error is not None):
                return
            for flight, fut in self._finished(POLL_S):
                if flight.batch is None:
                    self._warm_up_done(flight, fut)
                else:
                    self._batch_done(flight, fut, writer)
                if self._lost:
                    return

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        if self.client.status != "running":
            self._lost = True
            return
        try:
            self.source.keep_alive()
        except Exception as exc:  # noqa: BLE001 - reported; leases may then expire
            log.warning("Keeping the claims alive failed: %s", describe_error(exc))
        self._refresh_workers()
        self._emit(self.progress())

    def _refresh_workers(self) -> None:
        try:
            info = self.client.scheduler_info(n_workers=-1)
            processing = self.client.processing()
        except Exception as exc:  # noqa: BLE001 - the scheduler is gone
            if self.client.status != "running" or isinstance(exc, (OSError, TimeoutError)):
                self._lost = True
            return
        self._scheduler_workers = dict(info.get("workers", {}))
        self._busy = {w for w, keys in processing.items() if keys}
        for address, worker in self._scheduler_workers.items():
            if worker.get("status") == "paused" and address not in self._said_paused:
                self._said_paused.add(address)
                limit = worker.get("memory_limit") or 0
                self._emit(LogLine("warning", (
                    f"Dask worker {address} on {worker.get('host', '?')} is paused: it uses "
                    "more than Dask's pause fraction of its memory limit"
                    + (f" ({limit / 2**30:.1f} GiB)" if limit else "") + " and takes no "
                    "batches until it has memory again; give the workers more memory.")))

    def _capacity(self) -> int:
        if self.max_in_flight:
            return self.max_in_flight
        threads = sum(int(w.get("nthreads", 1)) for a, w in self._scheduler_workers.items()
                      if a not in self._bad)
        return max(2, 2 * threads)

    def _batches(self) -> int:
        return sum(1 for f in self._flights.values() if f.batch is not None)

    def _submit(self, batch: WorkBatch) -> None:
        items = [(i.image_id, i.name, (i.ref.width, i.ref.height)) for i in batch.items]
        kwargs: dict = {"pure": False, "key": f"trapgui-batch-{uuid.uuid4().hex[:12]}"}
        good = [a for a in self._scheduler_workers if a not in self._bad]
        gpu = [a for a in good if self._scheduler_workers[a].get("resources", {}).get("GPU", 0) > 0]
        if gpu:  # batches go to the GPU workers, two at most on each GPU at a time
            kwargs["resources"] = {"GPU": GPU_SHARE}
        if self._bad and good:
            kwargs.update(workers=gpu or good, allow_other_workers=False)
        fut = self.client.submit(process_batch, self.pipeline, items, **kwargs)
        self._track(fut, _Flight(fut, batch))

    def _track(self, fut, flight: _Flight) -> None:
        self._flights[fut.key] = flight
        fut.add_done_callback(self._done_q.put)  # on a Dask callback thread

    def _finished(self, wait_s: float):
        """(flight, future) of every task finished by now, waiting up to ``wait_s`` for one."""
        out = []
        try:
            fut = self._done_q.get(timeout=wait_s)
            while True:
                flight = self._flights.pop(fut.key, None)
                if flight is not None:
                    out.append((flight, fut))
                fut = self._done_q.get_nowait()
        except queue.Empty:
            pass
        return out

    def _batch_done(self, flight: _Flight, fut, writer: ResultWriter) -> None:
        batch = flight.batch
        if fut.status == "cancelled":
            if not self._cancelling:
                self._lost = True
            return
        if fut.status == "error":
            self._batch_erred(batch, fut.exception(), writer)
            return
        try:
            outcome: BatchOutcome = fut.result()
        except Exception as exc:  # noqa: BLE001 - the result was lost on the way back
            self._batch_erred(batch, exc, writer)
            return
        if outcome.load_error is not None:
            self._worker_failed_to_load(outcome.address, outcome.load_error)
            if not [a for a in self._scheduler_workers if a not in self._bad]:
                raise ClusterError(outcome.load_error)
            self._submit(batch)  # the same claims, to another worker
            return
        report = outcome.worker
        self._worker_ready(report)
        by_id = {r.image_id: r for r in outcome.results}
        results = [ProcessedImage(by_id.get(i.image_id) or ImageResult(
            i.image_id, error=f"No result came back from {report.where}."))
            for i in batch.items]
        batch.device_seconds = outcome.seconds
        with self._lock:
            self._batch_worker[id(batch)] = report.address
        writer.put(batch, results)

    def _batch_erred(self, batch: WorkBatch, exc: BaseException, writer: ResultWriter) -> None:
        from distributed.scheduler import KilledWorker

        if isinstance(exc, KilledWorker) and len(batch.items) > 1:
            self._notes.append(f"A batch of {len(batch.items)} images was on Dask workers that "
                               "died each time; its images were tried one at a time.")
            for item in batch.items:
                self._submit(WorkBatch(batch.worker, [item]))
            return
        if isinstance(exc, KilledWorker):
            reason = ("the Dask workers that processed this image died each time (killed, out "
                      "of memory or crashed); skipped (Retry failed images to try it again)")
        else:
            reason = f"Processing failed on the Dask cluster: {describe_error(exc)}"
        writer.put(batch, [ProcessedImage(ImageResult(i.image_id, error=reason))
                           for i in batch.items])

    def _cancel_flights(self) -> None:
        futures = [f.future for f in self._flights.values()]
        self._flights.clear()
        if futures and self.client.status == "running":
            self._cancelling = True
            try:
                self.client.cancel(futures)
            except Exception:  # noqa: BLE001 - the scheduler forgets them when we go
                pass

    def _address(self) -> str:
        return self.cluster_info.get("address") or "?"

    # -- writer callbacks (writer thread) -------------------------------------------------
    def _written(self, batch: WorkBatch, results, written: int) -> None:
        with self._lock:
            address = self._batch_worker.pop(id(batch), None)
        if written == 0:
            self._emit(LogLine("warning", f"A batch of {len(batch.items)} images was taken "
                                          "over by another worker; not written."))
            return
        ok, failed, detections = split_results(batch, results)
        with self._lock:
            self._done += len(ok)
            self._failed += len(failed)
            self._detections += detections
            if address in self._stats:
                self._stats[address].images_done += len(results)
        for item, r in failed:
            self._emit(ItemFailed(item.image_id, item.name, r.error or ""))
        self._emit(BatchCommitted(tuple(batch.image_ids), detections,
                                  f"dask:{address}" if address else "dask"))
        self._emit(self.progress())

    def _write_failed(self, batch: WorkBatch, exc: BaseException) -> None:
        self._write_error = exc
        with self._lock:
            self._batch_worker.pop(id(batch), None)
        try:
            self.sink.abandon(batch)
        except Exception:  # noqa: BLE001 - the leases expire and the work is handed out again
            log.warning("Could not give back a batch after a failed write.")
        self._emit(LogLine("error", f"Results could not be written to the database "
                                    f"({describe_error(exc)}); stopping. Nothing is lost: the "
                                    "images will be processed again."))
        self._control.cancel()

    # -- progress -----------------------------------------------------------------------
    def devices(self) -> tuple[DeviceStatus, ...]:
        now = time.monotonic()
        with self._lock:
            stats = dict(self._stats)
        out = []
        for address in sorted(set(stats) | set(self._scheduler_workers)):
            s = stats.get(address)
            info = self._scheduler_workers.get(address, {})
            gone = address not in self._scheduler_workers
            if s is None:
                state = "error" if address in self._bad else "loading"
                name = f"{info.get('host', '?')}: {info.get('nthreads', '?')} threads"
                rate, done = 0.0, 0
            else:
                state = ("stopped" if gone else "working" if address in self._busy else
                         "paused" if self._control.paused or info.get("status") == "paused"
                         else "idle")
                name = f"{s.report.host}: {s.report.device_name}"
                elapsed = now - s.first_seen
                rate, done = (s.images_done / elapsed if elapsed > 0 else 0.0), s.images_done
            out.append(DeviceStatus(f"dask:{address}", name, state, self.batch_size, rate, done))
        return tuple(out)

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
        control = getattr(self, "_control", None)
        paused = bool(control and control.paused)
        waiting = not self._scheduler_workers
        state = ("paused" if paused else "stopping" if control and control.cancelled else
                 "waiting" if waiting else "working")
        return RunProgress(
            done=before_done + done, total=total, unit="images", failed=before_failed + failed,
            rate=rate, eta_s=eta, message="Waiting for Dask workers" if waiting else "",
            paused=paused, detections=detections, devices=self.devices(), state=state)
