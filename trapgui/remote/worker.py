"""The remote-jobs worker: the engine's device pool over Antenna tasks, plus a poster.

    RemoteTaskSource (claims, downloads) ──► DevicePool (one worker per device) ──►
    RemoteSink (catalogue + outbox, one transaction) ──► ResultPoster (posts, with backoff)

``run(emit, control)`` is a job (``core.jobs``). ``control.cancel()`` stops claiming: what is
claimed is downloaded, processed and posted, then ``run`` returns. ``control.abort()`` stops
at once: unprocessed claims and unposted results stay in the outbox for the next start (a
claimed task is never dropped).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from trapgui.core.errors import AuthenticationError, RemoteError, TrapguiError
from trapgui.core.jobs import Emit, JobControl, LogLine, RunSummary, safe_emit
from trapgui.pipeline.device_pool import DevicePool
from trapgui.core.tracking_params import TrackingParams
from trapgui.pipeline.model_set import ModelSet, registry_loader
from trapgui.pipeline.tracking_job import track_after_run
from trapgui.remote.client import AntennaClient
from trapgui.remote.local_images import RemoteImageCatalogue
from trapgui.remote.outbox import Outbox, ResultPoster
from trapgui.remote.pipelines import RemotePipeline
from trapgui.remote.task_sink import RemoteSink
from trapgui.remote.task_source import RemoteTaskSource
from trapgui.remote.worker_types import WorkerConfig

__all__ = ["RemoteWorker", "WorkerConfig"]

log = logging.getLogger(__name__)


class RemoteWorker:
    def __init__(self, client: AntennaClient, db, store, pipelines: Sequence[RemotePipeline],
                 cache_dir: Path, config: WorkerConfig | None = None, *,
                 model_loader: Callable | None = None, cutoff_hour: int = 12,
                 tracking: TrackingParams | None = None, track: bool = True):
        """``model_loader(pipeline, device, store, config) -> ModelSet`` replaces the
        catalogue loader (tests). ``tracking``: the tracker's settings for the nights of the
        "remote" traps this run wrote (``track`` False: none)."""
        if not pipelines:
            raise TrapguiError("Choose at least one pipeline to process.")
        self.client = client
        self.db = db
        self.store = store
        self.pipelines = {p.slug: p for p in pipelines}
        self.config = config or WorkerConfig()
        self.model_loader = model_loader
        self.tracking = tracking
        self.track = track
        self.outbox = Outbox(db, client.base_url)
        self.images = RemoteImageCatalogue(db, cache_dir, client.base_url, cutoff_hour)
        self.poster = ResultPoster(client, self.outbox, on_posted=self._count_posted)
        self.worker_name = f"remote:{socket.gethostname()}:{os.getpid()}"
        self._posted = 0
        self._lock = threading.Lock()
        self._wake_poster = threading.Event()

    def _spec(self, slug: str):
        return self.pipelines[slug].spec(
            classification_batch_size=self.config.classification_batch_size,
            top_k=self.config.top_k)

    def _load(self, slug: str, device) -> ModelSet:
        if self.model_loader is not None:
            return self.model_loader(self.pipelines[slug], device, self.store, self.config)
        return registry_loader(self.store, self._spec(slug))(device)

    # -- the job --------------------------------------------------------------------------
    def run(self, emit: Emit | None = None, control: JobControl | None = None) -> RunSummary:
        emit = safe_emit(emit)
        control = control or JobControl()
        started = time.monotonic()
        emit(LogLine("info", f"Connecting to {self.client.base_url} for pipelines "
                             f"{', '.join(self.pipelines)}."))
        try:  # a refused token is known before spending time on loading models
            self.client.list_jobs(list(self.pipelines))
        except AuthenticationError as exc:
            emit(LogLine("error", str(exc)))
            return self._summary("crashed", None, started, str(exc))
        except RemoteError as exc:  # unreachable for now: the feeder keeps trying with backoff
            emit(LogLine("warning", f"Listing jobs failed: {exc}"))
        source = RemoteTaskSource(self.client, self.outbox, self.images, list(self.pipelines),
                                  self.config, emit)
        source.posted_count = lambda: self._posted
        sink = RemoteSink(self.db, self.outbox, self.pipelines, self.store,
                          worker_name=self.worker_name, on_stored=lambda items: (
                              source.answered(items), self._wake_poster.set()))
        pool = DevicePool(source, sink, {slug: self._spec(slug) for slug in self.pipelines},
                          self._load, devices=self.config.devices,
                          batch_size=self.config.batch_size)
        poster_stop = threading.Event()
        errors: list[str] = []
        poster = threading.Thread(target=self._post_loop, args=(poster_stop, control, errors),
                                  name="remote-poster", daemon=True)
        poster.start()
        try:
            outcome = pool.run(emit, control)  # loads models first: a missing one raises here
        finally:
            poster_stop.set()
            self._wake_poster.set()
            poster.join(timeout=self.config.final_post_timeout_s)
        if sink.run_ids:
            sink.end(outcome.status, outcome.notes)
            if self.track and not control.aborted:
                self._track(sink, emit)
        if not control.aborted:
            self._final_flush(errors)
        error = source.last_error if source.last_error and control.aborted else None
        error = error or (errors[0] if errors else None) or (
            str(outcome.error) if outcome.error else None)
        status = "crashed" if error else outcome.status
        emit(pool.progress())
        return self._summary(status, outcome, started, error)

    def _track(self, sink: RemoteSink, emit: Emit) -> None:
        """The remote images are catalogued in "remote" traps' nights like a folder's: track
        the nights this run wrote (after the results are safe; never fails the run)."""
        for slug, run_id in sink.run_ids.items():
            try:
                track_after_run(self.db, sink.pipeline_ids[slug], run_id, self.tracking, emit)
            except TrapguiError as exc:
                emit(LogLine("warning", f"Tracking the images of {slug} failed: {exc}"))

    def _post_loop(self, stop: threading.Event, control: JobControl, errors: list[str]) -> None:
        """Posts as results arrive; the waits between retries end when ``stop`` is set."""
        while not stop.is_set():
            self._wake_poster.wait(1.0)
            self._wake_poster.clear()
            if stop.is_set():
                return
            try:
                self.poster.flush(stop=stop)
            except AuthenticationError as exc:
                errors.append(str(exc))
                control.abort()
                return
            except Exception as exc:  # noqa: BLE001 - reported; results stay in the outbox
                log.exception("Posting results failed")
                errors.append(f"Posting results stopped after an unexpected error: "
                              f"{type(exc).__name__}: {exc}")
                return

    def _final_flush(self, errors: list[str]) -> None:
        try:
            self.poster.flush(deadline=time.monotonic() + self.config.final_post_timeout_s)
        except AuthenticationError as exc:
            errors.append(str(exc))

    def _count_posted(self, n: int) -> None:
        with self._lock:
            self._posted += n

    def _summary(self, status: str, outcome, started: float, error: str | None) -> RunSummary:
        counts = self.outbox.counts()
        done = outcome.done if outcome else 0
        failed = outcome.failed if outcome else 0
        elapsed = outcome.elapsed_s if outcome else time.monotonic() - started
        return RunSummary(
            run_id=None, pipeline_id=None, status=status, done=done, failed=failed,
            detections=outcome.detections if outcome else 0, elapsed_s=elapsed,
            images_per_s=(done + failed) / elapsed if elapsed > 0 else 0.0,
            remaining=counts["claimed"], devices=tuple(outcome.devices) if outcome else (),
            notes=tuple(outcome.notes) if outcome else (), posted=self._posted,
            unposted=counts["result_ready"], error=error)
