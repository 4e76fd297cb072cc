"""Individuals (occurrences) for the window: the views' reads and the person's fixture
decision. New and separate from the other services on purpose (their threading is being
reworked): every method blocks (SQLite, tracking), so the GUI calls them from a background
thread; results are plain frozen dataclasses of ``db.occurrence_store`` / ``db.counts`` /
``pipeline.tracking_job``.
"""

from __future__ import annotations

from collections.abc import Sequence

from trapgui.db import occurrence_store
from trapgui.db.counts import (NightCount, TaxonNightCount, count_individuals,
                               count_individuals_per_night)
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.pipeline import tracking_job


class TrackingService:
    def __init__(self, services):
        self._services = services

    @property
    def _db(self):
        return self._services.db

    def _thresholds(self, min_score: float | None, min_label_score: float | None) -> Thresholds:
        s = self._services.settings
        return Thresholds(s.detection_threshold if min_score is None else min_score,
                          s.classification_threshold if min_label_score is None else min_label_score)

    # ---- reads ----------------------------------------------------------------------------
    def night_occurrences(self, pipeline_id: int, night_id: int, *, min_score: float | None = None,
                          include_fixtures: bool = True) -> list[occurrence_store.OccurrenceRow]:
        """The night's individuals in order of first sight, each with its best crop (image
        path and box), at the detection threshold (the settings' when None)."""
        t = self._thresholds(min_score, None)
        return occurrence_store.night_occurrences(self._db, pipeline_id, night_id,
                                                  min_score=t.detection,
                                                  include_fixtures=include_fixtures)

    def occurrence_detections(self, occurrence_id: int) -> list[occurrence_store.OccurrenceDetectionRow]:
        """An occurrence's detections in frame order (its crop strip; the viewer steps
        through them)."""
        return occurrence_store.occurrence_detections(self._db, occurrence_id)

    def counts_per_taxon(self, pipeline_id: int, night_ids: Sequence[int] | None = None,
                         deployment_ids: Sequence[int] | None = None, *,
                         min_score: float | None = None,
                         min_label_score: float | None = None) -> list[TaxonNightCount]:
        """Individuals, detections and MaxN per (trap, night, taxon): ``db.counts``, the
        numbers every export gives at the same thresholds (the settings' when None)."""
        return count_individuals(self._db, ExportScope.of(deployment_ids, night_ids), pipeline_id,
                                 self._thresholds(min_score, min_label_score))

    def counts_per_night(self, pipeline_id: int, night_ids: Sequence[int] | None = None,
                         deployment_ids: Sequence[int] | None = None, *,
                         min_score: float | None = None,
                         min_label_score: float | None = None) -> dict[tuple[int, int], NightCount]:
        """(trap, night) -> individuals, detections and MaxN of all taxa together."""
        return count_individuals_per_night(self._db, ExportScope.of(deployment_ids, night_ids),
                                           pipeline_id, self._thresholds(min_score, min_label_score))

    # ---- the job and a person's decisions -------------------------------------------------
    def tracking_job(self, pipeline_id: int, night_ids: Sequence[int] | None = None):
        """A ``core.jobs`` job that re-tracks these nights (None: those that need it), with
        the settings' tracking group; for the window's job runner."""
        params = self._services.settings.tracking_params()
        if night_ids is None:
            return lambda emit, control: tracking_job.track_catalogue_nights(
                self._db, pipeline_id, tracking_job.nights_to_track(self._db, pipeline_id),
                params, emit, control)
        return tracking_job.tracking_job(self._db, pipeline_id, list(night_ids), params)

    def set_fixture(self, occurrence_id: int, fixture: bool | None) -> tracking_job.TrackingSummary:
        """A person's decision: True "a fixture", False "not a fixture" (it counts again),
        None "let the machine decide"; kept by every re-tracking. Re-tracks the night."""
        return tracking_job.set_fixture_decision(self._db, occurrence_id, fixture,
                                                 self._services.settings.tracking_params())
