"""The C allocator's per-thread arenas, limited, and their free memory given back (Linux,
glibc).

glibc gives each thread that allocates its own arena (up to 8 per core). A run's decode
threads, device thread and writer each free large buffers (4K images, activations) into their
own arena, where the memory stays resident for that thread's next use; two arenas cost no
speed (``MALLOC_ARENA_MAX`` does the same). Called once at import, before threads start.

Even with two arenas the free chunks between live ones grew to ~400 MB of a 1.6 GB run,
because image- and activation-sized buffers (below glibc's 32 MB mmap limit) are carved from
the arenas in an order that leaves holes. ``release_free_memory`` (``malloc_trim``: the free
pages of every arena, not only the top, go back to the system) runs after each device batch;
lowering the mmap threshold instead saved as much but cost 20-80 % of the time (every
activation mapped and faulted in afresh). ``TRAPGUI_MALLOC_TRIM=0`` turns the trimming off
(to measure it: benchmarks/bench_process_memory.py; the figures are in docs/engine.md,
"where a run's memory goes"). ``release_free_memory_paced`` keeps its cost under 2 % of the
time where batches are short (a GPU): after a call it waits 50 times as long as the call took.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys
import threading
import time

M_ARENA_MAX = -8  # glibc malloc.h

PACED_SHARE = 0.02  # of the time, at most, spent trimming
_paced_lock = threading.Lock()
_paced_next = 0.0  # time.monotonic() before which a paced call does nothing


@functools.cache
def libc():
    """The C library (glibc on Linux), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """True if glibc accepted the limit (False elsewhere; a user's MALLOC_ARENA_MAX wins)."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    mallopt = getattr(libc(), "mallopt", None)
    if mallopt is None:  # not Linux, or musl and other C libraries: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1


@functools.cache
def _malloc_trim():
    """glibc's malloc_trim, or None where there is none."""
    trim = getattr(libc(), "malloc_trim", None)
    if trim is not None:
        trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return trim


def release_free_memory() -> bool:
    """Give the free pages of the C allocator's arenas back to the system; True if it could
    (glibc, and not turned off by ``TRAPGUI_MALLOC_TRIM=0``)."""
    trim = _malloc_trim()
    if trim is None or os.environ.get("TRAPGUI_MALLOC_TRIM", "1") == "0":
        return False
    trim(0)
    return True


def release_free_memory_paced() -> bool:
    """``release_free_memory`` unless the last call was too recent (see PACED_SHARE); any
    thread may call it, only one trims at a time. True if it trimmed."""
    global _paced_next
    if not _paced_lock.acquire(blocking=False):
        return False
    try:
        started = time.monotonic()
        if started < _paced_next:
            return False
        done = release_free_memory()
        ended = time.monotonic()
        _paced_next = ended + (ended - started) / PACED_SHARE
        return done
    finally:
        _paced_lock.release()
