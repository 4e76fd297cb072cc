"""Dynamic batching (the idea of aqueduct's ``batch_timeout``).

Downloads finish in any order. A device batch is formed from whatever items are ready, up to
the batch size, waiting at most ``batch_timeout`` after the first ready item for more to arrive:
the device never sits idle behind one slow download, and the tail of a job is not held back
waiting for a full batch that will never come.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Generic, TypeVar

T = TypeVar("T")


class DynamicBatcher(Generic[T]):
    """Thread-safe. Producers call :meth:`expect` when work starts (e.g. a download is
    submitted) and :meth:`put` when it is ready; consumers call :meth:`next_batch`."""

    def __init__(self, max_size: int, batch_timeout: float):
        if max_size < 1:
            raise ValueError("max_size must be at least 1")
        self.max_size = max_size
        self.batch_timeout = max(0.0, batch_timeout)
        self._ready: deque[T] = deque()
        self._pending = 0
        self._cond = threading.Condition()

    def expect(self, n: int = 1) -> None:
        with self._cond:
            self._pending += n
            self._cond.notify_all()

    def wait_for_work(self, timeout: float) -> None:
        """Block until an item is expected or ready (or ``wake``, or ``timeout``): a consumer
        with nothing to do sleeps here instead of spinning."""
        with self._cond:
            if not self._ready and self._pending == 0:
                self._cond.wait(timeout)

    def put(self, item: T) -> None:
        with self._cond:
            self._pending = max(0, self._pending - 1)
            self._ready.append(item)
            self._cond.notify_all()

    def forget(self, n: int = 1) -> None:
        """``n`` expected items will never come (e.g. their downloads were cancelled)."""
        with self._cond:
            self._pending = max(0, self._pending - n)
            self._cond.notify_all()

    def wake(self) -> None:
        """Make waiting consumers re-check (e.g. after a stop request)."""
        with self._cond:
            self._cond.notify_all()

    @property
    def pending(self) -> int:
        with self._cond:
            return self._pending

    @property
    def ready(self) -> int:
        with self._cond:
            return len(self._ready)

    def outstanding(self) -> int:
        """Items expected or ready but not yet taken."""
        with self._cond:
            return self._pending + len(self._ready)

    def next_batch(self, wait_first: float, stop: threading.Event | None = None) -> list[T]:
        """Up to ``max_size`` ready items.

        Waits up to ``wait_first`` seconds for a first item (returns ``[]`` at once when nothing
        is ready or expected, or when ``stop`` is set and nothing is ready); then waits at most
        ``batch_timeout`` more for the batch to fill, returning early when it is full or when
        no more items are expected.
        """
        with self._cond:
            first_deadline = time.monotonic() + wait_first
            while not self._ready:
                if self._pending == 0 or (stop is not None and stop.is_set()):
                    return []
                left = first_deadline - time.monotonic()
                if left <= 0:
                    return []
                self._cond.wait(left)
            fill_deadline = time.monotonic() + self.batch_timeout
            while len(self._ready) < self.max_size and self._pending > 0:
                left = fill_deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            n = min(self.max_size, len(self._ready))
            return [self._ready.popleft() for _ in range(n)]
