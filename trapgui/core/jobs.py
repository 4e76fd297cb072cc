"""The job contract: one shape for every long piece of work.

A job is a plain function ``job(emit, control) -> result``. Scanning a folder, processing
images (local queue, remote tasks, a cluster), downloading a model, exporting and tracking
all have this shape, so the CLI and the GUI run any of them the same way:

- ``emit(event)`` reports what happens, with the typed events below. It may be called from
  any thread the job starts (device workers, the writer), so a consumer must be thread-safe
  and quick (append to a list, put on a queue). An exception raised by ``emit`` is logged and
  ignored by the job: a broken display never stops work.
- ``control`` is a :class:`JobControl`: the caller pauses, resumes or cancels through it, the
  job looks at it between units of work (a batch, a chunk of files, a block of bytes).
- The job returns its result, or raises: :class:`~trapgui.core.errors.Cancelled` when it was
  cancelled before it could produce one, a :class:`~trapgui.core.errors.TrapguiError` with a
  sentence for the user, anything else for a bug.

:func:`run_job` runs a job and emits :class:`Finished` with its outcome; the GUI's job runner
and the CLI both use it. No Qt here, no threads of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from trapgui.core.errors import Cancelled

log = logging.getLogger(__name__)

T = TypeVar("T")


# ---- events ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Progress:
    """How far a job is. ``total`` None: not known (yet). ``message`` says what is happening
    now, in words ("Scanning vermont: reading headers", "Waiting for the server")."""

    done: int
    total: int | None = None
    unit: str = "items"  # images, files, bytes, rows, tasks, nights
    failed: int = 0
    rate: float = 0.0  # units per second, this run
    eta_s: float | None = None
    message: str = ""
    paused: bool = False


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """One device worker of a processing run."""

    device: str  # "cuda:0", "cpu", "cpu#2" (a second CPU worker), "dask:tcp://..."
    name: str  # "NVIDIA GeForce RTX 4090", "CPU (4 threads)"
    state: str  # loading | working | waiting | paused | idle | stopped | error
    batch_size: int
    images_per_s: float = 0.0
    images_done: int = 0


@dataclass(frozen=True, slots=True)
class RunProgress(Progress):
    """Progress of a processing run (local, remote or cluster: one panel shows them all).

    ``state`` is what the run does now: ``working``, ``waiting`` (for work, e.g. tasks other
    workers hold), ``posting`` (sending results), ``offline`` (server unreachable, retrying),
    ``complete`` (nothing left), ``stopping``."""

    detections: int = 0
    devices: tuple[DeviceStatus, ...] = ()
    state: str = "working"
    posted: int | None = None  # remote runs: results the server has acknowledged
    waiting_to_post: int = 0
    resent: int = 0  # remote runs: results answered again (the server gave a task out twice)
    offline_since: float | None = None  # unix time the server stopped answering


@dataclass(frozen=True, slots=True)
class RunPlanned:
    """A processing run knows what it will do (emitted once, before its first progress)."""

    description: str  # "2 selected nights of vermont", "Antenna job 12 (quebec_vermont)"
    pipeline: str  # the models, in words: "builtin + moth_binary_resnet50_2024"
    in_scope: int | None  # images in scope; None when not known (remote jobs)
    newly_queued: int = 0
    # classifiers the settings choose that this run goes without, their weights missing
    # (pipeline.spec.LeftOut: key, name, what it would add)
    left_out: tuple = ()


@dataclass(frozen=True, slots=True)
class RunSummary:
    """What a processing run did (local, remote or cluster). ``status``: finished, cancelled
    or crashed. Counts are of this run; ``remaining`` is what is still to do in its scope."""

    run_id: int | None
    pipeline_id: int | None
    status: str
    done: int
    failed: int
    detections: int
    elapsed_s: float
    images_per_s: float
    remaining: int
    devices: tuple[DeviceStatus, ...] = ()
    notes: tuple[str, ...] = ()
    failed_earlier: int = 0  # images of the scope that had failed before this run
    posted: int | None = None  # remote runs: results the server has
    unposted: int = 0  # remote runs: results kept locally, posted at the next start
    error: str | None = None  # why a crashed run stopped, in one sentence
    # the tracking that followed the run (pipeline.tracking_job.TrackingSummary), if any
    tracking: Any = None


@dataclass(frozen=True, slots=True)
class LogLine:
    level: str  # info | warning | error
    message: str  # one sentence for the user


@dataclass(frozen=True, slots=True)
class BatchCommitted:
    """Results of these catalogue images are in the database: views showing them refresh."""

    image_ids: tuple[int, ...]
    detections: int = 0
    device: str = ""


@dataclass(frozen=True, slots=True)
class ItemFailed:
    """One unit of work failed with a reason (an image, a file, a task); the job goes on."""

    item_id: int | str | None
    name: str  # what the user recognises: a file path, "task 17 (image 42)"
    reason: str  # a sentence, also stored with the item where the job has somewhere to keep it


@dataclass(frozen=True, slots=True)
class Finished:
    """The job has ended: ``result`` is what it returned, ``error`` what it raised (None when
    it returned). Emitted by :func:`run_job`, never by the job itself."""

    result: Any = None
    error: BaseException | None = None

    @property
    def cancelled(self) -> bool:
        return isinstance(self.error, Cancelled)


Event = Progress | RunPlanned | LogLine | BatchCommitted | ItemFailed | Finished
Emit = Callable[[Event], None]


def ignore(_event: Event) -> None:
    """An ``emit`` for callers that do not want events."""


def safe_emit(emit: Emit | None) -> Emit:
    """``emit`` wrapped so that an exception in the consumer is logged, never raised into the
    job's threads."""
    if emit is None:
        return ignore

    def guarded(event: Event) -> None:
        try:
            emit(event)
        except Exception:  # noqa: BLE001 - a broken listener never stops the work
            log.exception("Job event consumer raised; ignored")

    return guarded


