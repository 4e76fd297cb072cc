"""Exports for the window's Export dialog: every format of ``core.export_formats``.

The dialog builds a request with :meth:`ExportService.request`, shows :meth:`check`'s problems
before the user starts, and runs :meth:`export_job` (the job contract: ``job(emit, control)``)
on a background thread; ``emit`` receives ``Progress`` and ``LogLine`` events, ``control``
pauses and cancels (nothing is left behind under the chosen name). Every method that touches
the catalogue blocks: call it from a background thread. The old detections-only methods
(``count``, ``export_detections``) stay for the current dialog.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from trapgui.core.errors import TrapguiError, UserInputError
from trapgui.core.export_formats import FORMATS, ExportFormat, format_by_key
from trapgui.core.jobs import Emit, JobControl, Progress
from trapgui.db.export_queries import (
    ExportScope,
    PipelineChoice,
    Thresholds,
    pipelines_in_scope,
    resolve_pipeline,
)
from trapgui.export.common import ExportResult
from trapgui.export.csv_export import (
    ExportFilter,
    ExportReport,
    count_detections,
    export_detections,
)
from trapgui.export.dispatch import ExportRequest, run_export
from trapgui.services.results_service import resolve_db


@dataclass(frozen=True, slots=True)
class ExportCheck:
    """What the dialog shows before an export: problems stop it, warnings do not."""

    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    pipeline_id: int | None = None  # the model configuration it will use

    @property
    def ok(self) -> bool:
        return not self.problems


class ExportService:
    def __init__(self, db, settings=None):
        self._source = db
        self._settings = settings

    @property
    def db(self):
        return resolve_db(self._source)

    @property
    def settings(self):
        return self._settings if self._settings is not None else getattr(
            self._source, "settings", None)

    @staticmethod
    def _filter(night_ids: Sequence[int] | None, min_score: float | None,
                min_label_score: float | None) -> ExportFilter:
        return ExportFilter(night_ids=list(night_ids) if night_ids else None,
                            min_detection_score=min_score,
                            min_classification_score=min_label_score or None)

    def count(self, night_ids: Sequence[int] | None, min_score: float | None = None,
              min_label_score: float | None = None) -> int:
        """How many rows an export with these settings would write."""
        return count_detections(self.db, self._filter(night_ids, min_score, min_label_score))

    def default_path(self, folder: str | Path | None = None) -> Path:
        """A file name that says what and when: ``detections-YYYYmmdd-HHMM.csv``."""
        base = Path(folder) if folder else Path.home()
        return base / f"detections-{dt.datetime.now():%Y%m%d-%H%M}.csv"

    def export_detections(
        self,
        path: str | Path,
        night_ids: Sequence[int] | None,
        min_score: float | None = None,
        min_label_score: float | None = None,
        *,
        excel_bom: bool = False,
        progress: Callable[[int, int], None] | None = None,
        cancel=None,
    ) -> ExportReport:
        """Write the detections of ``night_ids`` (all nights when empty) scoring at least
        ``min_score``. ``min_label_score`` keeps only detections whose label reaches it (None
        keeps every detection, with its label and score in the file). Raises ``Cancelled`` when
        cancelled (no file is left behind) and ``UserInputError`` for a bad path."""
        return export_detections(self.db, path, self._filter(night_ids, min_score, min_label_score),
                                 excel_bom=excel_bom, progress=progress, cancel=cancel)

    def detections_job(self, path: str | Path, night_ids: Sequence[int] | None,
                       min_score: float | None = None, min_label_score: float | None = None, *,
                       excel_bom: bool = False):
        """A job writing the detections CSV of ``night_ids`` (all nights when empty) scoring at
        least ``min_score``; ``min_label_score`` keeps only detections whose label reaches it
        (None keeps every detection). Returns the ExportReport; Progress in "rows". Raises
        ``Cancelled`` (no file is left behind) or ``UserInputError`` for a bad path."""
        flt = self._filter(night_ids, min_score, min_label_score)

        def job(emit: Emit, control: JobControl) -> ExportReport:
            def progress(done: int, total: int) -> None:
                emit(Progress(done, total, unit="rows", message=f"Writing {Path(path).name}"))

            return export_detections(self.db, path, flt, excel_bom=excel_bom, progress=progress,
                                     cancel=lambda: control.cancelled)

        return job

    # -- every format -----------------------------------------------------------------------

    @staticmethod
    def formats() -> tuple[ExportFormat, ...]:
        """The formats in the order the chooser lists them (no query)."""
        return FORMATS

    def default_target(self, format_key: str, folder: str | Path | None = None) -> Path:
        """``<folder>/<name>-YYYYmmdd-HHMM<suffix>``, e.g. ``darwin-core-20240601-2130.zip``."""
        fmt = format_by_key(format_key)
        base = Path(folder) if folder else Path.home()
        return base / f"{fmt.default_name}-{dt.datetime.now():%Y%m%d-%H%M}{fmt.suffix}"

    def pipelines(self, night_ids: Sequence[int] | None = None,
                  deployment_ids: Sequence[int] | None = None) -> list[PipelineChoice]:
        """Model configurations that processed the selection (most images first): the
        dialog's choice when there is more than one."""
        return pipelines_in_scope(self.db, ExportScope.of(deployment_ids, night_ids))

    def request(self, format_key: str, path: str | Path, night_ids: Sequence[int] | None = None,
                *, deployment_ids: Sequence[int] | None = None, pipeline_id: int | None = None,
                min_score: float | None = None, min_label_score: float | None = None,
                options: dict | None = None) -> ExportRequest:
        """An export of the selection (all traps and nights when both are empty). Counting
        formats count at ``min_score`` / ``min_label_score`` (default: the settings'
        thresholds, what the views show); row formats keep rows from those scores (None =
        all rows)."""
        fmt = format_by_key(format_key)
        settings = self.settings
        det = getattr(settings, "detection_threshold", 0.5)
        cls = getattr(settings, "classification_threshold", 0.5)
        scope = ExportScope.of(deployment_ids, night_ids, None, pipeline_id)
        if fmt.counts_individuals:
            thresholds = Thresholds(det if min_score is None else min_score,
                                    cls if min_label_score is None else min_label_score)
            return ExportRequest(fmt.key, Path(path), scope, thresholds, options=options or {})
        thresholds = Thresholds(det, cls if min_label_score is None else min_label_score)
        return ExportRequest(fmt.key, Path(path), scope, thresholds, min_score,
                             min_label_score if fmt.key != "megadetector" else None,
                             options or {})

    def check(self, request: ExportRequest) -> ExportCheck:
        """Problems that would stop ``request`` (several model configurations, a trap without
        coordinates or clock for Camtrap DP, a bad target), found before it starts."""
        from trapgui.export.atomic import check_file_target, check_folder_target

        problems, warnings = [], []
        fmt = format_by_key(request.format)
        try:
            if fmt.target == "folder":
                check_folder_target(request.out)
            else:
                check_file_target(request.out, (fmt.suffix,), fmt.default_name)
        except UserInputError as exc:
            problems.append(str(exc))
        pipeline_id = None
        try:
            pipeline_id = resolve_pipeline(self.db, request.scope)
        except UserInputError as exc:
            problems.append(exc.message)
        if pipeline_id is None and not problems and fmt.key != "detections":
            problems.append("No image of the selection has been processed yet.")
        if fmt.key == "camtrap-dp" and pipeline_id is not None:
            from trapgui.export.camtrap_dp import check_metadata
            from trapgui.export.common import ExportRun

            try:
                check_metadata(ExportRun.start(self.db, request.scope.with_pipeline(pipeline_id),
                                               request.thresholds))
            except TrapguiError as exc:
                problems.append(exc.message)
        if fmt.key == "dwc":
            from trapgui.db.trap_metadata import list_traps

            for trap in list_traps(self.db, request.scope.deployment_ids):
                if not trap.has_coordinates:
                    warnings.append(f"Trap {trap.name!r} has no coordinates: GBIF cannot map "
                                    "its records.")
        return ExportCheck(tuple(problems), tuple(warnings), pipeline_id)

    def export_job(self, request: ExportRequest) -> Callable[[Emit, JobControl], ExportResult]:
        """The export as a job (``job(emit, control) -> ExportResult``) for the job runner."""
        def job(emit: Emit, control: JobControl) -> ExportResult:
            return run_export(self.db, request, emit, control)
        return job

    def run(self, request: ExportRequest, emit: Emit | None = None,
            control: JobControl | None = None) -> ExportResult:
        """Run ``request`` on this thread (a background thread in the window)."""
        return run_export(self.db, request, emit, control)
