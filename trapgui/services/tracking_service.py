"""Individuals (occurrences) for the window: the views' reads and the person's fixture
decision. New and separate from the other services on purpose (their threading is being
reworked): every method blocks (SQLite, tracking), so the GUI calls them from a background
thread; results are plain frozen dataclasses of ``db.occurrence_store`` / ``db.counts`` /
``pipeline.tracking_job``.
"""

from __future__ import annotations

from collections.abc import Sequence

from trapgui.db import occurrence_store
from trapgui.db.counts import (NightCount, TaxonNightCount, best_crop_per_taxon,
                               count_individuals, count_individuals_per_night)
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.pipeline import tracking_job
from trapgui.services.tracking_types import UNIDENTIFIED, TaxonIndividuals


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

    def species_summary(self, pipeline_id: int | None, deployment_id: int | None,
                        night_ids: Sequence[int] | None, *, min_score: float | None = None,
                        min_label_score: float | None = None) -> list[TaxonIndividuals]:
        """Individuals per taxon of the nights (all nights of the trap when none are given;
        everything when neither), most first, the unidentified last."""
        if pipeline_id is None:
            return []
        t = self._thresholds(min_score, min_label_score)
        scope = ExportScope.of([deployment_id] if deployment_id is not None and not night_ids
                               else None, night_ids)
        rows: dict[tuple, list[TaxonNightCount]] = {}
        for c in count_individuals(self._db, scope, pipeline_id, t):
            rows.setdefault((c.label, c.rank), []).append(c)
        crops = best_crop_per_taxon(self._db, scope, pipeline_id, t)
        out = []
        for (label, rank), counts in rows.items():
            crop = crops.get((label, rank))
            out.append(TaxonIndividuals(
                UNIDENTIFIED if label is None else label, rank,
                sum(c.individuals for c in counts), sum(c.detections for c in counts),
                max(c.max_n for c in counts), {c.night_id: c.individuals for c in counts},
                sum(c.human_identified for c in counts),
                crop.detection_id if crop else None, crop.image_id if crop else None,
                crop.image_path if crop else None, crop.box if crop else None,
                crop.score if crop else None))
        out.sort(key=lambda r: (not r.identified, -r.individuals, r.label))
        return out

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
