"""Run a plain-Python call off the GUI thread and get its result back on the GUI thread.

Design, and why:
- The calls run on a Python ``ThreadPoolExecutor``, not ``QThreadPool``: QThreadPool deletes
  its runnables (and the Python callable they hold) on the pool thread, and shiboken releasing
  Python wrappers there corrupted the heap (native crashes during long runs).
- One relay QObject, created once on the GUI thread and never deleted, carries every result
  back through a queued signal whose payload is a plain Python tuple. No QObject is ever
  created, owned or deleted by a pool thread. (A lambda connected to a worker's signal would
  run in the worker thread; the relay's slot runs on the thread the relay lives in.)
- A callback whose owner widget was deleted meanwhile is skipped: its owner is the ``context``
  given, or the QObject a bound-method callback belongs to.
"""

from __future__ import annotations

import itertools
import threading
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, Signal, Slot

MAX_WORKERS = 4  # enough to overlap a slow query with image decodes on a 2-core laptop


class _Relay(QObject):
    deliver = Signal(object)  # (token, ok, value_or_exc, traceback_text)

    def __init__(self):
        super().__init__()
        self.callbacks: dict[int, tuple] = {}
        self.deliver.connect(self._deliver)

    @Slot(object)
    def _deliver(self, payload) -> None:
        token, ok, value, tb = payload
        on_done, on_error, owner = self.callbacks.pop(token)
        _pending.release_one()
        if owner is not None and not shiboken6.isValid(owner):
            return
        if ok:
            if on_done is not None:
                on_done(value)
        elif on_error is not None:
            on_error(value)
        else:  # never swallow: a silent failure in a background call is a bug
            print(tb)


class _Pending:
    """Counts calls not yet delivered, so shutdown and tests can wait for them."""

    def __init__(self):
        self._count = 0
        self._cond = threading.Condition()

    def add_one(self) -> None:
        with self._cond:
            self._count += 1

    def release_one(self) -> None:
        with self._cond:
            self._count -= 1
            self._cond.notify_all()

    @property
    def count(self) -> int:
        return self._count


_relay: _Relay | None = None
_executor: ThreadPoolExecutor | None = None
_tokens = itertools.count(1)
_pending = _Pending()


def _ensure_started() -> tuple[_Relay, ThreadPoolExecutor]:
    global _relay, _executor
    if _relay is None or not shiboken6.isValid(_relay):
        _relay = _Relay()
        app = QCoreApplication.instance()
        if app is not None:
            _relay.moveToThread(app.thread())
    if _executor is None:
        _executor = ThreadPoolExecutor(MAX_WORKERS, thread_name_prefix="trapgui-bg")
    return _relay, _executor


def run_in_background(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    context: QObject | None = None,
) -> None:
    """Call ``fn()`` on a worker thread; ``on_done(result)`` / ``on_error(exc)`` run on the GUI
    thread later. Call from the GUI thread. Nothing is called back if ``context`` (or the
    QObject owning a bound-method ``on_done``) has been deleted meanwhile."""
    relay, executor = _ensure_started()
    owner = context if context is not None else getattr(on_done, "__self__", None)
    token = next(_tokens)
    relay.callbacks[token] = (on_done, on_error, owner if isinstance(owner, QObject) else None)
    _pending.add_one()
    signal = relay.deliver

    def job() -> None:
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread
            signal.emit((token, False, exc, traceback.format_exc()))
        else:
            signal.emit((token, True, value, ""))

    executor.submit(job)


def pending_calls() -> int:
    """Background calls whose result has not been delivered yet."""
    return _pending.count


def wait_for_background(timeout_s: float = 10.0) -> bool:
    """Let running calls finish and deliver (processes GUI events meanwhile); True if idle.
    For shutdown and tests."""
    import time

    app = QCoreApplication.instance()
    deadline = time.monotonic() + timeout_s
    while _pending.count > 0 and time.monotonic() < deadline:
        if app is not None:
            app.processEvents()
        time.sleep(0.005)
    return _pending.count == 0
