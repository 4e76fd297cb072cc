"""The one thread that writes results: each batch through the sink in one transaction, retried
a few times (a lock held past the busy timeout, a full disk that is cleared), then reported."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence

from tenacity import Retrying, stop_after_attempt, wait_incrementing

from trapgui.pipeline.processor import ProcessedImage
from trapgui.pipeline.work import ResultSink, WorkBatch

log = logging.getLogger(__name__)

ATTEMPTS = 3


class ResultWriter:
    """``on_written(batch, results, written)`` runs on the writer thread after each commit;
    ``on_error(batch, exc)`` when a batch could not be written after the retries (its work is
    not lost: the source hands it out again, e.g. after its lease expires)."""

    def __init__(self, sink: ResultSink,
                 on_written: Callable[[WorkBatch, Sequence[ProcessedImage], int], None],
                 on_error: Callable[[WorkBatch, BaseException], None], *,
                 retry_wait_s: float = 0.5, stage_seconds: dict[str, float] | None = None):
        self.sink = sink
        self._on_written = on_written
        self._on_error = on_error
        self._retry_wait_s = retry_wait_s
        self._stage_seconds = stage_seconds  # time in sink.write, when profiling
        self._queue: queue.Queue[tuple[WorkBatch, Sequence[ProcessedImage]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._loop, name="trapgui-writer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def put(self, batch: WorkBatch, results: Sequence[ProcessedImage]) -> None:
        self._queue.put((batch, results))

    def pending(self) -> int:
        return self._queue.qsize()

    def close(self) -> None:
        """Write everything queued so far, then stop."""
        self._queue.put(None)
        self._thread.join()

    def _loop(self) -> None:
        while (request := self._queue.get()) is not None:
            self._write(*request)

    def _write(self, batch: WorkBatch, results: Sequence[ProcessedImage]) -> None:
        retrying = Retrying(stop=stop_after_attempt(ATTEMPTS), reraise=True,
                            wait=wait_incrementing(self._retry_wait_s, self._retry_wait_s))
        started = time.perf_counter()
        try:
            written = retrying(self.sink.write, batch, results)
        except Exception as exc:  # noqa: BLE001 - reported; the work is handed out again
            log.exception("Could not write a batch of %d results", len(results))
            self._safe(self._on_error, batch, exc)
            return
        if self._stage_seconds is not None:
            self._stage_seconds["writes"] = (self._stage_seconds.get("writes", 0.0)
                                             + time.perf_counter() - started)
        self._safe(self._on_written, batch, results, written)

    @staticmethod
    def _safe(fn, *args) -> None:
        try:
            fn(*args)
        except Exception:  # noqa: BLE001 - a callback bug never stops the writer
            log.exception("Result callback failed")
