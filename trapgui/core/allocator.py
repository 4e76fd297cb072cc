"""The C allocator's per-thread arenas, limited (Linux, glibc).

glibc gives each thread that allocates its own arena (up to 8 per core). A run's decode
threads, device thread and writer each free large buffers (4K images, activations) into their
own arena, where the memory stays resident for that thread's next use: peak RSS of
`trapgui process` with three models on 4K images was 1.77-1.85 GB with the default and
1.69-1.74 GB with two arenas, at the same speed (the environment variable
``MALLOC_ARENA_MAX`` did the same; lowering the mmap threshold or trimming after each batch
saved more but cost 1-2 s of system time per image). Called once at import, before threads start.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_ARENA_MAX = -8  # glibc malloc.h


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """True if glibc accepted the limit (False elsewhere; a user's MALLOC_ARENA_MAX wins)."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries: nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return mallopt(M_ARENA_MAX, arenas) == 1
