"""Tasks of Antenna jobs as the engine's source.

    feeder ── claim tasks (outbox first) ──► download pool (decode on its threads)
                                                      │ ready images
    device workers ◄── next_batch ◄── DynamicBatcher ◄┘  (catalogued as images of a
                                                           "remote" trap, then processed)

Every claimed task is in the outbox before its image is downloaded. A cancel stops claiming;
what is claimed is still downloaded, processed and posted (the server would otherwise wait
for its visibility timeout); an abort stops at once and leaves the claims in the outbox for
the next start. The feeder polls with exponential backoff and never spins.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from tenacity import Retrying, retry_if_result, stop_never, wait_exponential

from trapgui.core.errors import AuthenticationError, RemoteError
from trapgui.core.jobs import Emit, JobControl, LogLine
from trapgui.core.safe_text import printable
from trapgui.pipeline.work import WorkBatch, WorkItem
from trapgui.remote.address_policy import AddressPolicy
from trapgui.remote.batcher import DynamicBatcher
from trapgui.remote.client import AntennaClient, TaskInfo
from trapgui.remote.downloader import Download, ImageDownloader
from trapgui.remote.local_images import RemoteImageCatalogue, url_file_name
from trapgui.remote.outbox import Outbox
from trapgui.remote.worker_types import WorkerConfig

log = logging.getLogger(__name__)


@dataclass
class ClaimedTask:
    """A task on its way through the engine (``WorkItem.ref`` of remote work)."""

    job_id: int
    slug: str
    task: TaskInfo
    download: Download | None = None

    @property
    def name(self) -> str:
        """What a person recognises first (the image's file name on the server), then the
        server's ids to look it up there."""
        ids = f"image {printable(self.task.image_id)}, task {printable(self.task.id)}, " \
              f"job {self.job_id}"
        file_name = url_file_name(self.task.image_url)
        return f"{file_name} ({ids})" if file_name else ids


class RemoteTaskSource:
    def __init__(self, client: AntennaClient, outbox: Outbox, images: RemoteImageCatalogue,
                 slugs: Sequence[str], config: WorkerConfig, emit: Emit):
        self.client = client
        self.outbox = outbox
        self.images = images
        self.slugs = list(slugs)
        self.config = config
        self._emit = emit
        self.batcher: DynamicBatcher[ClaimedTask] = DynamicBatcher(config.batch_size,
                                                                   config.batch_timeout_s)
        self.downloader: ImageDownloader | None = None
        self._control: JobControl | None = None
        self._feeder: threading.Thread | None = None
        self._feeder_done = threading.Event()
        self._lock = threading.Lock()
        self._in_process: set[tuple[int, str]] = set()  # (job, task) claimed, not yet answered
        self._active_jobs: list[int] = []
        self._drained: set[int] = set()  # jobs whose last claim came back empty
        self.resent = 0
        self.offline_since: float | None = None
        self.last_error: str | None = None
        self.posted_count: Callable[[], int] = lambda: 0  # set by the worker (its poster)

    # -- source -------------------------------------------------------------------------
    def start(self, decoder, control: JobControl) -> None:
        self._control = control
        control.on_change(self.batcher.wake)
        control.on_change(lambda: control.aborted and self.client.abort())
        self.downloader = ImageDownloader(
            threads=self.config.download_threads, max_bytes=self.config.max_image_bytes,
            timeout=self.config.download_timeout, deadline_s=self.config.download_deadline_s,
            prepare=lambda path: decoder(-1, str(path)),
            policy=AddressPolicy.for_server(self.client.base_url),
            describe=lambda claimed: f"{claimed.task.image_id} (task {claimed.task.id})")
        self._feeder = threading.Thread(target=self._feed, name="remote-feeder", daemon=True)
        self._feeder.start()

    def next_batch(self, worker: str, size: int, wait_s: float) -> WorkBatch | None:
        control = self._control
        if control.aborted:
            return None
        ready = self.batcher.next_batch(wait_s)
        if not ready:
            if self._feeder_done.is_set() and self.batcher.outstanding() == 0:
                return None
            self.batcher.wait_for_work(wait_s)  # idle: sleep, never spin
            return WorkBatch(worker, [])
        return self._catalogue(worker, ready)

    def on_device(self, batch: WorkBatch, flying: bool) -> None:
        """Nothing to record: a claimed task stays claimed in the outbox until answered."""

    def give_back(self, worker: str) -> None:
        """Claimed tasks are never given back: they stay in the outbox for the next start."""

    def keep_alive(self) -> None:
        pass

    def status(self) -> dict:
        with self._lock:
            in_process = len(self._in_process)
        counts = self.outbox.counts()
        state, message = self._describe(in_process, counts)
        return {"total": None, "unit": "tasks", "state": state, "message": message,
                "posted": self.posted_count(), "waiting_to_post": counts["result_ready"],
                "resent": self.resent, "offline_since": self.offline_since}

    def close(self) -> None:
        if self.downloader is not None:
            self.downloader.shutdown(wait=not self._control.aborted)
        if self._feeder is not None:
            self._feeder.join(timeout=10)

    def answered(self, items: Sequence[WorkItem]) -> None:
        """The sink has stored results for these tasks."""
        with self._lock:
            for item in items:
                self._in_process.discard((item.ref.job_id, item.ref.task.id))

    # -- what the run is doing, in words --------------------------------------------------
    def _describe(self, in_process: int, counts: dict[str, int]) -> tuple[str, str]:
        jobs = ", ".join(str(j) for j in self._active_jobs) or "-"
        if self.offline_since is not None:
            since = dt.datetime.fromtimestamp(self.offline_since).strftime("%H:%M")
            return "offline", f"Server unreachable since {since}; retrying."
        if self._control is not None and self._control.cancelled and in_process:
            return "stopping", f"Stopping: finishing the {in_process} claimed task(s)."
        if in_process:
            return "working", f"Processing {in_process} task(s) of job {jobs}."
        if counts["result_ready"]:
            return "posting", f"Posting {counts['result_ready']} result(s)."
        if self._feeder_done.is_set() or (self._active_jobs and
                                          set(self._active_jobs) <= self._drained):
            if self.config.exit_when_idle or not self._active_jobs:
                return "complete", "No open job has work left for these pipelines."
            return "waiting", (f"Job {jobs}: no task to claim; other workers may hold the "
                               "last ones.")
        return "waiting", "Waiting for tasks."

    # -- feeder ---------------------------------------------------------------------------
    def _feed(self) -> None:
        try:
            self._resume_unfinished()
            self._claim_loop()
        except AuthenticationError as exc:
            self.last_error = str(exc)
            self._emit(LogLine("error", str(exc)))
            self._control.abort()
        except Exception as exc:  # noqa: BLE001 - reported; the run then stops cleanly
            log.exception("The remote feeder failed")
            self.last_error = f"The remote worker stopped claiming after an unexpected error: " \
                              f"{type(exc).__name__}: {exc}"
            self._emit(LogLine("error", self.last_error))
            self._control.cancel()
        finally:
            self._feeder_done.set()
            self.batcher.wake()

    def _claim_loop(self) -> None:
        """Claims while the device side has room. A pass over the open jobs that claims
        nothing is repeated with exponential backoff (tenacity; the waits end at once on a
        cancel), so an idle worker polls slowly and never spins."""
        config = self.config
        idle_retry = Retrying(
            retry=retry_if_result(lambda outcome: outcome == "idle"), stop=stop_never,
            wait=wait_exponential(multiplier=config.poll_min_s, min=config.poll_min_s,
                                  max=config.poll_max_s),
            sleep=self._control.sleep)
        while not self._control.cancelled:
            if idle_retry(self._one_pass) == "done":
                return

    def _one_pass(self) -> str:
        """``claimed`` (or busy: call again), ``idle`` (nothing to claim now) or ``done``."""
        control, config = self._control, self.config
        if control.cancelled:
            return "done"
        if control.paused:
            control.wait_while_paused(0.5)
            return "claimed"
        room = config.batch_size * (1 + config.prefetch_batches)
        if self.batcher.outstanding() >= room:
            control.sleep(0.02)
            return "claimed"
        jobs = self._list_jobs()
        if jobs is None:  # the server could not say: try again later
            return "idle"
        self._active_jobs = [j for j, _ in jobs]
        if not jobs and config.exit_when_idle and self._nothing_left():
            self._emit(LogLine("info", "No open job has work left for these pipelines."))
            return "done"
        claimed = False
        for job_id, slug in jobs:
            if control.cancelled:
                return "done"
            claimed = self._claim_from(job_id, slug) or claimed
        return "claimed" if claimed else "idle"

    def _claim_from(self, job_id: int, slug: str) -> bool:
        try:
            tasks = self.client.claim_tasks(job_id, self.config.batch_size)
        except AuthenticationError:
            raise
        except RemoteError as exc:
            self._server_problem(f"Claiming tasks of job {job_id} failed: {exc}")
            return False
        self._server_back()
        if not tasks:
            self._drained.add(job_id)
            return False
        self._drained.discard(job_id)
        to_process, again = self.outbox.record_claims(job_id, slug, tasks)
        if again:
            self.resent += again
            self._emit(LogLine("info", f"The server gave {again} task(s) of job {job_id} out "
                                       "again; answering them with the results already "
                                       "computed."))
        self._submit(job_id, slug, to_process)
        return bool(tasks)

    def _list_jobs(self) -> list[tuple[int, str]] | None:
        try:
            found = self.client.list_jobs(self.slugs)
        except AuthenticationError:
            raise
        except RemoteError as exc:
            self._server_problem(f"Listing jobs failed: {exc}")
            return None
        self._server_back()
        wanted = set(self.config.job_ids) if self.config.job_ids else None
        return [(j.id, j.pipeline_slug) for j in found
                if j.pipeline_slug in self.slugs and (wanted is None or j.id in wanted)]

    def _nothing_left(self) -> bool:
        with self._lock:
            busy = bool(self._in_process)
        return not busy and self.batcher.outstanding() == 0 and \
            self.outbox.counts()["result_ready"] == 0

    def _resume_unfinished(self) -> None:
        """Claims left from a stopped or crashed session: process them first."""
        by_job: dict[tuple[int, str], list[TaskInfo]] = {}
        for item in self.outbox.unfinished():
            if item.pipeline_slug not in self.slugs:
                continue
            if self.config.job_ids and item.job_id not in self.config.job_ids:
                continue
            by_job.setdefault((item.job_id, item.pipeline_slug), []).append(item.as_task())
        for (job_id, slug), tasks in by_job.items():
            self._emit(LogLine("info", f"Resuming {len(tasks)} task(s) of job {job_id} claimed "
                                       "before the last stop."))
            self._submit(job_id, slug, tasks)

    def _submit(self, job_id: int, slug: str, tasks: Sequence[TaskInfo]) -> None:
        for task in tasks:
            key = (job_id, task.id)
            with self._lock:
                if key in self._in_process:
                    continue  # delivered again while we still work on it: answered once
                self._in_process.add(key)
            claimed = ClaimedTask(job_id, slug, task)
            dest = self.images.image_path(job_id, task.image_id, task.image_url)
            self.batcher.expect(1)
            try:
                future = self.downloader.submit(claimed, task.image_url, dest)
            except RuntimeError:  # pool shut down by an abort: the claim stays in the outbox
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
        claimed: ClaimedTask = download.key
        claimed.download = download
        self.batcher.put(claimed)

    def _server_problem(self, message: str) -> None:
        log.warning("%s", message)
        if self.offline_since is None:
            self.offline_since = time.time()
            self._emit(LogLine("warning", message))
        self.last_error = message

    def _server_back(self) -> None:
        if self.offline_since is not None:
            self._emit(LogLine("info", "The server answers again."))
        self.offline_since = None

    # -- device side ----------------------------------------------------------------------
    def _catalogue(self, worker: str, ready: list[ClaimedTask]) -> WorkBatch:
        """Downloaded images become catalogue images (one transaction per job), so results
        are stored and shown like a local trap's."""
        items: list[WorkItem] = []
        decoded: list = []
        by_job: dict[tuple[int, str], list[ClaimedTask]] = {}
        for c in ready:
            d = c.download
            if d is None or d.error is not None or d.path is None:
                items.append(WorkItem(-1, c.name, c.slug,
                                      error=d.error if d else "The image was not downloaded.",
                                      ref=c))
                decoded.append(None)
            else:
                by_job.setdefault((c.job_id, c.slug), []).append(c)
        for (job_id, slug), group in by_job.items():
            ids = self.images.register(job_id, slug, [c.download.path for c in group])
            for c, image_id in zip(group, ids):
                items.append(WorkItem(image_id, c.name, slug, ref=c))
                payload = c.download.payload
                decoded.append(replace(payload, image_id=image_id) if payload is not None
                               else None)
        return WorkBatch(worker, items, decoded)
