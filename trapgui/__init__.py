"""trapgui: find and identify insects in automated moth light-trap images."""

import os

# Before torch is imported anywhere: torch's OpenMP threads spin at every barrier by default,
# and on a CPU that other work shares (a laptop in use, a loaded CI machine, cluster workers)
# a spinning thread burns the time slice the thread it waits for needs. Inference then ran
# 2.6-5.6x slower than with passive waiting (benchmarks/bench_thread_contention.py). A user's
# own setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from trapgui.core.allocator import limit_malloc_arenas  # noqa: E402

limit_malloc_arenas()

from trapgui.version import __version__  # noqa: E402

__all__ = ["__version__"]
