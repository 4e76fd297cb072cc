"""Reading many file headers on a few processes (Pillow's header parsing is CPU-bound).

Processes are started with ``spawn``, never ``fork``: forking a process that runs Qt or other
threads can deadlock the child. If the processes cannot start or die (an interpreter without
an importable ``__main__``, a crash in a decoder), the remaining files are read in-process.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from trapgui.scan.files import FoundFile, Probe, iter_chunks, probe_file, probe_many

log = logging.getLogger(__name__)

# Below POOL_MIN_FILES starting the processes costs more than it saves.
POOL_MIN_FILES = 3000
POOL_BATCH = 250


def default_workers() -> int:
    # (frozen apps are safe too: trapgui.app.main calls multiprocessing.freeze_support())
    return max(1, min(4, os.cpu_count() or 1))


def probe_all(files: list[FoundFile], workers: int) -> Iterator[Probe]:
    """Probe results in the order of ``files``; in a process pool for big scans."""
    if workers <= 1 or len(files) < POOL_MIN_FILES:
        for f in files:
            yield probe_file(f)
        return
    batches = list(iter_chunks(files, POOL_BATCH))
    finished = 0
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        in_flight = deque(pool.submit(probe_many, b) for b in batches[:4 * workers])
        queued = len(in_flight)
        while in_flight:
            probes = in_flight.popleft().result()
            if queued < len(batches):  # a bounded look-ahead, so a cancel stops promptly
                in_flight.append(pool.submit(probe_many, batches[queued]))
                queued += 1
            yield from probes
            finished += 1
    except (BrokenProcessPool, OSError) as exc:
        log.warning("Header-reading processes failed (%s); reading in this process.", exc)
        for batch in batches[finished:]:
            yield from probe_many(batch)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
