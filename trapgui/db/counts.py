"""How many individuals of each taxon a trap caught each night, and how hard it sampled.

The one counting query of trapgui: exports (Darwin Core, the species x night matrix, the
summary CSV, Camtrap DP's coverage) and the views (nights overview, trap tree, species
summary) call :func:`count_individuals`, so the same threshold gives the same number
everywhere. Rules, documented in docs/exports.md:

- an individual is an occurrence (a track across a night's images), never a detection;
- fixtures (screws, stains, labels flagged by tracking) are left out;
- an occurrence counts at detection threshold *t* when at least one of its detections scores
  at least *t*; its detections counted are those scoring at least *t*;
- its taxon is its final label (``db.final_labels``) when that label counts at the
  classification threshold, else ``None``: an individual nobody identified;
- a person's review wins: an occurrence they rejected (not an insect) is left out, one they
  identified counts with all its detections at every threshold;
- MaxN is the most individuals of the taxon in any one image of the night.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import case, distinct, func, select

from trapgui.core.file_names import disk_path
from trapgui.db import final_labels
from trapgui.db.catalogue_queries import image_partition
from trapgui.db.database import Database
from trapgui.db.export_queries import (
    ExportScope,
    Thresholds,
    counted_detection_filters,
    image_filters,
    night_filters,
    occurrence_filters,
)
from trapgui.db.tables import Deployment, Detection, Image, Night, Occurrence


@dataclass(frozen=True, slots=True)
class TaxonNightCount:
    deployment_id: int
    night_id: int
    label: str | None  # None: individuals without an accepted label
    rank: str | None
    individuals: int
    human_identified: int  # of the individuals, how many carry a reviewer's label
    detections: int  # their detections at the detection threshold
    max_n: int  # most individuals of this taxon in one image


@dataclass(frozen=True, slots=True)
class NightEffort:
    """One trap-night's sampling: its images, first and last capture. The image counts are
    the partition of ``trapgui nights`` and every view (``core.night_counts``,
    ``db.catalogue_queries.image_partition``): images = processed + failed + unreadable +
    waiting, files deleted since apart (``missing``)."""

    deployment_id: int
    night_id: int
    date: dt.date
    start: dt.datetime | None  # camera local time of the first / last image
    end: dt.datetime | None
    images: int  # the night's files on disk now, readable or not
    unreadable: int  # cannot be read as images: never processed
    processed: int  # readable, processed with the pipeline
    failed: int  # readable, processing failed (the reason is stored with the job)
    waiting: int = 0  # readable, not processed yet
    missing: int = 0  # catalogued, deleted from disk since (not in ``images``)
    missing_processed: int = 0  # of those, processed before (their results are kept)

    @property
    def sampled(self) -> bool:
        """Some of its images were processed (deleted files included: their results are
        kept); a night that was not is *not sampled*: no zeros, no event."""
        return self.processed > 0 or self.missing_processed > 0

    @property
    def fully_processed(self) -> bool:
        """Every image that can be processed was: nothing waits (failed and unreadable ones
        never will)."""
        return self.sampled and self.waiting == 0

    @property
    def local_hours(self) -> float:
        """Hours from the first to the last image, on the camera's clock."""
        if self.start is None or self.end is None:
            return 0.0
        return (self.end - self.start).total_seconds() / 3600.0


@dataclass(frozen=True, slots=True)
class NightCount:
    """All taxa of one trap-night together (the nights overview, ``trapgui nights``)."""

    deployment_id: int
    night_id: int
    individuals: int  # = the sum of the night's TaxonNightCount.individuals
    detections: int  # their detections at the detection threshold
    max_n: int  # most individuals (of any taxa) in one image


def _counted(scope: ExportScope, pipeline_id: int, thresholds: Thresholds):
    """(occurrence, trap, night, taxon, rank, method, image) of every counted detection of a
    counted individual: the one base of every count here."""
    label, rank, method = final_labels.accepted_label(thresholds.label)
    occ = (select(Occurrence.id.label("occ"), Occurrence.deployment_id.label("dep"),
                  Occurrence.night_id.label("night"), label.label("label"),
                  rank.label("rank"), method.label("method"))
           .where(*occurrence_filters(scope, pipeline_id), Occurrence.fixture.is_(False),
                  final_labels.counted_occurrence())
           .subquery())
    det = (select(Detection.occurrence_id.label("occ"), Detection.image_id.label("img"))
           .where(*counted_detection_filters(pipeline_id, thresholds.detection),
                  Detection.occurrence_id.is_not(None))
           .subquery())
    return (select(occ.c.occ, occ.c.dep, occ.c.night, occ.c.label, occ.c.rank,
                   occ.c.method, det.c.img)
            .join(det, det.c.occ == occ.c.occ).subquery())


def count_individuals(db: Database, scope: ExportScope, pipeline_id: int | None,
                      thresholds: Thresholds) -> list[TaxonNightCount]:
    """Individuals per (trap, night, taxon) at ``thresholds``; taxa with none are absent (the
    caller adds zeros over the nights it shows)."""
    if pipeline_id is None:
        return []
    joined = _counted(scope, pipeline_id, thresholds)
    keys = (joined.c.dep, joined.c.night, joined.c.label, joined.c.rank)
    totals = select(*keys, func.count(distinct(joined.c.occ)),
                    func.count(distinct(case((joined.c.method == final_labels.HUMAN,
                                              joined.c.occ), else_=None))),
                    func.count()).group_by(*keys)
    per_image = (select(*keys, func.count(distinct(joined.c.occ)).label("n"))
                 .group_by(*keys, joined.c.img).subquery())
    max_n = select(per_image.c.dep, per_image.c.night, per_image.c.label, per_image.c.rank,
                   func.max(per_image.c.n)).group_by(per_image.c.dep, per_image.c.night,
                                                     per_image.c.label, per_image.c.rank)
    with db.session() as s:
        peaks = {tuple(r[:4]): int(r[4]) for r in s.execute(max_n)}
        rows = s.execute(totals).all()
    out = [TaxonNightCount(r[0], r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]),
                           peaks.get(tuple(r[:4]), 0)) for r in rows]
    out.sort(key=lambda c: (c.deployment_id, c.night_id, c.label is None, c.label or ""))
    return out