# ---- control -----------------------------------------------------------------------------
class JobControl:
    """Pause, resume, cancel and abort a running job. Thread-safe; any thread may call any
    method. ``cancel`` asks the job to stop after the unit of work in hand (nothing is lost:
    what was not done stays to do); ``abort`` asks it to stop at once (a second Ctrl+C, a
    closing app): work in hand may be left for the next run to take over."""

    def __init__(self) -> None:
        self._cancel = threading.Event()
        self._abort = threading.Event()
        self._running = threading.Event()  # set = not paused
        self._running.set()
        self._listeners: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    # requests
    def pause(self) -> None:
        self._running.clear()
        self._notify()

    def resume(self) -> None:
        self._running.set()
        self._notify()

    def cancel(self) -> None:
        self._cancel.set()
        self._running.set()  # a paused job must wake up to stop
        self._notify()

    def abort(self) -> None:
        self._abort.set()
        self.cancel()

    # state
    @property
    def paused(self) -> bool:
        return not self._running.is_set() and not self._cancel.is_set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    # for jobs
    def wait_while_paused(self, timeout: float | None = None) -> bool:
        """Block while paused (at most ``timeout`` s); True when the job may go on (not
        paused, not cancelled)."""
        self._running.wait(timeout)
        return self._running.is_set() and not self._cancel.is_set()

    def sleep(self, seconds: float) -> bool:
        """Wait up to ``seconds``, waking early on cancel; True if cancelled meanwhile."""
        return self._cancel.wait(max(0.0, seconds))

    def raise_if_cancelled(self, message: str = "Cancelled.") -> None:
        if self._cancel.is_set():
            raise Cancelled(message)

    def on_change(self, listener: Callable[[], None]) -> None:
        """``listener()`` runs (on the requesting thread) after every pause, resume, cancel or
        abort: a job that blocks elsewhere (a condition variable, a queue) wakes up with it."""
        with self._lock:
            self._listeners.append(listener)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:  # noqa: BLE001 - a listener never breaks the caller
                log.exception("JobControl listener raised; ignored")


# ---- running -----------------------------------------------------------------------------
class Job(Protocol[T]):
    def __call__(self, emit: Emit, control: JobControl) -> T: ...


def run_job(job: Callable[[Emit, JobControl], T], emit: Emit | None = None,
            control: JobControl | None = None) -> T:
    """Run ``job`` on this thread, emit :class:`Finished` with its outcome, and return its
    result (or re-raise what it raised)."""
    emit = safe_emit(emit)
    control = control or JobControl()
    try:
        result = job(emit, control)
    except BaseException as exc:
        emit(Finished(error=exc))
        raise
    emit(Finished(result=result))
    return result


@dataclass
class EventLog:
    """A thread-safe ``emit`` that keeps every event (tests, scripts)."""

    events: list = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, event: Event) -> None:
        with self._lock:
            self.events.append(event)

    def of(self, kind: type) -> list:
        with self._lock:
            return [e for e in self.events if isinstance(e, kind)]
