"""One processing run at a time, local or remote, for the whole window: the processing panel,
the Processing menu, the status bar and the Remote tab all drive and watch this one object.

The run is a job (``services.processing.run_job(scope)`` or ``services.remote.run_job(...)``)
on the window's :class:`~trapgui.gui.job_runner.JobRunner`: its events arrive here on the GUI
thread, already coalesced, and leave as the typed signals below. Pause and cancel go straight
to the job's ``JobControl``; the ``state`` here only says what the controls show.
"""

from __future__ import annotations

import threading

from PySide6.QtCore import QObject, Signal

from trapgui.core.errors import Cancelled
from trapgui.core.jobs import BatchCommitted, ItemFailed, LogLine, Progress, RunPlanned
from trapgui.gui.job_runner import JobHandle, job_runner

# threads a run starts (the job's own, the engine's device workers, writer and decoders, the
# remote worker's): what ``running_threads`` counts
RUN_THREAD_PREFIXES = ("trapgui-job-", "trapgui-writer", "trapgui-decode", "trapgui-cpu",
                       "trapgui-cuda", "trapgui-mps", "remote-")


class RunController(QObject):
    """Lives in (and emits on) the GUI thread."""

    started = Signal(str)  # description
    planned = Signal(object)  # core.jobs.RunPlanned
    progress = Signal(object)  # the latest core.jobs.RunProgress
    committed = Signal(list, int)  # catalogue image ids with new results, their detections
    failed = Signal(list)  # core.jobs.ItemFailed events
    logged = Signal(list)  # core.jobs.LogLine events
    finished = Signal(object)  # core.jobs.RunSummary, or None when the run did not end one
    error = Signal(object)  # an exception raised by the run (shown as a dialog)
    stateChanged = Signal(str)  # idle | starting | running | paused | cancelling

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._handle: JobHandle | None = None
        self.state = "idle"
        self.kind = ""  # "local" or "remote" while a run is on
        self.description = ""
        self.last_summary = None
        self.last_progress = None

    # ---- starting -----------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.state != "idle"

    def start(self, scope) -> None:
        """Process a scope of the local catalogue (``services.processing.run_job``)."""
        services = self._services
        # the service is touched on the job's thread: its first use imports the engine
        self._start(lambda emit, control: services.processing.run_job(scope)(emit, control),
                    scope.description, "local")

    def start_remote(self, slugs, job_id: int | None = None, base_url: str | None = None,
                     token: str | None = None) -> None:
        """Process an Antenna job (``services.remote.run_job``): a run like any other."""
        services = self._services
        what = f"Antenna job {job_id}" if job_id else "open Antenna jobs"
        self._start(lambda emit, control: services.remote.run_job(
            list(slugs), job_id=job_id, base_url=base_url, token=token)(emit, control),
            f"{what} ({', '.join(slugs)})", "remote")

    def _start(self, job, description: str, kind: str) -> None:
        if self.busy:
            return
        self.kind, self.description = kind, description
        self.last_progress = None
        self._set_state("starting")
        self.started.emit(description)
        self._handle = job_runner().start(
            job, name=f"processing {description}", on_event=self._on_event,
            on_done=self._on_done, on_error=self._on_error, context=self, low_priority=True)

    # ---- controls -----------------------------------------------------------------------
    def pause(self) -> None:
        if self.state in ("running", "starting") and self._handle is not None:
            self._handle.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self.state == "paused" and self._handle is not None:
            self._handle.resume()
            self._set_state("running")

    def toggle_pause(self) -> None:
        self.resume() if self.state == "paused" else self.pause()

    def cancel(self) -> None:
        if self.busy and self.state != "cancelling" and self._handle is not None:
            self._handle.cancel()
            self._set_state("cancelling")

    def abort(self) -> None:
        if self._handle is not None:
            self._handle.abort()
            self._set_state("cancelling")

    def wait(self, timeout_s: float) -> bool:
        """Deliver events until the run has ended (shutdown, tests); True if it did."""
        import time

        from PySide6.QtCore import QCoreApplication

        deadline = time.monotonic() + timeout_s
        while self.busy and time.monotonic() < deadline:
            QCoreApplication.processEvents()
            time.sleep(0.005)
        return not self.busy

    def running_threads(self) -> int:
        """Threads of runs still alive (none once a run has ended: the engine joins its own)."""
        return sum(1 for t in threading.enumerate()
                   if t.is_alive() and t.name.startswith(RUN_THREAD_PREFIXES))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    # ---- events (GUI thread, from the job runner) ---------------------------------------
    def _on_event(self, event) -> None:
        if isinstance(event, Progress):
            self.last_progress = event
            if self.state == "starting":
                self._set_state("paused" if event.paused else "running")
            self.progress.emit(event)
        elif isinstance(event, BatchCommitted):
            if self.state == "starting":
                self._set_state("running")
            self.committed.emit(list(event.image_ids), event.detections)
        elif isinstance(event, ItemFailed):
            self.failed.emit([event])
        elif isinstance(event, LogLine):
            self.logged.emit([event])
        elif isinstance(event, RunPlanned):
            self.planned.emit(event)

    def _on_done(self, summary) -> None:
        self._ended(summary)

    def _on_error(self, exc: BaseException) -> None:
        self._ended(None)
        if not isinstance(exc, Cancelled):
            self.error.emit(exc)

    def _ended(self, summary) -> None:
        self._handle = None
        self.last_summary = summary
        self._set_state("idle")
        self.finished.emit(summary)
        self.kind = ""
