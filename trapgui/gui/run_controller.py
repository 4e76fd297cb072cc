"""Runs processing off the GUI thread and brings its events back, throttled.

The engine calls ``on_event`` from its worker and writer threads. That callback only appends
to a list under a lock (cheap, thread-safe, no Qt call); a QTimer in the GUI thread drains the
list a few times per second and emits one summarised update. A 100k-image run therefore costs
the event loop at most ~4 small updates per second, whatever the batch rate.

Each device worker runs in a QThread made by ``_thread_factory``; every QThread is referenced
in ``self._threads`` until it has finished (a QThread destroyed while running aborts the app).
"""

from __future__ import annotations

import logging
import os
import sys
import threading

from PySide6.QtCore import QObject, QThread, QTimer, Signal, Slot

log = logging.getLogger("trapgui.gui")
UPDATE_INTERVAL_MS = 250
WORKER_NICE = 10
# the GUI may not import trapgui.pipeline: engine events are told apart by their class name
_KINDS = {"RunProgress": "progress", "BatchCommitted": "committed", "ItemFailed": "failed",
          "LogLine": "log", "Finished": "finished", "RunPlan": "plan"}


class _CallThread(QThread):
    """A QThread running one plain call: a device worker, or the run itself.

    Workers run at a lower priority than the GUI thread: on a machine whose cores the run
    keeps busy, the window still gets a core when it needs one (a desktop app must not feel
    frozen while it computes). Threads they start (torch's intra-op pool) inherit it."""

    def __init__(self, name: str, target, background: bool = True):
        super().__init__()
        self.setObjectName(name)
        self._target = target
        self._background = background
        self.result = None
        self.error: BaseException | None = None

    def run(self):  # noqa: D401 - Qt API
        if self._background:
            _lower_priority(self)
        try:
            self.result = self._target()
        except BaseException as exc:  # noqa: BLE001 - reported on the GUI thread
            self.error = exc

    def join(self, timeout: float | None = None) -> None:
        # the engine joins its workers from its own thread: QThread.wait is thread-safe
        if timeout is None:
            self.wait()
        else:
            self.wait(max(0, int(timeout * 1000)))


def _lower_priority(thread: QThread) -> None:
    thread.setPriority(QThread.Priority.LowPriority)  # Windows, macOS
    if sys.platform.startswith("linux"):
        # Linux ignores QThread priorities for normal threads; a per-thread nice value works
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WORKER_NICE)
        except OSError:
            pass


class RunController(QObject):
    """One processing run at a time. Lives in (and emits on) the GUI thread."""

    started = Signal(str)  # description
    planned = Signal(object)  # RunPlan
    progress = Signal(object)  # latest engine Progress
    committed = Signal(list, int)  # image ids committed since the last update, detections
    failed = Signal(list)  # new ImageFailed events
    logged = Signal(list)  # new Log events
    finished = Signal(object)  # RunSummary, or None when the run did not start
    error = Signal(object)  # an exception raised by the run (shown as a dialog)
    stateChanged = Signal(str)  # idle | starting | running | paused | cancelling

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._lock = threading.Lock()
        self._pending: list = []
        self._threads: set[_CallThread] = set()
        self._run_thread: _CallThread | None = None
        self.state = "idle"
        self.last_summary = None
        self._timer = QTimer(self, interval=UPDATE_INTERVAL_MS)
        self._timer.timeout.connect(self._drain)

    # ---- called from engine threads -----------------------------------------------------
    def _on_event(self, event) -> None:
        with self._lock:
            self._pending.append(event)

    def _on_plan(self, plan) -> None:
        with self._lock:
            self._pending.append(plan)

    def _thread_factory(self, name: str, target) -> _CallThread:
        thread = _CallThread(name, target)
        with self._lock:
            self._threads.add(thread)
        thread.finished.connect(self._forget_thread)
        return thread

    @Slot()
    def _forget_thread(self) -> None:
        # Only once the run thread has ended (the engine's own references to its workers are
        # gone with it) may the last reference be dropped, and only here on the GUI thread:
        # a QThread destroyed while running aborts the process, and one released from a
        # thread that is itself ending was a source of rare native crashes.
        if self._run_thread is not None and not self._run_thread.isFinished():
            return
        with self._lock:
            done = [t for t in self._threads if t.isFinished()]
        for thread in done:
            thread.wait()
            with self._lock:
                self._threads.discard(thread)

    # ---- GUI thread ---------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        return self.state != "idle"

    def running_threads(self) -> int:
        with self._lock:
            return sum(1 for t in self._threads if t.isRunning())

    def start(self, scope) -> None:
        if self.busy:
            return
        processing = self._services.processing
        processing.reset_cancel()
        self._set_state("starting")
        self.started.emit(scope.description)
        self._run_thread = _CallThread(
            "trapgui-run", lambda: processing.run(scope, self._on_event, self._thread_factory,
                                                  self._on_plan))
        self._run_thread.finished.connect(self._run_ended)
        self._timer.start()
        self._run_thread.start()

    def pause(self) -> None:
        if self.state in ("running", "starting"):
            self._services.processing.pause()
            self._set_state("paused")

    def resume(self) -> None:
        if self.state == "paused":
            self._services.processing.resume()
            self._set_state("running")

    def cancel(self) -> None:
        if self.busy and self.state != "cancelling":
            self._services.processing.cancel()
            self._set_state("cancelling")

    def wait(self, timeout_s: float) -> bool:
        """Block until the run thread ended (shutdown only); True if it did."""
        thread = self._run_thread
        return thread is None or thread.wait(int(timeout_s * 1000))

    def _set_state(self, state: str) -> None:
        if state != self.state:
            self.state = state
            self.stateChanged.emit(state)

    @Slot()
    def _drain(self) -> None:
        with self._lock:
            events, self._pending = self._pending, []
        if not events:
            return
        latest = None
        committed: list[int] = []
        detections = 0
        failures, logs = [], []
        for event in events:
            kind = _KINDS.get(type(event).__name__)
            if kind == "progress":
                latest = event
            elif kind == "committed":
                committed.extend(event.image_ids)
                detections += event.detections
            elif kind == "failed":
                failures.append(event)
            elif kind == "log":
                logs.append(event)
            elif kind == "plan":
                self.planned.emit(event)
        if self.state == "starting" and (latest is not None or committed):
            self._set_state("paused" if latest is not None and latest.paused else "running")
        if latest is not None:
            self.progress.emit(latest)
        if committed:
            self.committed.emit(committed, detections)
        if failures:
            self.failed.emit(failures)
        if logs:
            self.logged.emit(logs)

    @Slot()
    def _run_ended(self) -> None:
        thread = self._run_thread
        if thread is not None:
            thread.wait()  # see _forget_thread: never release a QThread that still runs
        self._forget_thread()
        self._drain()
        self._timer.stop()
        self._run_thread = None
        self._set_state("idle")
        self.last_summary = thread.result if thread else None
        if thread is not None and thread.error is not None:
            from trapgui.core.errors import Cancelled

            if not isinstance(thread.error, Cancelled):
                self.error.emit(thread.error)
        self.finished.emit(self.last_summary)
        if thread is not None:
            thread.deleteLater()