def count_individuals_per_night(db: Database, scope: ExportScope, pipeline_id: int | None,
                                thresholds: Thresholds) -> dict[tuple[int, int], NightCount]:
    """(trap, night) -> all taxa together, from the same base as :func:`count_individuals`
    (its individuals and detections are the sums of that function's rows; MaxN is of all
    taxa in one image). Nights without individuals are absent."""
    if pipeline_id is None:
        return {}
    joined = _counted(scope, pipeline_id, thresholds)
    keys = (joined.c.dep, joined.c.night)
    totals = select(*keys, func.count(distinct(joined.c.occ)), func.count()).group_by(*keys)
    per_image = (select(*keys, func.count(distinct(joined.c.occ)).label("n"))
                 .group_by(*keys, joined.c.img).subquery())
    peaks_q = select(per_image.c.dep, per_image.c.night, func.max(per_image.c.n)).group_by(
        per_image.c.dep, per_image.c.night)
    with db.session() as s:
        peaks = {(r[0], r[1]): int(r[2]) for r in s.execute(peaks_q)}
        rows = s.execute(totals).all()
    return {(r[0], r[1]): NightCount(r[0], r[1], int(r[2]), int(r[3]), peaks.get((r[0], r[1]), 0))
            for r in rows}


@dataclass(frozen=True, slots=True)
class TaxonCrop:
    """The best crop of a taxon: the best detection of its most confidently labelled
    counted individual (the Species summary's thumbnail)."""

    label: str | None
    rank: str | None
    occurrence_id: int
    detection_id: int
    image_id: int
    image_path: str  # absolute
    box: tuple[float, float, float, float]
    score: float | None  # the individual's label score (its detector score when unlabelled)


def best_crop_per_taxon(db: Database, scope: ExportScope, pipeline_id: int | None,
                        thresholds: Thresholds) -> dict[tuple[str | None, str | None], TaxonCrop]:
    """(taxon, rank) -> its best crop, over the individuals :func:`count_individuals` counts
    (same rules: fixtures left out, a detection at the detection threshold)."""
    if pipeline_id is None:
        return {}
    label, rank, _method = final_labels.accepted_label(thresholds.label)
    counted = (select(Detection.occurrence_id)
               .where(Detection.pipeline_id == pipeline_id,
                      Detection.score >= thresholds.detection,
                      Detection.occurrence_id.is_not(None)))
    quality = func.coalesce(case((Occurrence.label_score >= thresholds.label,
                                  Occurrence.label_score), else_=None), Detection.score)
    ranked = (select(label.label("label"), rank.label("rank"), Occurrence.id.label("occ"),
                     Detection.id.label("det"), quality.label("quality"),
                     func.row_number().over(partition_by=(label, rank),
                                            order_by=(quality.desc(), Occurrence.id)).label("n"))
              .join(Detection, Detection.id == Occurrence.best_detection_id)
              .where(*occurrence_filters(scope, pipeline_id), Occurrence.fixture.is_(False),
                     Occurrence.id.in_(counted))
              .subquery())
    q = (select(ranked.c.label, ranked.c.rank, ranked.c.occ, ranked.c.det, Detection.image_id,
                Deployment.path, Image.rel_path, Detection.x1, Detection.y1, Detection.x2,
                Detection.y2, ranked.c.quality)
         .join(Detection, Detection.id == ranked.c.det)
         .join(Image, Image.id == Detection.image_id)
         .join(Deployment, Deployment.id == Image.deployment_id)
         .where(ranked.c.n == 1))
    with db.session() as s:
        rows = s.execute(q).all()
    return {(r[0], r[1]): TaxonCrop(r[0], r[1], r[2], r[3], r[4], disk_path(r[5], r[6]),
                                    (r[7], r[8], r[9], r[10]), r[11]) for r in rows}


def night_effort(db: Database, scope: ExportScope, pipeline_id: int | None) -> list[NightEffort]:
    """Every dated night of the scope with its image counts (those of ``trapgui nights``);
    a night with no image left at all (not even a deleted one) is left out."""
    nights = (select(Night.id, Night.deployment_id, Night.date, Night.start, Night.end)
              .where(*night_filters(scope)).order_by(Night.deployment_id, Night.date))
    with db.session() as s:
        counts = {night: part for (_, night), part in image_partition(
            s, pipeline_id, image_filters(scope, dated_only=True)).items()}
        rows = s.execute(nights).all()
    out = []
    for night_id, dep_id, date, start, end in rows:
        images, unreadable, missing, processed, failed, waiting, gone_done = counts.get(
            night_id, (0, 0, 0, 0, 0, 0, 0))
        if not images and not missing:
            continue
        out.append(NightEffort(dep_id, night_id, date, start, end, images, unreadable,
                               processed, failed, waiting, missing, gone_done))
    return out
