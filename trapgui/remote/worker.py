"""The remote-jobs worker: claim tasks, download, process on every device, post results.

Threads (all plain Python)::

    feeder ── claim tasks (outbox first) ──► download pool ──► DynamicBatcher
                                                                   │ batches of ready images
    device worker × N (one per device: own models, torch threads) ◄┘
        └─ BatchProcessor.process_with_scores → local catalogue (queue.complete) → outbox
    poster ── posts outbox results with retries and backoff

``stop()`` stops claiming; what was already claimed is downloaded, processed and posted, then
``run`` returns. ``abort()`` stops at once: unprocessed claims stay in the outbox and are
processed on the next start (a claimed task is never dropped).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trapgui.core.errors import AuthenticationError, RemoteError, TrapguiError
from trapgui.pipeline.events import BatchCommitted, Log
from trapgui.remote.address_policy import AddressPolicy
from trapgui.remote.batcher import DynamicBatcher
from trapgui.remote.client import AntennaClient, TaskInfo
from trapgui.remote.devices import DeviceRunner, ProcessedTask, make_runners
from trapgui.remote.downloader import Download, ImageDownloader
from trapgui.remote.local_images import RemoteImageCatalogue
from trapgui.remote.outbox import ComputedResult, Outbox, ResultPoster
from trapgui.remote.pipelines import RemotePipeline
from trapgui.remote.schemas import error_result
from trapgui.remote.worker_types import RemoteProgress, RemoteSummary, WorkerConfig

__all__ = ["RemoteProgress", "RemoteSummary", "RemoteWorker", "WorkerConfig"]

log = logging.getLogger(__name__)


@dataclass
class _Item:
    """A task on its way through the pipeline."""

    job_id: int
    slug: str
    task: TaskInfo
    download: Download | None = None


class RemoteWorker:
    def __init__(self, client: AntennaClient, db, store, pipelines: Sequence[RemotePipeline],
                 cache_dir: Path, config: WorkerConfig | None = None, *,
                 on_event: Callable[[object], None] | None = None,
                 model_loader: Callable | None = None,
                 cutoff_hour: int = 12):
        if not pipelines:
            raise TrapguiError("Choose at least one pipeline to process.")
        self.client = client
        self.db = db
        self.store = store
        self.pipelines = {p.slug: p for p in pipelines}
        self.config = config or WorkerConfig()
        self.on_event = on_event
        self.model_loader = model_loader
        self.outbox = Outbox(db, client.base_url)
        self.images = RemoteImageCatalogue(db, cache_dir, client.base_url, cutoff_hour)
        self.poster = ResultPoster(client, self.outbox, on_posted=self._count_posted)
        self.batcher: DynamicBatcher[_Item] = DynamicBatcher(self.config.batch_size,
                                                             self.config.batch_timeout_s)
        self._stop_claiming = threading.Event()
        self._abort = threading.Event()
        self._feeder_done = threading.Event()
        self._work_posted = threading.Event()
        self._poster_stop = threading.Event()
        self._lock = threading.Lock()
        self._in_process: set[tuple[int, str]] = set()  # (job, task id) claimed, not answered
        self._done = self._failed = self._posted = self._detections = 0
        self._started = 0.0
        self._error: str | None = None
        self._active_jobs: list[int] = []
        self._state = "starting"
        self._drained: set[int] = set()  # jobs whose last claim came back empty
        self._listed_once = False
        self._last_error: str | None = None
        self.downloader: ImageDownloader | None = None
        self.runners: list[DeviceRunner] = []
        self.worker_name = f"remote:{socket.gethostname()}:{os.getpid()}"

    # ---- control -----------------------------------------------------------------------
    def stop(self) -> None:
        """Finish what is claimed (download, process, post), then return from ``run``."""
        self._stop_claiming.set()
        self.batcher.wake()

    def abort(self) -> None:
        """Stop now; unprocessed claims stay in the outbox for the next start."""
        self._abort.set()
        self._poster_stop.set()
        self.stop()
        if self.downloader is not None:
            self.downloader.shutdown(wait=False)

    @property
    def stopping(self) -> bool:
        return self._stop_claiming.is_set()

    # ---- main --------------------------------------------------------------------------
    def run(self) -> RemoteSummary:
        """Blocks until stopped (or, with ``exit_when_idle``, until there is no more work)."""
        self._started = time.monotonic()
        self._emit(Log("info", f"Connecting to {self.client.base_url} for pipelines "
                               f"{', '.join(self.pipelines)}."))
        try:  # a refused token is known before spending time on loading models
            self.client.list_jobs(list(self.pipelines))
        except AuthenticationError as exc:
            self._fatal(str(exc))
            return self._summary()
        except RemoteError as exc:  # unreachable for now: the feeder keeps trying with backoff
            self._note_error(f"Listing jobs failed: {exc}")
        self.runners = make_runners(self, self.config.devices)  # loads models; raises clearly
        self._started = time.monotonic()  # speed counts processing, not model loading
        self.downloader = ImageDownloader(
            threads=self.config.download_threads, max_bytes=self.config.max_image_bytes,
            timeout=self.config.download_timeout, deadline_s=self.config.download_deadline_s,
            prepare=self.runners[0].decode,
            policy=AddressPolicy.for_server(self.client.base_url),
            describe=lambda item: f"{item.task.image_id} (task {item.task.id})")
        threads = [threading.Thread(target=self._guard(r.loop), name=f"remote-{r.label}",
                                    daemon=True) for r in self.runners]
        feeder = threading.Thread(target=self._guard(self._feed), name="remote-feeder", daemon=True)
        poster = threading.Thread(target=self._guard(self._post_loop), name="remote-poster",
                                  daemon=True)
        for t in (*threads, feeder, poster):
            t.start()
        try:
            ticker = 0.0
            while any(t.is_alive() for t in threads) or feeder.is_alive():
                feeder.join(0.2)
                if time.monotonic() - ticker > 1.0:
                    ticker = time.monotonic()
                    self._progress()
        except KeyboardInterrupt:
            self.stop()
            raise
        finally:
            self._stop_claiming.set()
            self.batcher.wake()
            for t in threads:
                t.join()
            self._poster_stop.set()  # the poster's retry waits end; the final flush has a deadline
            self._work_posted.set()
            poster.join()
            self.downloader.shutdown(wait=not self._abort.is_set())
        if not self._abort.is_set():
            self._final_flush()
        return self._summary()

    def _guard(self, fn: Callable[[], None]) -> Callable[[], None]:
        def run():
            try:
                fn()
            except AuthenticationError as exc:
                self._fatal(str(exc))
            except Exception as exc:  # noqa: BLE001 - reported, then everything stops cleanly
                log.exception("Remote worker thread failed")
                self._fatal(f"The remote worker stopped after an unexpected error: "
                            f"{type(exc).__name__}: {exc}")
        return run

    def _fatal(self, message: str) -> None:
        with self._lock:
            if self._error is None:
                self._error = message
        self._emit(Log("error", message))
        self.abort()

    # ---- feeder ------------------------------------------------------------------------
    def _feed(self) -> None:
        """Claims tasks while the pipeline has room for them. A pass over the open jobs that
        claims nothing (the jobs are drained, or other workers hold their last tasks) waits
        with exponential backoff before listing the jobs again."""
        try:
            self._resume_unfinished()
            idle_wait = self.config.poll_min_s
            jobs: list[tuple[int, str]] = []
            claimed_this_pass = False
            while not self._stop_claiming.is_set():
                room = self.config.batch_size * (1 + self.config.prefetch_batches)
                if self.batcher.outstanding() >= room:
                    self._stop_claiming.wait(0.02)
                    continue
                if not jobs:
                    if not claimed_this_pass and self._listed_once:
                        self._state = "idle" if self.batcher.outstanding() == 0 else self._state
                        if self._stop_claiming.wait(idle_wait):
                            break
                        idle_wait = min(idle_wait * 2, self.config.poll_max_s)
                    claimed_this_pass = False
                    listed = self._list_jobs()
                    self._listed_once = True
                    jobs = listed or []
                    self._active_jobs = [j for j, _ in jobs]
                    if listed == [] and self.config.exit_when_idle and self._nothing_left():
                        self._emit(Log("info", "No open job has work left for these pipelines."))
                        break
                    continue
                job_id, slug = jobs[0]
                try:
                    tasks = self.client.claim_tasks(job_id, self.config.batch_size)
                except AuthenticationError:
                    raise
                except RemoteError as exc:
                    self._note_error(f"Claiming tasks of job {job_id} failed: {exc}")
                    jobs.pop(0)
                    continue
                if not tasks:
                    jobs.pop(0)  # drained for now: the next job, or list again
                    self._drained.add(job_id)
                    continue
                self._drained.discard(job_id)
                claimed_this_pass = True
                idle_wait = self.config.poll_min_s
                self._state = "working"
                to_process, again = self.outbox.record_claims(job_id, slug, tasks)
                if again:
                    self._work_posted.set()
                self._submit(job_id, slug, to_process)
        finally:
            self._feeder_done.set()
            self.batcher.wake()


    def _nothing_left(self) -> bool:
        with self._lock:
            busy = bool(self._in_process)
        counts = self.outbox.counts()
        return not busy and self.batcher.outstanding() == 0 and counts["result_ready"] == 0

    def _list_jobs(self) -> list[tuple[int, str]] | None:
        """Open jobs of our pipelines; None when the server could not say."""
        try:
            found = self.client.list_jobs(list(self.pipelines))
        except AuthenticationError:
            raise
        except RemoteError as exc:
            self._note_error(f"Listing jobs failed: {exc}")
            return None
        wanted = set(self.config.job_ids) if self.config.job_ids else None
        return [(j.id, j.pipeline_slug) for j in found
                if j.pipeline_slug in self.pipelines and (wanted is None or j.id in wanted)]

    def _resume_unfinished(self) -> None:
        """Claims left from a stopped or crashed session: process them first."""
        by_job: dict[tuple[int, str], list[TaskInfo]] = {}
        for item in self.outbox.unfinished():
            if item.pipeline_slug not in self.pipelines:
                continue
            if self.config.job_ids and item.job_id not in self.config.job_ids:
                continue
            by_job.setdefault((item.job_id, item.pipeline_slug), []).append(item.as_task())
        for (job_id, slug), tasks in by_job.items():
            self._emit(Log("info", f"Resuming {len(tasks)} task(s) of job {job_id} claimed "
                                   "before the last stop."))
            self._submit(job_id, slug, tasks)

    def _submit(self, job_id: int, slug: str, tasks: Sequence[TaskInfo]) -> None:
        for task in tasks:
            key = (job_id, task.id)
            with self._lock:
                if key in self._in_process:
                    continue  # delivered again while we still work on it: answered once
                self._in_process.add(key)
            item = _Item(job_id, slug, task)
            dest = self.images.image_path(job_id, task.image_id, task.image_url)
            self.batcher.expect(1)
            try:
                future = self.downloader.submit(item, task.image_url, dest)
            except RuntimeError:  # pool shut down by abort(): the claim stays in the outbox
                self.batcher.forget(1)
                with self._lock:
                    self._in_process.discard(key)
                continue
            future.add_done_callback(self._downloaded)

    def _downloaded(self, future) -> None:
        if future.cancelled():
            self.batcher.forget(1)
            return
        download: Download = future.result()
        item: _Item = download.key
        item.download = download
        self.batcher.put(item)

    # ---- device side (called by DeviceRunner threads) ------------------------------------
    def next_batch(self) -> list[_Item] | None:
        """A batch for a device thread; None when the worker is finished."""
        while True:
            if self._abort.is_set():
                return None
            batch = self.batcher.next_batch(0.2)
            if batch:
                return batch
            if self._feeder_done.is_set() and self.batcher.outstanding() == 0:
                return None

    def batch_done(self, items: Sequence[_Item], processed: Sequence[ProcessedTask],
                   device: str) -> None:
        results = [ComputedResult(p.item.task.id, p.result, p.error, p.local_image_id)
                   for p in processed]
        self.outbox.record_results(results)
        failures = sum(1 for p in processed if p.error)
        dets = sum(p.detections for p in processed)
        with self._lock:
            for p in processed:
                self._in_process.discard((p.item.job_id, p.item.task.id))
            self._done += len(processed)
            self._failed += failures
            self._detections += dets
        for p in processed:
            if p.error:
                self._emit(Log("warning", f"Image {p.item.task.image_id} (task {p.item.task.id}): "
                                          f"{p.error}"))
        image_ids = [p.local_image_id for p in processed if p.local_image_id is not None]
        if image_ids:
            self._emit(BatchCommitted(image_ids, dets, device))
        self._work_posted.set()
        self._progress()

    def error_for(self, item: _Item, reason: str) -> ProcessedTask:
        return ProcessedTask(item, error_result(reason, item.task.image_id), reason, None, 0)

    # ---- posting -----------------------------------------------------------------------
    def _post_loop(self) -> None:
        """Posts as results arrive. Retries back off inside ``flush`` until ``_poster_stop``
        (set when processing has ended, or on abort); ``run`` then makes one last attempt
        with a deadline, and whatever is still unposted stays in the outbox."""
        while not self._poster_stop.is_set():
            self._work_posted.wait(1.0)
            self._work_posted.clear()
            if self._poster_stop.is_set():
                return
            self.poster.flush(stop=self._poster_stop)

    def _final_flush(self) -> None:
        self._state = "posting"
        try:
            self.poster.flush(deadline=time.monotonic() + self.config.final_post_timeout_s)
        except AuthenticationError as exc:
            self._error = self._error or str(exc)
        self._state = "stopped"
        self._progress()

    def _count_posted(self, n: int) -> None:
        with self._lock:
            self._posted += n

    # ---- reporting ---------------------------------------------------------------------
    def _note_error(self, message: str) -> None:
        log.warning("%s", message)
        self._emit(Log("warning", message))
        self._last_error = message

    def _emit_log(self, level: str, message: str) -> None:
        self._emit(Log(level, message))

    def _emit(self, event: object) -> None:
        if self.on_event is None:
            return
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 - a broken listener never stops the work
            log.exception("Remote worker event listener failed")

    def _rate(self) -> float:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        return self._done / elapsed

    def _eta(self) -> float | None:
        """The contract does not say how many tasks a job has, so the time left is known
        only at the tail: once every open job's claims come back empty, what is left is what
        this worker holds."""
        rate = self._rate()
        jobs = set(self._active_jobs)
        if not rate or not jobs or not jobs <= self._drained:
            return None
        return len(self._in_process) / rate

    def _progress(self) -> None:
        with self._lock:
            counts = self.outbox.counts()
            state = self._state if not self._stop_claiming.is_set() or self._state == "stopped" \
                else "stopping"
            event = RemoteProgress(
                tasks_done=self._done, failures=self._failed, posted=self._posted,
                waiting_to_post=counts["result_ready"], in_flight=len(self._in_process),
                images_per_s=self._rate(), eta_s=self._eta(), jobs=list(self._active_jobs),
                state=state,
                detections=self._detections,
                last_error=self._error or self.poster.last_error or self._last_error)
        self._emit(event)

    def _summary(self) -> RemoteSummary:
        counts = self.outbox.counts()
        notes = [n for r in self.runners for n in r.notes]
        return RemoteSummary(
            tasks_done=self._done, failures=self._failed, posted=self._posted,
            unposted=counts["result_ready"], unfinished=counts["claimed"],
            elapsed_s=time.monotonic() - self._started, images_per_s=self._rate(),
            error=self._error, notes=notes)
