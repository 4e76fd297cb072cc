"""The window's one job runner: runs any job ``job(emit, control) -> result`` off the GUI
thread and brings its events and its end back to the GUI thread.

How one event travels (docs/architecture.md follows it to a label):

1. A thread of the job calls ``emit(event)``. The runner appends the event to that job's
   pending list under one lock; a Progress replaces the job's previous Progress not yet shown
   (only the latest counts). No Qt call happens on that thread.
2. One QTimer on the GUI thread (every ``TICK_MS``) drains the pending events of every job and
   hands them, in order, to each job's ``on_event``.
3. When the job returns or raises, its thread emits the relay's ``ended`` signal with the
   job's number (an int, queued to the GUI thread). The GUI thread drains that job's last
   events at once and calls ``on_done(result)`` or ``on_error(exc)``: a quick query never
   waits for the timer.

Lessons from earlier native crashes, kept here in one place:

- Jobs run on plain Python threads (a small pool for plain calls, a thread of its own for each
  long job), never QThreadPool/QThread: shiboken releasing runnables' wrappers on pool threads
  corrupted the heap. No QObject is created, owned or deleted off the GUI thread: one relay
  QObject is created with the runner and never deleted.
- The GUI thread drops the last reference to everything a job touched (its callable, its
  closures, its result, its exception): a finished job's record is kept until its thread has
  let go of it, then released here. A worker thread releasing the last reference to a Python
  wrapper of a Qt object (a widget captured by a lambda, a QImage) frees that object on the
  wrong thread.
- Callbacks run only while their owner still exists: ``context``, or the QObject a
  bound-method callback belongs to (``shiboken6.isValid``).
- A failure nobody handles is never silent: an unexpected error (anything but TrapguiError or
  Cancelled), any error without an ``on_error``, and an exception raised by a callback are
  written to the log with their traceback and shown in a dialog.
"""

from __future__ import annotations

import itertools
import os
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QTimer, Signal, Slot

from trapgui.core.errors import Cancelled, TrapguiError
from trapgui.core.jobs import Event, Finished, JobControl, Progress, run_job
from trapgui.gui.error_dialog import report_error

TICK_MS = 200  # events reach the window at most five times a second, whatever the job's rate
CALL_WORKERS = 4  # plain calls at once: a slow query overlaps image decodes on a 2-core laptop
LOW_PRIORITY_NICE = 10


class JobHandle:
    """A started job as the GUI sees it: pause, resume, cancel or abort it (thread-safe, through
    its :class:`JobControl`), and whether it has ended."""

    def __init__(self, number: int, name: str, control: JobControl):
        self.number = number
        self.name = name
        self.control = control
        self._ended = threading.Event()

    def pause(self) -> None:
        self.control.pause()

    def resume(self) -> None:
        self.control.resume()

    def cancel(self) -> None:
        self.control.cancel()

    def abort(self) -> None:
        self.control.abort()

    @property
    def running(self) -> bool:
        """False once the job's end has been delivered on the GUI thread."""
        return not self._ended.is_set()

    def __repr__(self) -> str:
        return f"<JobHandle {self.number} {self.name!r} running={self.running}>"


class _Record:
    """Everything about one job; created, delivered and released on the GUI thread."""

    __slots__ = ("handle", "job", "on_event", "on_done", "on_error", "owner", "title",
                 "pending", "progress_at", "finished", "worker")

    def __init__(self, handle, job, on_event, on_done, on_error, owner, title):
        self.handle: JobHandle = handle
        self.job = job
        self.on_event = on_event
        self.on_done = on_done
        self.on_error = on_error
        self.owner: QObject | None = owner
        self.title: str = title
        self.pending: list = []  # events not yet delivered (None: a superseded Progress)
        self.progress_at: int | None = None  # index of the pending Progress, if any
        self.finished: Finished | None = None
        self.worker: threading.Thread | Future | None = None

    def thread_done(self) -> bool:
        w = self.worker
        return w is None or (w.done() if isinstance(w, Future) else not w.is_alive())


