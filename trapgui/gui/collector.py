"""Python's cyclic garbage collector, run on the GUI thread only.

CPython runs a collection on whichever thread's allocation crosses a threshold: in the window
that is usually a device worker, the result writer or a query thread. A collection frees the
unreachable cycles it finds on that thread, Python wrappers of Qt objects included, while the
GUI thread may be inside a Qt call that has released the GIL and is tearing down the very same
wrappers (shiboken's item destructors look a wrapper up, then wait for the GIL to destroy it).
A full collection also holds the GIL for as long as it walks every tracked object: with torch
imported that is hundreds of thousands, and the window freezes meanwhile.

So the window turns automatic collection off and collects from a GUI-thread timer instead,
with CPython's own thresholds (the approach pyqtgraph's GarbageCollector takes for the same
reason); ``freeze_long_lived_objects`` keeps full collections short.
"""

from __future__ import annotations

import gc

from PySide6.QtCore import QObject, QTimer, Slot

INTERVAL_MS = 100


class GuiThreadCollector(QObject):
    """Owns the garbage collector while it exists: automatic collection off, a timer on this
    (the GUI) thread collecting whenever CPython's thresholds say a generation is due."""

    def __init__(self, parent: QObject | None = None, interval_ms: int = INTERVAL_MS):
        super().__init__(parent)
        self._was_enabled = gc.isenabled()
        gc.disable()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.collect_if_due)
        self._timer.start()

    @Slot()
    def collect_if_due(self) -> int:
        """Collect the oldest generation whose count passed its threshold; returns the number
        of unreachable objects found (0 when nothing was due)."""
        counts, thresholds = gc.get_count(), gc.get_threshold()
        due = -1
        for generation in range(3):
            if counts[generation] > thresholds[generation]:
                due = generation
        return gc.collect(due) if due >= 0 else 0

    def stop(self) -> None:
        """Give the collector back to CPython (tests, shutdown)."""
        self._timer.stop()
        if self._was_enabled:
            gc.enable()


def freeze_long_lived_objects() -> None:
    """Take every object alive now out of the collector's full scans (``gc.freeze``).

    Once torch, SQLAlchemy and Qt are imported, some 400,000 objects are tracked and a full
    collection walks them all while holding the GIL: 100 ms to seconds depending on the
    machine. Modules and the model catalogue live as long as the app; freezing them once they
    are imported leaves full collections only the objects created since. Call it after the
    background preload, never during a run (a run's models must stay collectable)."""
    gc.freeze()
