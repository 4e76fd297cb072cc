"""Detections stored without classifications ("not classified yet"), and filling them in.

A pipeline stores every box at or above its detector's storage floor but classifies only
those at or above its classification floor (both in ``pipeline_configs.config``): the work
scales with the boxes a researcher could keep. When a user lowers the detection threshold
below the classification floor, the stored boxes between the two are classified on demand
(``pipeline.classify_below_floor``) and written here, exactly as a run with a lower floor
would have written them (classification rows and the denormalised best labels of the
detection), so counts then match such a run.

A detection is unclassified when its pipeline has a classifier and it has no classification
(``detections.top_rank`` is set with the first classification: the indexed test).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import Select, func, insert, select, update

from trapgui.core.file_names import disk_path
from trapgui.core.types import ClassificationResult, Rank
from trapgui.db.database import Database
from trapgui.db.tables import Classification, Deployment, Detection, Image, PipelineConfig

CLASSIFIER_SLOTS = ("binary", "order", "species")
# processing_runs.settings["task"] of on-demand classification (not a processing run: no job
# points at it; exports list it under "classification_jobs")
CLASSIFY_BELOW_FLOOR = "classify_below_floor"


@dataclass(frozen=True, slots=True)
class UnclassifiedBox:
    detection_id: int
    x1: float
    y1: float
    x2: float
    y2: float
    score: float


@dataclass(frozen=True, slots=True)
class UnclassifiedImage:
    image_id: int
    abs_path: str
    width: int | None
    height: int | None
    boxes: tuple[UnclassifiedBox, ...]


@dataclass(frozen=True, slots=True)
class ClassificationCoverage:
    """What a detection threshold means for one pipeline's labels.

    ``unclassified``: stored detections at or above the threshold without classifications
    (they show as "not classified yet" until classified on demand); ``storage_floor``: the
    lowest score stored at all (a threshold below it shows nothing more)."""

    pipeline_id: int | None
    threshold: float
    storage_floor: float
    classification_floor: float
    has_classifiers: bool
    unclassified: int

    @property
    def below_classification_floor(self) -> bool:
        return self.has_classifiers and self.threshold < self.classification_floor

    @property
    def below_storage_floor(self) -> bool:
        return self.threshold < self.storage_floor


def pipeline_config(db: Database, pipeline_id: int) -> dict | None:
    with db.session() as s:
        return s.execute(select(PipelineConfig.config).where(
            PipelineConfig.id == pipeline_id)).scalar()


def floors_of(config: Mapping | None) -> tuple[float, float]:
    """(storage floor, classification floor) of a pipeline configuration. Configurations
    written before the floors existed stored every box and classified all of them."""
    config = config or {}
    storage = float(config.get("storage_floor", config.get("detection_score_floor", 0.0)) or 0.0)
    return storage, max(storage, float(config.get("classification_floor", storage) or 0.0))


def has_classifiers(config: Mapping | None) -> bool:
    return any((config or {}).get(slot) for slot in CLASSIFIER_SLOTS)


def _unclassified(pipeline_id: int, min_score: float, image_ids):
    """``image_ids``: a list of ids, a select of them (any size), or None (all images)."""
    where = [Detection.pipeline_id == pipeline_id, Detection.score >= min_score,
             Detection.top_rank.is_(None)]
    if image_ids is not None:
        where.append(Detection.image_id.in_(image_ids if isinstance(image_ids, Select)
                                            else list(image_ids)))
    return where


def coverage(db: Database, pipeline_id: int | None, threshold: float,
             image_ids: Sequence[int] | None = None) -> ClassificationCoverage:
    """How many detections at or above ``threshold`` are not classified yet (of these images
    when given). One indexed count: cheap enough for a threshold control, but call it off the
    GUI thread."""
    if pipeline_id is None:
        return ClassificationCoverage(None, threshold, 0.0, 0.0, False, 0)
    config = pipeline_config(db, pipeline_id)
    storage, classification = floors_of(config)
    classifies = has_classifiers(config)
    n = 0
    if classifies:
        with db.session() as s:
            n = int(s.execute(select(func.count()).select_from(Detection).where(
                *_unclassified(pipeline_id, threshold, image_ids))).scalar_one())
    return ClassificationCoverage(pipeline_id, threshold, storage, classification, classifies, n)


def count_unclassified_images(db: Database, pipeline_id: int, min_score: float,
                              image_ids: Sequence[int] | None = None) -> tuple[int, int]:
    """(images, detections) still to classify at or above ``min_score``."""
    with db.session() as s:
        row = s.execute(select(func.count(func.distinct(Detection.image_id)), func.count())
                        .where(*_unclassified(pipeline_id, min_score, image_ids))).one()
    return int(row[0]), int(row[1])


def unclassified_images(db: Database, pipeline_id: int, min_score: float,
                        image_ids: Sequence[int] | None = None, *,
                        chunk: int = 64) -> Iterator[UnclassifiedImage]:
    """The images with detections to classify and those detections, image by image (ids
    ascending), read ``chunk`` images at a time: memory stays flat on a season's catalogue,
    and detections classified meanwhile are not handed out again."""
    after = 0
    while True:
        with db.session() as s:
            ids = list(s.execute(select(Detection.image_id).where(
                *_unclassified(pipeline_id, min_score, image_ids), Detection.image_id > after)
                .group_by(Detection.image_id).order_by(Detection.image_id).limit(chunk))
                .scalars())
            if not ids:
                return
            images = {r[0]: r[1:] for r in s.execute(
                select(Image.id, Deployment.path, Image.rel_path, Image.width, Image.height)
                .join(Deployment, Deployment.id == Image.deployment_id)
                .where(Image.id.in_(ids)))}
            boxes: dict[int, list[UnclassifiedBox]] = {}
            for r in s.execute(select(Detection.image_id, Detection.id, Detection.x1,
                                      Detection.y1, Detection.x2, Detection.y2, Detection.score)
                               .where(*_unclassified(pipeline_id, min_score, ids))
                               .order_by(Detection.image_id, Detection.id)):
                boxes.setdefault(r[0], []).append(UnclassifiedBox(*r[1:]))
        for image_id in ids:
            if image_id in images and image_id in boxes:
                dep_path, rel_path, width, height = images[image_id]
                yield UnclassifiedImage(image_id, disk_path(dep_path, rel_path), width, height,
                                        tuple(boxes[image_id]))
        after = ids[-1]


def record_classifications(db: Database, pipeline_id: int,
                           results: Mapping[int, Sequence[ClassificationResult]]) -> int:
    """Classifications of detections that had none, in one transaction, written as a run
    writes them (``jobqueue._insert_results``: one row per classifier, the binary label and
    the deepest rank's label on the detection). Detections classified meanwhile (another
    job, a re-run that replaced them) are left alone. Returns how many were written."""
    wanted = [d for d, cls in results.items() if cls]
    if not wanted:
        return 0
    written = 0
    with db.write_session() as s:
        still = set(s.execute(select(Detection.id).where(
            Detection.pipeline_id == pipeline_id, Detection.id.in_(wanted),
            Detection.top_rank.is_(None))).scalars())
        rows = []
        for det_id in wanted:
            if det_id not in still:
                continue
            values: dict = {}
            best = -1
            for c in results[det_id]:
                rank = Rank(c.rank)
                rows.append({"detection_id": det_id, "model": c.model, "rank": rank.value,
                             "label": c.label, "score": c.score,
                             "top_labels": list(c.top_labels),
                             "top_scores": [float(x) for x in c.top_scores]})
                if rank is Rank.BINARY:
                    values.update(binary_label=c.label, binary_score=c.score)
                order = {Rank.BINARY: 0, Rank.ORDER: 1, Rank.SPECIES: 2}[rank]
                if order > best:
                    best = order
                    values.update(top_label=c.label, top_score=c.score, top_rank=rank.value)
            s.execute(update(Detection).where(Detection.id == det_id).values(**values))
            written += 1
        for start in range(0, len(rows), 2000):
            s.execute(insert(Classification), rows[start:start + 2000])
    return written
