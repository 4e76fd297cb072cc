"""Detections CSV export for the GUI's export dialog: a thin layer over
``trapgui.export.csv_export`` (which streams, reports progress and honours cancel); the export itself is a job."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

from trapgui.core.jobs import Emit, JobControl, Progress

from trapgui.export.csv_export import (
    ExportFilter,
    ExportReport,
    count_detections,
    export_detections,
)
from trapgui.services.results_service import resolve_db


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

    def export_job(self, path: str | Path, night_ids: Sequence[int] | None,
                   min_score: float | None = None, min_label_score: float | None = None, *,
                   excel_bom: bool = False):
        """A job that writes the detections of ``night_ids`` (all nights when empty) scoring at
        least ``min_score``; ``min_label_score`` keeps only detections whose label reaches it
        (None keeps every detection, with its label and score in the file). Returns the
        ExportReport; Progress in "rows". Raises ``Cancelled`` when cancelled (no file is left
        behind) and ``UserInputError`` for a bad path."""
        flt = self._filter(night_ids, min_score, min_label_score)

        def job(emit: Emit, control: JobControl) -> ExportReport:
            def progress(done: int, total: int) -> None:
                emit(Progress(done, total, unit="rows", message=f"Writing {Path(path).name}"))

            return export_detections(self.db, path, flt, excel_bom=excel_bom, progress=progress,
                                     cancel=lambda: control.cancelled)

        return job
