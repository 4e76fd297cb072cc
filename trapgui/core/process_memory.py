"""This process's resident memory and its high-water mark, read from /proc (Linux).

What one call costs in memory at its peak (``pipeline.batch_tuning`` asks this of each batch
size it tries): reset the high-water mark to the current resident size, make the call, read
the mark. Writing "5" to /proc/self/clear_refs resets VmHWM (Linux 4.0 and later, proc(5));
sampling VmRSS instead would miss the peak inside a forward pass. Elsewhere (macOS, Windows,
a kernel that refuses the write) each function returns None or False and callers go by
speed alone.
"""

from __future__ import annotations

import sys
from pathlib import Path

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        for line in _STATUS.read_text(encoding="ascii", errors="replace").splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # the kernel reports kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def resident_mb() -> float | None:
    """VmRSS: resident memory now, MB."""
    return _status_mb("VmRSS")


def peak_mb() -> float | None:
    """VmHWM: the most resident memory since the process started or ``reset_peak``, MB."""
    return _status_mb("VmHWM")


def reset_peak() -> bool:
    """Make VmHWM the current resident size; False where the kernel does not allow it."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        _CLEAR_REFS.write_text("5", encoding="ascii")
    except OSError:
        return False
    peak, now = peak_mb(), resident_mb()
    # A kernel that accepts the write but ignores "5" leaves the old, higher mark.
    return peak is not None and now is not None and peak <= now + 4
