"""The night cut-off hour in the window: when the setting changes, and at start when traps were
grouped with another hour, every trap is regrouped in the background
(``services.catalogue.regroup_job``: results and decisions kept, individuals counted again).

A processing run or a scan going on is waited for (both write the nights the job moves): the
job starts when they end, and the window says so meanwhile. ``done(sentence)`` reports the
outcome; the window shows it and refreshes its views."""

from __future__ import annotations

import logging

from PySide6.QtCore import QObject, Signal

from trapgui.core.errors import TrapguiError
from trapgui.gui.job_runner import JobHandle, job_runner

log = logging.getLogger(__name__)


class RegroupController(QObject):
    message = Signal(str)  # what is happening (waiting, regrouping)
    done = Signal(str)  # the outcome, one sentence (also after a failure)

    def __init__(self, services, run_controller, scanner, parent=None):
        super().__init__(parent)
        self._services = services
        self._runs = run_controller
        self._scanner = scanner
        self._wanted = False
        self._handle: JobHandle | None = None
        run_controller.finished.connect(self._retry)
        scanner.allDone.connect(self._retry)

    @property
    def busy(self) -> bool:
        return self._handle is not None

    def check_at_start(self) -> None:
        """Regroup when the catalogue's traps were grouped with another hour than the setting
        (a changed setting never applied, or a regroup a kill stopped)."""
        services = self._services
        job_runner().call(lambda: services.catalogue.traps_to_regroup(), self._checked,
                          lambda exc: log.warning("cut-off check failed: %s", exc),
                          context=self, name="checking the night cut-off of the traps")

    def _checked(self, names: list) -> None:
        if names:
            self.request()

    def request(self) -> None:
        """Regroup to the setting's hour now, or when the run or scan in progress ends."""
        self._wanted = True
        self._retry()

    def _retry(self, *_args) -> None:
        if not self._wanted or self._handle is not None:
            return
        hour = self._services.settings.night_cutoff_hour
        if self._runs.busy or self._scanner.busy:
            self.message.emit(f"Nights will start at {hour:02d}:00 once the "
                              f"{'run' if self._runs.busy else 'scan'} in progress ends: every "
                              "trap is then regrouped, keeping its results.")
            return
        self._wanted = False
        self.message.emit(f"Regrouping the traps' nights to start at {hour:02d}:00 "
                          "(results kept)…")
        services = self._services
        self._handle = job_runner().start(
            lambda emit, control: services.catalogue.regroup_job(hour)(emit, control),
            name="regrouping nights", on_done=self._finished, on_error=self._failed,
            context=self, low_priority=True)

    def _finished(self, summary) -> None:
        self._handle = None
        self.done.emit(summary.describe())
        self._retry()  # the hour changed again meanwhile

    def _failed(self, exc: BaseException) -> None:
        self._handle = None
        text = str(exc) if isinstance(exc, TrapguiError) else "an unexpected error (see the log)"
        self.done.emit(f"The nights could not be regrouped: {text} Nothing was lost; "
                       "trapgui tries again at the next start.")
