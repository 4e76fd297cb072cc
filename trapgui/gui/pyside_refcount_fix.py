"""Work around a reference-counting bug of PySide6 6.12.0 on Python 3.11.

``SignalInstance.emit()`` returns ``True`` and ``QThreadPool.start()`` returns ``None``
without adding a reference: each discarded result takes one reference from the interpreter's
only ``True`` / ``None``. After a few thousand emits the count reaches zero and CPython aborts
("Fatal Python error: bool_dealloc" / "none_dealloc"), mid-run or at exit. Python 3.12 made
these objects immortal, which is why the bug does not show there.

The fix does what 3.12 does: it gives True, False and None a reference count so large that no
session can exhaust it. It is applied only when the bug is measured, so a fixed PySide6 (or
Python >= 3.12) leaves the interpreter untouched.
"""

from __future__ import annotations

import ctypes
import sys

_HEADROOM = 1 << 40  # ~10^12 leaked references: centuries of emits
_applied = False


def _leaks_on_emit() -> bool:
    from PySide6.QtCore import QObject, Signal

    class _Probe(QObject):
        ping = Signal(object)

    probe = _Probe()
    before = sys.getrefcount(True)
    for _ in range(4):
        probe.ping.emit(0)
    return sys.getrefcount(True) < before


def apply() -> bool:
    """Immortalise True/False/None if this PySide6 leaks their references; idempotent.
    Returns whether the workaround is active."""
    global _applied
    if _applied:
        return True
    if sys.version_info >= (3, 12) or sys.implementation.name != "cpython":
        return False
    if not _leaks_on_emit():
        return False
    for obj in (True, False, None):
        # ob_refcnt is the first field of every CPython object (Py_ssize_t)
        ctypes.c_ssize_t.from_address(id(obj)).value += _HEADROOM
    _applied = True
    return True
