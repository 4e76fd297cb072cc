"""Detections CSV export for the GUI's export dialog: a thin layer over
``trapgui.export.csv_export`` (which streams, reports progress and honours cancel)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from pathlib import Path

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
