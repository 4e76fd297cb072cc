"""The engine: runs a pipeline configuration over queued images on one worker per device.

Plain Python (no Qt). See docs/engine.md for the API and the event contract: events are
emitted from worker/writer threads, so ``on_event`` must be thread-safe.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable

from sqlalchemy import select, update

from trapgui.core.types import ImageState, JobState
from trapgui.db import jobqueue
from trapgui.db.tables import Image, Job, ProcessingRun
from trapgui.ml.devices import resolve_devices
from trapgui.pipeline.device_worker import DeviceWorker, RunControl
from trapgui.pipeline.events import (BatchCommitted, Finished, ImageFailed, Log, Progress,
                                     RunSummary)
from trapgui.pipeline.loader import ImageLoader
from trapgui.pipeline.model_set import ModelSet, registry_loader
from trapgui.pipeline.processor import BatchProcessor, describe_error
from trapgui.pipeline.spec import PipelineSpec
from trapgui.pipeline.writer import ResultWriter, WriteRequest
from trapgui.version import __version__

log = logging.getLogger(__name__)

PROGRESS_EVERY_S = 1.0


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    if os.name == "nt":  # os.kill(pid, 0) would terminate the process on Windows
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True  # exists (another user's) or cannot tell: leave its claims alone
    return True


def _pid_alive_windows(pid: int) -> bool:
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return kernel32.GetLastError() == 5  # access denied: it exists
    try:
        code = ctypes.c_ulong()
        kernel32.GetExitCodeProcess(handle, ctypes.byref(code))
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)


def _default_thread(name: str, target: Callable[[], None]):
    return threading.Thread(target=target, name=name, daemon=True)


class Engine:
    def __init__(self, db, store, spec: PipelineSpec, devices="auto",
                 thread_factory: Callable | None = None,
                 model_loader: Callable | None = None):
        self.db = db
        self.store = store
        self.spec = spec
        self.devices = devices
        self.thread_factory = thread_factory or _default_thread
        self.model_loader = model_loader or registry_loader(store, spec)
        self.pipeline_key = spec.key
        self.pipeline_id = jobqueue.get_or_create_pipeline(
            db, self.pipeline_key, spec.display_name, spec.result_config())
        self._control = RunControl()
        self._running = threading.Lock()
        self._on_event: Callable | None = None
        self._stats_lock = threading.Lock()

    # -- queue --------------------------------------------------------------------------
    def enqueue_images(self, image_ids: Iterable[int], requeue: bool = False) -> int:
        return jobqueue.enqueue(self.db, self.pipeline_id, list(image_ids), requeue=requeue)

    def enqueue_deployment(self, deployment_id: int, night_ids: Iterable[int | None] | None = None,
                           requeue: bool = False) -> int:
        query = select(Image.id).where(Image.deployment_id == deployment_id,
                                       Image.state == ImageState.OK.value)
        if night_ids is not None:
            nights = list(night_ids)
            dated = [n for n in nights if n is not None]
            cond = Image.night_id.in_(dated)
            if None in nights:
                cond = cond | Image.night_id.is_(None)
            query = query.where(cond)
        with self.db.session() as s:
            ids = list(s.execute(query).scalars())
        return self.enqueue_images(ids, requeue=requeue)

    # -- control (any thread) -----------------------------------------------------------
    def pause(self) -> None:
        self._control.resume.clear()
        self._emit(Log("info", "Paused: the batches in hand are finished first."))

    def resume(self) -> None:
        self._control.resume.set()
        self._emit(Log("info", "Resumed."))

    def cancel(self) -> None:
        self._control.cancel.set()
        self._control.resume.set()

    @property
    def paused(self) -> bool:
        return self._control.paused

    @property
    def cancelled(self) -> bool:
        return self._control.cancel.is_set()

    # -- running ------------------------------------------------------------------------
    def run(self, on_event: Callable | None = None, image_ids: Iterable[int] | None = None) -> RunSummary:
        if not self._running.acquire(blocking=False):
            raise RuntimeError("this engine is already running")
        try:
            return self._run(on_event, None if image_ids is None else sorted(set(image_ids)))
        finally:
            self._running.release()
            self._on_event = None

    def _run(self, on_event, scope) -> RunSummary:
        self._on_event = on_event
        self._expire_dead_local_workers()
        self._close_dead_local_runs()
        expired = jobqueue.reset_expired(self.db)
        if expired:
            self._emit(Log("info", f"{expired} images left unfinished by an earlier run were "
                                   "put back in the queue."))
        choices, messages = resolve_devices(self.devices)
        for m in messages:
            self._emit(Log("warning", m))
        model_sets: list[ModelSet] = []
        for choice in choices:
            self._emit(Log("info", f"Loading models on {choice.label} ({choice.name})."))
            model_sets.append(self.model_loader(choice.device))
        spec = self.spec
        processors = [BatchProcessor(
            m.detector, m.binary, m.species, m.order,
            classification_batch_size=spec.classification_batch_size, top_k=spec.top_k,
            score_floor=spec.detection_score_floor, crop_fill=spec.crop_fill) for m in model_sets]
        first = processors[0]
        before = jobqueue.counts(self.db, self.pipeline_id, scope)
        self._stats = _RunStats(before)
        run_id = jobqueue.start_run(
            self.db, self.pipeline_id, models=model_sets[0].describe(self.store),
            devices=[{"device": c.label, "name": c.name, "threads": c.threads} for c in choices],
            settings={**spec.as_dict(), "process": {"host": socket.gethostname(),
                                                    "pid": os.getpid()}},
            app_version=__version__)
        self._run_id = run_id
        loader = ImageLoader(spec.loader_threads, max_side=first.detection_max_side,
                             full_resolution=first.needs_full_resolution,
                             pin_memory=any(c.device.type == "cuda" for c in choices))
        writer = ResultWriter(self.db, self.pipeline_id, run_id, self._committed, self._write_failed)
        tag = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._workers = [DeviceWorker(
            db=self.db, pipeline_id=self.pipeline_id, name=f"{tag}:{c.label}", choice=c,
            processor=p, loader=loader, writer=writer, control=self._control,
            batch_size=spec.detection_batch_size, lease_s=spec.lease_s, scope=scope,
            log_event=lambda level, msg: self._emit(Log(level, msg)))
            for c, p in zip(choices, processors)]
        status = "crashed"
        crash: BaseException | None = None
        abandon = False
        try:
            writer.start()
            threads = [self.thread_factory(f"trapgui-{w.choice.label}", w.run) for w in self._workers]
            for t in threads:
                t.start()
            self._supervise()
            for t in threads:
                t.join()
            status = "cancelled" if self.cancelled else "finished"
        except KeyboardInterrupt as exc:
            # "Stop now" (a second Ctrl+C): do not wait for the batch on the device. The
            # process is about to exit; its claims are taken over by the next run at start.
            crash, status, abandon = exc, "cancelled", True
            self.cancel()
        except BaseException as exc:
            crash = exc
            self.cancel()
            for w in self._workers:
                w.finished.wait()
        finally:
            if not abandon:
                writer.close()
                loader.close()
            self._control.cancel.clear()  # a cancel ends this run only
        if self._stats.write_error is not None and crash is None:
            status, crash = "crashed", self._stats.write_error
        errors = [w.error for w in self._workers if w.error is not None]
        if errors and status == "finished":
            status = "crashed"
        notes = [n for p in processors for n in p.notes] + messages
        summary = self._summary(run_id, status, notes, scope)
        jobqueue.finish_run(self.db, run_id, status=status, images_done=summary.done,
                            images_failed=summary.failed, notes=notes)
        self._emit(self._progress())
        self._emit(Finished(summary))
        if crash is not None:  # re-raised only after claims were released and the run recorded
            raise crash
        return summary

    def _expire_dead_local_workers(self) -> int:
        """Claims of a trapgui process on this computer that no longer exists (killed,
        crashed) are treated as expired now rather than when their lease runs out; the
        following ``reset_expired`` sends them back to pending, counting the attempt (an
        image that keeps killing the process is failed after a few tries)."""
        host = socket.gethostname()
        with self.db.session() as s:
            workers = s.execute(select(Job.worker).where(
                Job.state == JobState.CLAIMED.value, Job.worker.like(f"{host}:%")).distinct()
            ).scalars().all()
        dead = [w for w in workers
                if w.count(":") >= 2 and w.split(":")[1].isdigit()
                and not _pid_alive(int(w.split(":")[1]))]
        if not dead:
            return 0
        with self.db.write_session() as s:
            return s.execute(update(Job).where(
                Job.state == JobState.CLAIMED.value, Job.worker.in_(dead)).values(
                lease_expires_at=0.0)).rowcount

    def _close_dead_local_runs(self) -> None:
        """Runs still marked running whose process on this computer is gone were killed."""
        host = socket.gethostname()
        with self.db.session() as s:
            rows = s.execute(select(ProcessingRun.id, ProcessingRun.settings).where(
                ProcessingRun.status == "running")).all()
        for run_id, settings in rows:
            proc = (settings or {}).get("process") or {}
            pid = proc.get("pid")
            if proc.get("host") == host and isinstance(pid, int) and not _pid_alive(pid):
                with self.db.write_session() as s:
                    s.execute(update(ProcessingRun).where(ProcessingRun.id == run_id).values(
                        status="crashed", notes=["the process stopped without finishing "
                                                 "(killed or crashed)"]))

    def _supervise(self) -> None:
        """Renew leases and tick progress until every worker has finished."""
        lease_every = max(1.0, self.spec.lease_s / 4)
        last_renew = last_tick = time.monotonic()
        while not all(w.finished.is_set() for w in self._workers):
            time.sleep(0.1)
            now = time.monotonic()
            if now - last_renew >= lease_every:
                last_renew = now
                for w in self._workers:
                    held = w.held_job_ids()
                    if held:
                        jobqueue.renew(self.db, w.name, held, self.spec.lease_s)
            if now - last_tick >= PROGRESS_EVERY_S:
                last_tick = now
                self._emit(self._progress())

    # -- writer callbacks (writer thread) -----------------------------------------------
    def _committed(self, request: WriteRequest, written: int) -> None:
        worker = next(w for w in self._workers if w.name == request.worker)
        worker.committed(request.claims)
        if written == 0:
            self._emit(Log("warning", f"{request.device}: a batch of {len(request.claims)} "
                                      "images was taken over by another worker; not written."))
            return
        paths = {c.image_id: c.abs_path for c in request.claims}
        ok = [r for r in request.results if r.error is None]
        failed = [r for r in request.results if r.error is not None]
        detections = sum(len(r.detections) for r in ok)
        with self._stats_lock:
            self._stats.done += len(ok)
            self._stats.failed += len(failed)
            self._stats.detections += detections
        for r in failed:
            self._emit(ImageFailed(r.image_id, paths.get(r.image_id, ""), r.error or ""))
        self._emit(BatchCommitted([r.image_id for r in request.results], detections,
                                  request.device))
        self._emit(self._progress())

    def _write_failed(self, request: WriteRequest, exc: BaseException) -> None:
        self._stats.write_error = exc
        worker = next(w for w in self._workers if w.name == request.worker)
        worker.committed(request.claims)  # stop renewing: let them go back to the queue
        try:
            jobqueue.release(self.db, request.worker, [c.job_id for c in request.claims])
        except Exception:
            log.warning("Could not release claims after a failed write; their leases expire.")
        self._emit(Log("error", f"Results could not be written to the database "
                                f"({describe_error(exc)}); stopping. Nothing is lost: the "
                                "images will be processed again."))
        self.cancel()

    def progress(self) -> Progress | None:
        """A snapshot for polling (any thread); None before the first run has started."""
        if getattr(self, "_workers", None) is None:
            return None
        return self._progress()

    # -- events -------------------------------------------------------------------------
    def _emit(self, event) -> None:
        callback = self._on_event
        if callback is None:
            return
        try:
            callback(event)
        except Exception:
            log.exception("Event consumer raised; ignored")

    def _progress(self) -> Progress:
        st = self._stats
        with self._stats_lock:
            done, failed, detections = st.done, st.failed, st.detections
        elapsed = time.monotonic() - st.started
        rate = (done + failed) / elapsed if elapsed > 0 and done + failed else 0.0
        total = st.total
        remaining = max(0, total - st.before_done - st.before_failed - done - failed)
        eta = remaining / rate if rate > 0 else None
        return Progress(done=st.before_done + done, failed=st.before_failed + failed,
                        total=total, detections=detections, images_per_s=rate, eta_s=eta,
                        devices=[w.status() for w in self._workers], paused=self.paused)

    def _summary(self, run_id: int, status: str, notes: list[str], scope) -> RunSummary:
        st = self._stats
        elapsed = time.monotonic() - st.started
        left = jobqueue.counts(self.db, self.pipeline_id, scope)
        return RunSummary(
            run_id=run_id, pipeline_id=self.pipeline_id, status=status, done=st.done,
            failed=st.failed, detections=st.detections, elapsed_s=elapsed,
            images_per_s=(st.done + st.failed) / elapsed if elapsed > 0 else 0.0,
            remaining=left["pending"] + left["claimed"],
            devices=[w.status() for w in self._workers], notes=notes)


class _RunStats:
    def __init__(self, before: dict[str, int]):
        self.before_done = before.get("done", 0)
        self.before_failed = before.get("failed", 0)
        self.total = sum(before.values())
        self.done = self.failed = self.detections = 0
        self.started = time.monotonic()
        self.write_error: BaseException | None = None
