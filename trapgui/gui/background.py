"""Run a plain-Python call off the GUI thread and get its result back on the GUI thread.

Why a relay object: a lambda connected to a worker's signal runs in the worker thread; the
relay QObject lives in the GUI thread, so its slots (and the callbacks they call) run there.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

import shiboken6
from PySide6.QtCore import QCoreApplication, QObject, QThreadPool, Signal, Slot


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object, str)

    def __init__(self, on_done, on_error, context=None):
        # Parented to the application, so Qt (not Python's reference count) owns it: the pool
        # thread's task may drop the last Python reference, and a QObject deleted from a
        # thread it does not live in corrupts the heap (seen as rare segfaults during runs).
        # It is deleted on the GUI thread with deleteLater() once it has delivered.
        super().__init__(QCoreApplication.instance())
        self._on_done = on_done
        self._on_error = on_error
        # a widget closed and deleted while the call ran must not be called back: watch the
        # given context, or the QObject a bound-method callback belongs to
        owner = context if context is not None else getattr(on_done, "__self__", None)
        self._owner = owner if isinstance(owner, QObject) else None
        self.done.connect(self._deliver_done)
        self.failed.connect(self._deliver_error)

    def _owner_gone(self) -> bool:
        return self._owner is not None and not shiboken6.isValid(self._owner)

    @Slot(object)
    def _deliver_done(self, value):
        _ACTIVE.discard(self)
        self.deleteLater()
        if self._owner_gone():
            return
        if self._on_done is not None:
            self._on_done(value)

    @Slot(object, str)
    def _deliver_error(self, exc, tb):
        _ACTIVE.discard(self)
        self.deleteLater()
        if self._owner_gone():
            return
        if self._on_error is not None:
            self._on_error(exc)
        else:  # never swallow: a silent failure in a background call is a bug
            print(tb)


def _job(fn, relay: _Relay):
    """The pool runs a plain function, not a Python QRunnable subclass: QThreadPool deletes
    runnables from the pool thread, and shiboken releasing a Python QRunnable's wrapper there
    crashed (BindingManager::releaseWrapper, seen under gdb during a run)."""

    def run():
        try:
            value = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread
            relay.failed.emit(exc, traceback.format_exc())
        else:
            relay.done.emit(value)

    return run


_ACTIVE: set[_Relay] = set()  # relays waiting to deliver


def run_in_background(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    pool: QThreadPool | None = None,
    context: QObject | None = None,
) -> None:
    """Call ``fn()`` on a pool thread; ``on_done(result)`` / ``on_error(exc)`` run on the GUI
    thread. Must be called from the GUI thread (the relay is created here). If ``context`` (or
    the QObject owning a bound-method ``on_done``) has been deleted meanwhile, nothing is
    called."""
    relay = _Relay(on_done, on_error, context)
    _ACTIVE.add(relay)
    (pool or QThreadPool.globalInstance()).start(_job(fn, relay))
