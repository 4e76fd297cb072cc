"""Today's engine (``pipeline.engine``) and remote worker speak ``pipeline.events``; the job
contract speaks ``core.jobs``. This is the translation, in one place, until the engine emits
core events and takes a JobControl itself."""

from __future__ import annotations

import threading
from collections.abc import Callable

from trapgui.core import jobs
from trapgui.core.jobs import JobControl
from trapgui.pipeline import events as engine_events


def core_devices(devices) -> tuple[jobs.DeviceStatus, ...]:
    return tuple(jobs.DeviceStatus(d.device, d.name, d.state, d.batch_size, d.images_per_s,
                                   d.images_done) for d in devices)


def core_event(event, control: JobControl) -> jobs.Event | None:
    """The core event for an engine event; None for those the contract does not carry (the
    engine's Finished: ``run_job`` reports the end)."""
    if isinstance(event, engine_events.Progress):
        return jobs.RunProgress(
            done=event.done, total=event.total, unit="images", failed=event.failed,
            rate=event.images_per_s, eta_s=event.eta_s, paused=event.paused,
            detections=event.detections, devices=core_devices(event.devices),
            state="stopping" if control.cancelled else "working")
    if isinstance(event, engine_events.BatchCommitted):
        return jobs.BatchCommitted(tuple(event.image_ids), event.detections, event.device)
    if isinstance(event, engine_events.ImageFailed):
        return jobs.ItemFailed(event.image_id, event.path, event.reason)
    if isinstance(event, engine_events.Log):
        return jobs.LogLine(event.level, event.message)
    return None


def core_summary(s: engine_events.RunSummary) -> jobs.RunSummary:
    return jobs.RunSummary(
        run_id=s.run_id, pipeline_id=s.pipeline_id, status=s.status, done=s.done,
        failed=s.failed, detections=s.detections, elapsed_s=s.elapsed_s,
        images_per_s=s.images_per_s, remaining=s.remaining, devices=core_devices(s.devices),
        notes=tuple(s.notes))


def follow(control: JobControl, *, pause: Callable[[], None], resume: Callable[[], None],
           cancel: Callable[[], None], abort: Callable[[], None] | None = None) -> None:
    """Apply the control's state to an engine now and after every change: the JobControl is
    the only place pause and cancel live."""
    state = {"paused": False}

    def sync() -> None:
        if control.aborted and abort is not None:
            abort()
        elif control.cancelled:
            cancel()
        elif control.paused != state["paused"]:
            state["paused"] = control.paused
            (pause if control.paused else resume)()

    control.on_change(sync)
    sync()


# ---- remote runs ---------------------------------------------------------------------------
_REMOTE_MESSAGES = {
    "working": "Processing the claimed tasks",
    "waiting": "Waiting for tasks (other workers may hold the last ones)",
    "posting": "Posting the last results",
    "stopping": "Stopping: finishing the claimed tasks and posting their results",
    "complete": "No task left: posting done",
}


class RemoteRunAdapter:
    """A RemoteWorker as a job: its events as core events (in "tasks"), the JobControl as its
    stop (cancel), abort and pause."""

    def __init__(self, emit, control: JobControl):
        self._emit = emit
        self._control = control
        self._detections = 0
        self._answering = threading.local()  # set while the worker records a batch's answers

    def relay(self, event) -> None:
        from trapgui.remote.worker_types import RemoteProgress

        if isinstance(event, RemoteProgress):
            self._detections = event.detections
            self._emit(self._progress(event))
            return
        if getattr(self._answering, "on", False) and isinstance(event, engine_events.Log):
            return  # a failed task's warning: reported as ItemFailed by batch_done below
        translated = core_event(event, self._control)
        if translated is not None:
            self._emit(translated)

    def attach(self, worker) -> None:
        # The worker has no pause of its own: its device threads ask it for their next batch,
        # and wait here while paused (the feeder stops claiming once its prefetch is full).
        next_batch = worker.next_batch
        control = self._control

        def next_batch_unless_paused():
            while control.paused and not worker.stopping:
                control.wait_while_paused(0.2)
            return next_batch()

        worker.next_batch = next_batch_unless_paused

        # a failed task is an ItemFailed, as a failed local image is (the worker logs it)
        batch_done = worker.batch_done

        def batch_done_with_failures(items, processed, device):
            self._answering.on = True
            try:
                batch_done(items, processed, device)
            finally:
                self._answering.on = False
            for p in processed:
                if p.error:
                    task = p.item.task
                    self._emit(jobs.ItemFailed(task.id, f"image {task.image_id} (task {task.id})",
                                               p.error))

        worker.batch_done = batch_done_with_failures
        follow(control, pause=lambda: self._log("Paused: the tasks in hand are finished first."),
               resume=lambda: self._log("Resumed."), cancel=worker.stop, abort=worker.abort)

    def _log(self, message: str) -> None:
        self._emit(jobs.LogLine("info", message))

    def _progress(self, p) -> jobs.RunProgress:
        if p.state == "starting":
            state, message = "working", "Loading models…"
        else:
            state = {"stopping": "stopping", "posting": "posting", "stopped": "complete"}.get(
                p.state, "working" if p.in_flight or p.state == "working" else "waiting")
            if self._control.cancelled and state in ("working", "waiting"):
                state = "stopping"
            message = _REMOTE_MESSAGES[state]
            if state == "working" and p.in_flight:
                message = f"Processing {p.in_flight} claimed task(s)"
        return jobs.RunProgress(
            done=p.tasks_done - p.failures, total=None, unit="tasks", failed=p.failures,
            rate=p.images_per_s, eta_s=p.eta_s, message=message, paused=self._control.paused,
            detections=p.detections, state=state, posted=p.posted,
            waiting_to_post=p.waiting_to_post)

    def summary(self, s) -> jobs.RunSummary:
        status = "crashed" if s.error else "cancelled" if self._control.cancelled else "finished"
        return jobs.RunSummary(
            run_id=None, pipeline_id=None, status=status, done=s.tasks_done - s.failures,
            failed=s.failures, detections=self._detections, elapsed_s=s.elapsed_s,
            images_per_s=s.images_per_s, remaining=s.unfinished, notes=tuple(s.notes),
            posted=s.posted, unposted=s.unposted, error=s.error)
