"""Scans dropped or opened trap folders one after another, off the GUI thread.

Progress from the scanner thread is stored under a lock and shown by a GUI-thread timer; the
trap tree is reloaded every second while scanning, so nights appear as soon as they are known
(the scanner commits in chunks).
"""

from __future__ import annotations

import threading
from pathlib import Path

from PySide6.QtCore import QObject, QTimer, Signal, Slot

from trapgui.gui.background import run_in_background


class ScanController(QObject):
    scanStarted = Signal(str)
    progressed = Signal(str, int, int)  # text, done, total
    scanFinished = Signal(object)  # ScanReport
    scanFailed = Signal(str, object)  # folder, exception
    allDone = Signal()
    tick = Signal()  # while scanning, about once per second: time to refresh the tree

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._queue: list[str] = []
        self._current: str | None = None
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[str, int, int] | None = None
        self._timer = QTimer(self, interval=200)
        self._timer.timeout.connect(self._poll)
        self._ticks = 0

    @property
    def busy(self) -> bool:
        return self._current is not None

    def scan(self, folders: list[str]) -> None:
        for folder in folders:
            if folder not in self._queue and folder != self._current:
                self._queue.append(folder)
        if self._current is None:
            self._next()

    def cancel(self) -> None:
        self._queue.clear()
        self._cancel.set()

    def _next(self) -> None:
        if not self._queue:
            self._current = None
            self._timer.stop()
            self.allDone.emit()
            return
        folder = self._current = self._queue.pop(0)
        self._cancel.clear()
        self.scanStarted.emit(folder)
        name = Path(folder).name or folder

        def progress(phase, done, total):
            with self._lock:
                self._progress = (f"Scanning {name}: {phase}", done, total)

        self._timer.start()
        run_in_background(
            lambda: self._services.catalogue.scan_folder(folder, progress, self._cancel.is_set),
            self._done, lambda exc: self._failed(folder, exc), context=self)

    @Slot()
    def _poll(self) -> None:
        with self._lock:
            progress, self._progress = self._progress, None
        if progress is not None:
            self.progressed.emit(*progress)
        self._ticks += 1
        if self._ticks % 5 == 0:
            self.tick.emit()

    def _done(self, report) -> None:
        self._poll()
        self.scanFinished.emit(report)
        self._next()

    def _failed(self, folder: str, exc: BaseException) -> None:
        self.scanFailed.emit(folder, exc)
        self._next()
