"""Scans dropped or opened trap folders one after another, each as a job
(``services.catalogue.scan_job``) on the window's job runner.

Before each scan a short job looks at the folder's subfolders (``trap_plan_job``: directory
listings, off the GUI thread). When they are different trap sites and no answer is remembered,
``choiceNeeded`` asks the window, which calls ``answer`` with "subfolders", "one" or None (do
not open it); the controller stays busy meanwhile.

The trap tree is reloaded about once a second while scanning, so nights appear as soon as they
are known (the scanner commits in chunks).
"""

from __future__ import annotations

import time

from PySide6.QtCore import QObject, Signal

from trapgui.core.jobs import Progress
from trapgui.gui.job_runner import JobHandle, job_runner

TICK_S = 1.0


class ScanController(QObject):
    scanStarted = Signal(str)
    progressed = Signal(str, int, int)  # text, done, total (0: not known yet)
    scanFinished = Signal(object)  # ScanReport, one per trap a folder made
    trapsScanned = Signal(object)  # TrapsReport: the folder's traps and notes
    choiceNeeded = Signal(str, object)  # folder, TrapPlan: call answer() with the choice
    scanFailed = Signal(str, object)  # folder, exception
    allDone = Signal()
    tick = Signal()  # while scanning, about once per second: time to refresh the tree

    def __init__(self, services, parent=None):
        super().__init__(parent)
        self._services = services
        self._queue: list[str] = []
        self._current: str | None = None
        self._handle: JobHandle | None = None
        self._waiting = None  # the TrapPlan whose question is open
        self._last_tick = 0.0

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
        if self._handle is not None:
            self._handle.cancel()
        if self._waiting is not None:
            self.answer(None)

    def _next(self) -> None:
        self._handle = None
        if not self._queue:
            self._current = None
            self.allDone.emit()
            return
        folder = self._current = self._queue.pop(0)
        self.scanStarted.emit(folder)
        self._last_tick = time.monotonic()
        services = self._services
        self._handle = job_runner().start(
            lambda emit, control: services.catalogue.trap_plan_job(folder)(emit, control),
            name=f"looking into {folder}", on_done=self._planned,
            on_error=lambda exc: self._failed(folder, exc), context=self)

    def _planned(self, plan) -> None:
        self._handle = None
        remembered = self._services.settings.site_subfolders
        if self._services.catalogue.needs_trap_question(plan, remembered):
            self._waiting = plan
            self.choiceNeeded.emit(self._current, plan)
            return
        splits = plan.layout is not None and plan.layout.splits and not plan.already_one_trap
        choice = remembered if splits and remembered != "ask" else "auto"
        self._start_scan(choice, plan)

    def answer(self, choice: str | None) -> None:
        """The window's answer to ``choiceNeeded``: "subfolders", "one" or None (skip)."""
        plan, self._waiting = self._waiting, None
        if plan is None:
            return
        if choice is None:
            self._next()
        else:
            self._start_scan(choice, plan)

    def _start_scan(self, choice: str, plan) -> None:
        folder, services = self._current, self._services
        layout = plan.layout
        self._handle = job_runner().start(
            lambda emit, control: services.catalogue.scan_job(folder, choice, layout)(
                emit, control),
            name=f"scanning {folder}", on_event=self._on_event, on_done=self._done,
            on_error=lambda exc: self._failed(folder, exc), context=self)

    def _on_event(self, event) -> None:
        if isinstance(event, Progress):
            self.progressed.emit(event.message, event.done, event.total or 0)
        if time.monotonic() - self._last_tick >= TICK_S:
            self._last_tick = time.monotonic()
            self.tick.emit()

    def _done(self, traps) -> None:
        for report in traps.reports:
            self.scanFinished.emit(report)
        self.trapsScanned.emit(traps)
        self._next()

    def _failed(self, folder: str, exc: BaseException) -> None:
        self.scanFailed.emit(folder, exc)
        self._next()
