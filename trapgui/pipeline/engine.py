"""Processing the local queue: a pipeline configuration over queued images, one worker per
device. ``Engine.run(emit, control)`` is a job (``core.jobs``); see docs/engine.md.

This module is the queue's face of the engine: it registers the pipeline configuration,
queues images, takes over the work of trapgui processes on this computer that died, and runs
a :class:`~trapgui.pipeline.device_pool.DevicePool` over the queue source and sink.
"""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import Callable, Iterable

from trapgui.core.jobs import Emit, JobControl, LogLine, RunSummary, safe_emit
from trapgui.core.processes import pid_alive, worker_pid
from trapgui.core.tracking_params import TrackingParams
from trapgui.db import catalogue_queries, jobqueue
from trapgui.pipeline.batch_size_cache import BatchSizeCache
from trapgui.pipeline.device_pool import DevicePool, lower_thread_priority
from trapgui.pipeline.flight_recorder import FlightRecorder
from trapgui.pipeline.model_set import registry_loader
from trapgui.pipeline.queue_source import CatalogueSink, QueueSource
from trapgui.pipeline.spec import PipelineSpec
from trapgui.pipeline.tracking_job import track_after_run

log = logging.getLogger(__name__)


class Engine:
    def __init__(self, db, store, spec: PipelineSpec, devices="auto", *,
                 model_loader: Callable | None = None, thread_factory: Callable | None = None,
                 low_priority: bool = False, batch_size_cache: BatchSizeCache | None = None,
                 profile: bool = False, tracking: TrackingParams | None = None,
                 track: bool = True):
        """``model_loader(device) -> ModelSet`` replaces the catalogue loader (tests);
        ``low_priority`` runs the device workers and decoders below the window's priority;
        ``batch_size_cache`` keeps the batch sizes measured when the spec leaves them to be
        tuned (default: ``batch_sizes.json`` in the data folder); ``profile`` times every
        stage of a run into :attr:`stage_seconds` (benchmarks); ``tracking``: the tracker's
        settings for the tracking that ends every run (``track`` False leaves it to
        ``trapgui track``)."""
        self.db = db
        self.store = store
        self.spec = spec
        self.devices = devices
        loader = model_loader or registry_loader(store, spec)
        self._load = lambda _key, device: loader(device)
        self.thread_factory = thread_factory
        self.low_priority = low_priority
        self.tracking = tracking
        self.track = track
        self.batch_size_cache = batch_size_cache
        self.profile = profile
        self.stage_seconds: dict[str, float] = {}  # the last run's, with ``profile``
        self.pipeline_key = spec.key
        self.pipeline_id = jobqueue.get_or_create_pipeline(
            db, self.pipeline_key, spec.display_name, spec.result_config())

    # -- queue --------------------------------------------------------------------------
    def enqueue_images(self, image_ids: Iterable[int], requeue: bool = False,
                       retry_failed: bool = False) -> int:
        """New pending jobs; ``requeue`` redoes done and failed ones, ``retry_failed`` the
        failed ones only."""
        return jobqueue.enqueue(self.db, self.pipeline_id, list(image_ids), requeue=requeue,
                                retry_failed=retry_failed)

    def enqueue_deployment(self, deployment_id: int, night_ids: Iterable[int | None] | None = None,
                           requeue: bool = False, retry_failed: bool = False) -> int:
        """All readable images of a trap, or of some nights (``None`` in ``night_ids`` = the
        undated group)."""
        nights = None if night_ids is None else list(night_ids)
        ids = catalogue_queries.image_ids(
            self.db, deployment_id, None if nights is None else [n for n in nights if n is not None],
            include_undated=nights is not None and None in nights)
        return self.enqueue_images(ids, requeue=requeue, retry_failed=retry_failed)

    # -- the job ------------------------------------------------------------------------
    def job(self, image_ids: Iterable[int] | None = None):
        """This engine's run as a ``core.jobs`` job."""
        return lambda emit, control: self.run(emit, control, image_ids)

    def run(self, emit: Emit | None = None, control: JobControl | None = None,
            image_ids: Iterable[int] | None = None) -> RunSummary:
        """Process this pipeline's queue (or, with ``image_ids``, that selection) until it is
        drained or ``control`` cancels. Blocks; call it from a background thread in a GUI.
        Raises ModelNotInstalledError / ModelError before anything is claimed."""
        emit = safe_emit(emit)
        control = control or JobControl()
        scope = None if image_ids is None else sorted(set(image_ids))
        self._take_over_dead_processes(emit)
        recorder = FlightRecorder(self.db.path, socket.gethostname()).open()
        try:
            return self._run(emit, control, scope, recorder)
        finally:
            recorder.close()  # stopped cleanly (or by the user): nobody is blamed

    def _run(self, emit: Emit, control: JobControl, scope, recorder) -> RunSummary:
        source = QueueSource(self.db, self.pipeline_id, scope=scope,
                             loader_threads=self.spec.loader_threads, lease_s=self.spec.lease_s,
                             decode_initializer=lower_thread_priority if self.low_priority
                             else None, recorder=recorder)
        sink = CatalogueSink(self.db, self.pipeline_id, source, self.spec, self.store)
        pool = DevicePool(source, sink, {"": self.spec}, self._load, devices=self.devices,
                          low_priority=self.low_priority, thread_factory=self.thread_factory,
                          batch_size_cache=self.batch_size_cache, profile=self.profile)
        outcome = pool.run(emit, control)
        self.stage_seconds = pool.stage_seconds
        return self._finish(outcome, source, sink, emit, control)

    def _finish(self, outcome, source, sink, emit: Emit, control: JobControl) -> RunSummary:
        """The run's summary and record, then the tracking of its nights (every engine)."""
        summary = RunSummary(
            run_id=sink.run_id, pipeline_id=self.pipeline_id, status=outcome.status,
            done=outcome.done, failed=outcome.failed, detections=outcome.detections,
            elapsed_s=outcome.elapsed_s, images_per_s=outcome.images_per_s,
            remaining=source.remaining(), devices=tuple(outcome.devices),
            notes=tuple(outcome.notes), failed_earlier=source.failed_before,
            error=None if outcome.error is None else str(outcome.error))
        if sink.run_id is not None:
            jobqueue.finish_run(self.db, sink.run_id, status=summary.status,
                                images_done=summary.done, images_failed=summary.failed,
                                notes=list(summary.notes) + ([summary.error] if summary.error
                                                             else []))
        if outcome.error is not None:  # re-raised once claims are released and the run recorded
            raise outcome.error
        if self.track and not control.cancelled:
            # nights whose processing is complete (a cancelled run leaves them to the next
            # run or `trapgui track`: they are found by their detections in no occurrence)
            summary = dataclasses.replace(summary, tracking=track_after_run(
                self.db, self.pipeline_id, sink.run_id, self.tracking, emit, control))
        return summary

    def _take_over_dead_processes(self, emit: Emit) -> None:
        """Work of trapgui processes on this computer that no longer exist (killed, crashed):
        what they had in flight is charged from the evidence they left (a crash report blames
        the images being decoded or on the device; a stop from outside blames nobody), their
        claims go back to the queue now rather than when their lease runs out, and their runs
        are marked crashed; then every other expired claim goes back too."""
        host = socket.gethostname()
        dead_workers = [w for w in jobqueue.claimed_workers(self.db, f"{host}:")
                        if (pid := worker_pid(w)) is not None and not pid_alive(pid)]
        dead_pids = {worker_pid(w) for w in dead_workers}
        dead_pids.update(p for p in FlightRecorder.recorded_pids(self.db.path, host)
                         if not pid_alive(p))
        for pid in sorted(dead_pids):
            evidence = FlightRecorder.examine(self.db.path, host, pid)
            if evidence.in_flight:
                charged, failed = jobqueue.charge_interrupted(
                    self.db, sorted(evidence.in_flight), crashed=evidence.crashed,
                    report=evidence.report)
                if evidence.crashed and charged:
                    emit(LogLine("warning", f"trapgui crashed while working on {charged} "
                                            "image(s); they are tried again one at a time"
                                            + (f" ({failed} skipped after repeated crashes)"
                                               if failed else "") + "."))
            FlightRecorder.discard(self.db.path, host, pid)
        jobqueue.expire_claims(self.db, dead_workers)
        for run_id, settings in jobqueue.running_runs(self.db):
            proc = settings.get("process") or {}
            pid = proc.get("pid")
            if proc.get("host") == host and isinstance(pid, int) and not pid_alive(pid):
                jobqueue.mark_run_crashed(self.db, run_id, "the process stopped without "
                                                           "finishing (killed or crashed)")
        expired = jobqueue.reset_expired(self.db)
        if expired:
            emit(LogLine("info", f"{expired} images left unfinished by an earlier run were "
                                 "put back in the queue."))
