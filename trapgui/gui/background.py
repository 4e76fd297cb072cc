"""Run a plain-Python call off the GUI thread and get its result back on the GUI thread.

Why a relay object: a lambda connected to a worker's signal runs in the worker thread; the
relay QObject lives in the GUI thread, so its slots (and the callbacks they call) run there.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal, Slot


class _Relay(QObject):
    done = Signal(object)
    failed = Signal(object, str)

    def __init__(self, on_done, on_error):
        super().__init__()
        self._on_done = on_done
        self._on_error = on_error
        self.done.connect(self._deliver_done)
        self.failed.connect(self._deliver_error)

    @Slot(object)
    def _deliver_done(self, value):
        _ACTIVE.discard(self)
        if self._on_done is not None:
            self._on_done(value)

    @Slot(object, str)
    def _deliver_error(self, exc, tb):
        _ACTIVE.discard(self)
        if self._on_error is not None:
            self._on_error(exc)
        else:  # never swallow: a silent failure in a background call is a bug
            print(tb)


class _Task(QRunnable):
    def __init__(self, fn, relay: _Relay):
        super().__init__()
        self._fn = fn
        self._relay = relay

    def run(self):
        try:
            value = self._fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the GUI thread
            self._relay.failed.emit(exc, traceback.format_exc())
        else:
            self._relay.done.emit(value)


_ACTIVE: set[_Relay] = set()  # keeps relays alive until they deliver


def run_in_background(
    fn: Callable[[], Any],
    on_done: Callable[[Any], None] | None = None,
    on_error: Callable[[BaseException], None] | None = None,
    pool: QThreadPool | None = None,
) -> None:
    """Call ``fn()`` on a pool thread; ``on_done(result)`` / ``on_error(exc)`` run on the GUI
    thread. Must be called from the GUI thread (the relay is created here)."""
    relay = _Relay(on_done, on_error)
    _ACTIVE.add(relay)
    (pool or QThreadPool.globalInstance()).start(_Task(fn, relay))