class _Relay(QObject):
    """Lives on the GUI thread for the whole session; its slots are the runner's entry points."""

    ended = Signal(int)  # job number, emitted from the job's thread

    def __init__(self, runner: "JobRunner"):
        super().__init__()
        self._runner = runner
        self.ended.connect(self._on_ended)
        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._on_tick)

    @Slot(int)
    def _on_ended(self, number: int) -> None:
        self._runner._end(number)

    @Slot()
    def _on_tick(self) -> None:
        self._runner._tick()


class JobRunner:
    """One per application (see :func:`job_runner`); call every method from the GUI thread."""

    def __init__(self):
        self._relay = _Relay(self)
        app = QCoreApplication.instance()
        if app is not None:
            self._relay.moveToThread(app.thread())
        self._lock = threading.Lock()
        self._jobs: dict[int, _Record] = {}
        self._released: list[_Record] = []  # delivered, waiting for their thread to let go
        self._numbers = itertools.count(1)
        self._pool = ThreadPoolExecutor(CALL_WORKERS, thread_name_prefix="trapgui-call")

    # ---- starting ------------------------------------------------------------------------
    def start(self, job: Callable, *, name: str = "",
              on_event: Callable[[Event], None] | None = None,
              on_done: Callable[[Any], None] | None = None,
              on_error: Callable[[BaseException], None] | None = None,
              context: QObject | None = None, low_priority: bool = False) -> JobHandle:
        """Run ``job(emit, control)`` on a thread of its own. ``on_event(event)`` receives its
        events on the GUI thread (coalesced: the latest Progress, every other event in order),
        then ``on_done(result)`` or ``on_error(exc)``. ``low_priority`` runs the job (and, on
        Linux, every thread it starts: device workers, torch's pool) below the window, so the
        window gets a core when it needs one."""
        record = self._record(job, name, on_event, on_done, on_error, context)
        number = record.handle.number
        thread = threading.Thread(target=self._run, args=(number, low_priority), daemon=True,
                                  name=f"trapgui-job-{number}-{name or 'job'}")
        record.worker = thread
        thread.start()
        return record.handle

    def call(self, fn: Callable[[], Any], on_done: Callable[[Any], None] | None = None,
             on_error: Callable[[BaseException], None] | None = None,
             context: QObject | None = None, *, name: str = "") -> JobHandle:
        """A plain call as a job: ``fn()`` on the call pool, ``on_done(result)`` or
        ``on_error(exc)`` on the GUI thread, nothing if ``context`` (or the QObject owning a
        bound-method callback) was deleted meanwhile."""
        record = self._record(lambda _emit, _control: fn(), name or _name_of(fn), None, on_done,
                              on_error, context)
        record.worker = self._pool.submit(self._run, record.handle.number, False)
        return record.handle

    def _record(self, job, name, on_event, on_done, on_error, context) -> _Record:
        handle = JobHandle(next(self._numbers), name, JobControl())
        owner = context if context is not None else _owner_of(on_done, on_event, on_error)
        record = _Record(handle, job, on_event, on_done, on_error, owner, name)
        with self._lock:
            self._jobs[handle.number] = record
        if on_event is not None and not self._relay.timer.isActive():
            self._relay.timer.start()
        return record

    # ---- on the job's thread -------------------------------------------------------------
    def _run(self, number: int, low_priority: bool) -> None:
        if low_priority:
            _lower_this_thread()
        with self._lock:
            record = self._jobs[number]
        try:
            run_job(record.job, self._emitter(number, record.on_event is not None),
                    record.handle.control)
        except BaseException:  # noqa: BLE001 - run_job emitted Finished(error=...)
            pass
        finally:
            del record  # the GUI thread holds the last reference (see the module comment)
            self._relay.ended.emit(number)

    def _emitter(self, number: int, wants_events: bool) -> Callable[[Event], None]:
        def emit(event: Event) -> None:
            with self._lock:
                record = self._jobs.get(number)
                if record is None:
                    return
                if isinstance(event, Finished):
                    record.finished = event
                elif not wants_events:
                    return
                elif isinstance(event, Progress):
                    if record.progress_at is not None:
                        record.pending[record.progress_at] = None
                    record.progress_at = len(record.pending)
                    record.pending.append(event)
                else:
                    record.pending.append(event)
        return emit

    # ---- on the GUI thread ---------------------------------------------------------------
    def _take(self, record: _Record) -> list:
        with self._lock:
            events, record.pending, record.progress_at = record.pending, [], None
        return [e for e in events if e is not None]

    def _deliver(self, record: _Record) -> None:
        events = self._take(record)
        if not events or record.on_event is None or not _alive(record.owner):
            return
        for event in events:
            if not _alive(record.owner):
                return
            self._guarded(record, record.on_event, event)

    def _tick(self) -> None:
        with self._lock:
            records = [r for r in self._jobs.values() if r.on_event is not None]
        for record in records:
            self._deliver(record)
        self._sweep()
        if not records and not self._released:
            self._relay.timer.stop()

    def _end(self, number: int) -> None:
        with self._lock:
            record = self._jobs.pop(number, None)
        if record is None:
            return
        self._deliver(record)
        finished = record.finished or Finished(error=RuntimeError("the job ended without a result"))
        record.handle._ended.set()
        try:
            self._finish(record, finished)
        finally:
            record.job = record.on_event = record.on_done = record.on_error = None
            self._released.append(record)
            self._sweep()
            if self._released and not self._relay.timer.isActive():
                self._relay.timer.start()  # come back to release it

    def _finish(self, record: _Record, finished: Finished) -> None:
        alive = _alive(record.owner)
        error = finished.error
        if error is None:
            if alive and record.on_done is not None:
                self._guarded(record, record.on_done, finished.result)
            return
        handled = alive and record.on_error is not None
        if handled:
            self._guarded(record, record.on_error, error)
        if isinstance(error, Cancelled):
            return
        if not handled or not isinstance(error, TrapguiError):
            report_error(record.title, error, show=alive or record.owner is None)

    def _guarded(self, record: _Record, callback: Callable, value) -> None:
        try:
            callback(value)
        except Exception as exc:  # noqa: BLE001 - a broken callback is a bug: say so
            report_error(f"{record.title or 'a background task'} (in its callback)", exc)

    def _sweep(self) -> None:
        self._released = [r for r in self._released if not r.thread_done()]

    # ---- waiting (tests and shutdown) ----------------------------------------------------
    def pending(self) -> int:
        """Jobs whose end has not been delivered yet."""
        with self._lock:
            return len(self._jobs)

    def running(self) -> list[JobHandle]:
        with self._lock:
            return [r.handle for r in self._jobs.values()]

    def wait(self, timeout_s: float = 10.0) -> bool:
        """Process GUI events until every job has ended and been delivered (at most
        ``timeout_s``); True if none is left."""
        app = QCoreApplication.instance()
        deadline = time.monotonic() + timeout_s
        while self.pending() and time.monotonic() < deadline:
            if app is not None:
                app.processEvents()
            time.sleep(0.005)
        if app is not None:
            app.processEvents()
        return self.pending() == 0

    def shutdown(self, timeout_s: float = 30.0) -> bool:
        """Cancel every job still running and wait for them (the app is closing)."""
        for handle in self.running():
            handle.cancel()
        done = self.wait(timeout_s)
        self._pool.shutdown(wait=done, cancel_futures=True)
        return done


_runner: JobRunner | None = None


def job_runner() -> JobRunner:
    """The application's job runner, created on first use (on the GUI thread)."""
    global _runner
    if _runner is None or not shiboken6.isValid(_runner._relay):
        _runner = JobRunner()
    return _runner


def _alive(owner: QObject | None) -> bool:
    return owner is None or shiboken6.isValid(owner)


def _owner_of(*callbacks) -> QObject | None:
    for cb in callbacks:
        owner = getattr(cb, "__self__", None)
        if isinstance(owner, QObject):
            return owner
    return None


def _name_of(fn) -> str:
    name = getattr(fn, "__name__", "")
    return "" if name == "<lambda>" else name.strip("_").replace("_", " ")


def _lower_this_thread() -> None:
    """Run this thread below the window's priority. On Linux a thread's nice value is its
    own and is inherited by the threads it starts (device workers, decode pools, torch's
    intra-op pool); other systems keep their default priority here."""
    if sys.platform.startswith("linux"):
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOW_PRIORITY_NICE)
        except OSError:
            pass
