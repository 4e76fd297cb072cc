"""The one thread that writes results: each batch's detections, classifications and job states
in one transaction (``db.jobqueue.complete``), then tells the engine what was committed."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from trapgui.core.types import ImageResult
from trapgui.db import jobqueue

log = logging.getLogger(__name__)

RETRIES = 3


@dataclass
class WriteRequest:
    worker: str  # the queue's worker name (claims are checked against it)
    device: str  # label for events
    claims: Sequence  # db.jobqueue.ClaimedImage, same order as results
    results: list[ImageResult]


class ResultWriter:
    """``on_committed(request, written)`` runs in the writer thread after each commit;
    ``on_error(request, exc)`` when a batch could not be written after retries (its claims
    stay claimed, their leases expire, and the images are processed again later)."""

    def __init__(self, db, pipeline_id: int, run_id: int | None,
                 on_committed: Callable[[WriteRequest, int], None],
                 on_error: Callable[[WriteRequest, BaseException], None]):
        self.db = db
        self.pipeline_id = pipeline_id
        self.run_id = run_id
        self._on_committed = on_committed
        self._on_error = on_error
        self._queue: queue.Queue[WriteRequest | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="trapgui-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, request: WriteRequest) -> None:
        self._queue.put(request)

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Write everything queued so far, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while True:
            request = self._queue.get()
            if request is None:
                return
            self._write(request)

    def _write(self, request: WriteRequest) -> None:
        for attempt in range(1, RETRIES + 1):
            try:
                written = jobqueue.complete(self.db, self.pipeline_id, self.run_id,
                                            request.worker, request.results)
            except Exception as exc:  # locked for longer than the busy timeout, disk full...
                if attempt == RETRIES:
                    log.exception("Could not write a batch of %d results", len(request.results))
                    self._safe(self._on_error, request, exc)
                    return
                time.sleep(0.5 * attempt)
                continue
            self._safe(self._on_committed, request, written)
            return

    @staticmethod
    def _safe(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("Result callback failed")
