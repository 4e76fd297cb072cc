"""Read-only queries behind the results views: the detections table, the image viewer and the
species summary. Called from worker threads; every method opens its own short session and
returns plain values (``trapgui.services.results_types``).

The detections table pages with keyset pagination (``WHERE (sort, id) > (last_sort, last_id)
ORDER BY sort, id LIMIT n``): the cost of a page does not grow with how far the user scrolled,
which is what keeps a million-row catalogue responsive.
"""

from __future__ import annotations


from sqlalchemy import and_, func, literal, or_, select, tuple_

from trapgui.core.file_names import disk_path
from trapgui.core.geometry import Box
from trapgui.core.types import HUMAN_DETECTOR
from trapgui.db import review_queries
from trapgui.db.review_queries import REJECTED
from trapgui.db.tables import Classification, Deployment, Detection, Image, Night, Occurrence
from trapgui.services.results_types import (
    BoxInfo,
    ClassificationInfo,
    DetectionQuery,
    DetectionRow,
    ImageDetails,
    NightInfo,
    SpeciesCount,
    UNCLASSIFIED,
)

_IMAGE_SORTS = ("time", "night", "image")
_IMAGE_BATCH = 64  # images per step of an image-ordered page

_SORT_COLUMNS = {
    "id": Detection.id,
    "night": Night.date,
    "time": Image.captured_at,
    "image": Image.rel_path,
    "score": Detection.score,
    "binary": Detection.binary_score,
    "label": Detection.top_label,
    "rank": Detection.top_rank,
    "label_score": Detection.top_score,
}


def _after(col, id_col, value, last_id: int, descending: bool):
    """Rows strictly after (value, last_id) in ORDER BY col, id_col. SQLite sorts NULLs first
    ascending and last descending; NULL never compares, so NULLs get their own branch."""
    if col is id_col:
        return id_col < last_id if descending else id_col > last_id
    if value is None:
        if descending:
            return and_(col.is_(None), id_col < last_id)
        return or_(col.is_not(None), and_(col.is_(None), id_col > last_id))
    key = tuple_(col, id_col)
    bound = tuple_(literal(value, col.type), literal(last_id))
    if descending:
        return or_(key < bound, col.is_(None))
    return key > bound


def _not_deleted():
    """Not a box a person deleted (its occurrence rejected as not an insect): such a box is in
    no view and no count, as in ``db.counts``."""
    return or_(Detection.occurrence_id.is_(None),
               Detection.occurrence_id.not_in(select(Occurrence.id).where(
                   Occurrence.review_state == REJECTED)))


def resolve_db(source):
    """The facade passes itself (its ``db`` opens the catalogue lazily, off the GUI thread);
    tests and scripts pass a ``Database``. Both work."""
    return source if hasattr(source, "engine") else source.db


class ResultsService:
    def __init__(self, db):
        self._source = db

    @property
    def db(self):
        return resolve_db(self._source)

    # -- detections table -------------------------------------------------------------------

    def _filtered(self, stmt, q: DetectionQuery):
        stmt = stmt.where(Detection.score >= q.min_score, _not_deleted())
        if q.night_ids:
            stmt = stmt.where(Image.night_id.in_(q.night_ids))
        elif q.deployment_id is not None:
            stmt = stmt.where(Image.deployment_id == q.deployment_id)
        if q.label is not None:
            stmt = stmt.where(Detection.top_label == q.label)
        if q.label_contains:
            pattern = "%" + q.label_contains.replace("%", r"\%").replace("_", r"\_") + "%"
            stmt = stmt.where(Detection.top_label.ilike(pattern, escape="\\"))
        if q.label is not None or q.label_contains:
            stmt = stmt.where(Detection.top_score >= q.min_label_score)
        if q.rank:
            stmt = stmt.where(Detection.top_rank == q.rank)
        return stmt

    def _needs_image_join(self, q: DetectionQuery) -> bool:
        return bool(q.night_ids) or q.deployment_id is not None or q.sort in ("time", "image",
                                                                                "night")

    def count_detections(self, q: DetectionQuery) -> int:
        stmt = select(func.count(Detection.id)).select_from(Detection)
        if self._needs_image_join(q):
            stmt = stmt.join(Image, Image.id == Detection.image_id)
        if q.sort == "night":
            stmt = stmt.outerjoin(Night, Night.id == Image.night_id)
        with self.db.session() as s:
            return s.execute(self._filtered(stmt, q)).scalar_one()

    def fetch_detections(
        self, q: DetectionQuery, after: DetectionRow | None = None, limit: int = 500
    ) -> list[DetectionRow]:
        """One page of the table: the ``limit`` rows that follow ``after``, the last row already
        shown (None for the first page)."""
        if q.sort in _IMAGE_SORTS and not (q.label or q.label_contains or q.rank):
            return self._fetch_by_image(q, after, limit)
        col = _SORT_COLUMNS[q.sort]
        stmt = self._filtered(self._rows_stmt(), q)
        if after is not None:
            stmt = stmt.where(_after(col, Detection.id, after.sort_value(q.sort), after.id,
                                     q.descending))
        if col is Detection.id:
            order = [Detection.id.desc() if q.descending else Detection.id.asc()]
        elif q.descending:
            order = [col.desc(), Detection.id.desc()]
        else:
            order = [col.asc(), Detection.id.asc()]
        stmt = stmt.order_by(*order).limit(limit)
        with self.db.session() as s:
            return [DetectionRow(*r) for r in s.execute(stmt).all()]

    @staticmethod
    def _rows_stmt():
        return (
            select(
                Detection.id, Detection.image_id, Image.night_id, Night.date, Image.captured_at,
                Image.rel_path, Detection.score, Detection.binary_label, Detection.binary_score,
                Detection.top_label, Detection.top_score, Detection.top_rank,
            )
            .select_from(Detection)
            .join(Image, Image.id == Detection.image_id)
            .outerjoin(Night, Night.id == Image.night_id)
        )

    def _fetch_by_image(self, q: DetectionQuery, after: DetectionRow | None,
                        limit: int) -> list[DetectionRow]:
        """Pages for sorts on an image column (time, night, file): walk the images in that
        order, a batch at a time, and take their detections. Ordering a million joined
        detections by an image column costs seconds per page; the images of a page are few.
        Order: image key, image id, detection id (a night's images are in time order, so the
        "night" sort is the time order too)."""
        key = Image.rel_path if q.sort == "image" else Image.captured_at
        desc = q.descending
        scope = []
        if q.night_ids:
            scope.append(Image.night_id.in_(q.night_ids))
        elif q.deployment_id is not None:
            scope.append(Image.deployment_id == q.deployment_id)
        image_order = [key.desc(), Image.id.desc()] if desc else [key.asc(), Image.id.asc()]
        det_order = image_order + [Detection.id.desc() if desc else Detection.id.asc()]
        out: list[DetectionRow] = []
        with self.db.session() as s:
            if after is not None:  # the rest of the image the last page ended in
                rest = self._filtered(self._rows_stmt(), q).where(
                    Detection.image_id == after.image_id,
                    Detection.id < after.id if desc else Detection.id > after.id)
                out += [DetectionRow(*r) for r in s.execute(rest.order_by(*det_order)
                                                             .limit(limit))]
                cursor = (after.captured_at if key is Image.captured_at else after.image_path,
                          after.image_id)
            else:
                cursor = None
            while len(out) < limit:
                images = select(Image.id, key).where(*scope)
                if cursor is not None:
                    images = images.where(_after(key, Image.id, cursor[0], cursor[1], desc))
                batch = s.execute(images.order_by(*image_order).limit(_IMAGE_BATCH)).all()
                if not batch:
                    break
                rows = self._filtered(self._rows_stmt(), q).where(
                    Detection.image_id.in_([b[0] for b in batch]))
                out += [DetectionRow(*r) for r in s.execute(
                    rows.order_by(*det_order).limit(limit - len(out)))]
                if len(batch) < _IMAGE_BATCH:
                    break
                cursor = (batch[-1][1], batch[-1][0])
        return out

    def labels(self, q: DetectionQuery, limit: int = 2000) -> list[str]:
        """Distinct top labels in the selection (for the label filter's completer)."""
        stmt = select(Detection.top_label).select_from(Detection).join(
            Image, Image.id == Detection.image_id)
        stmt = self._filtered(stmt, DetectionQuery(
            deployment_id=q.deployment_id, night_ids=q.night_ids, min_score=q.min_score))
        stmt = stmt.where(Detection.top_label.is_not(None)).distinct().order_by(
            Detection.top_label).limit(limit)
        with self.db.session() as s:
            return [r[0] for r in s.execute(stmt)]

    # -- image viewer -----------------------------------------------------------------------

    def image_details(self, image_id: int, pipeline_id: int | None = None) -> ImageDetails | None:
        """The image, its place in its night and every detection on it (all scores, so the
        viewer's threshold slider needs no further query)."""
        with self.db.session() as s:
            row = s.execute(
                select(Image, Deployment.path, Deployment.name, Night.date)
                .join(Deployment, Deployment.id == Image.deployment_id)
                .outerjoin(Night, Night.id == Image.night_id)
                .where(Image.id == image_id)
            ).first()
            if row is None:
                return None
            img, dep_path, dep_name, night_date = row
            index, size = self._position(s, img)
            det_stmt = (select(Detection, Occurrence.review_state)
                        .outerjoin(Occurrence, Occurrence.id == Detection.occurrence_id)
                        .where(Detection.image_id == image_id))
            if pipeline_id is not None:
                det_stmt = det_stmt.where(Detection.pipeline_id == pipeline_id)
            found = s.execute(det_stmt.order_by(Detection.score.desc(), Detection.id)).all()
            dets = [d for d, _ in found]
            deleted = {d.id for d, state in found if state == REJECTED}
            authors = review_queries.box_authors(
                s, img.night_id, [d.id for d in dets if d.detector == HUMAN_DETECTOR])
            classes: dict[int, list[ClassificationInfo]] = {}
            if dets:
                for c in s.execute(select(Classification).where(
                        Classification.detection_id.in_([d.id for d in dets]))).scalars():
                    classes.setdefault(c.detection_id, []).append(ClassificationInfo(
                        c.model, c.rank, c.label, c.score,
                        tuple(c.top_labels or ()), tuple(c.top_scores or ())))
            boxes = tuple(
                BoxInfo(d.id, Box(d.x1, d.y1, d.x2, d.y2), d.score, d.detector, d.binary_label,
                        d.binary_score, d.top_label, d.top_score, d.top_rank,
                        tuple(classes.get(d.id, ())), d.occurrence_id, d.id in deleted,
                        authors.get(d.id))
                for d in dets
            )
            return ImageDetails(
                image_id=img.id, path=disk_path(dep_path, img.rel_path), rel_path=img.rel_path,
                deployment_id=img.deployment_id, deployment_name=dep_name, night_id=img.night_id,
                night_date=night_date, captured_at=img.captured_at, width=img.width,
                height=img.height, state=img.state, error=img.error, index_in_night=index,
                night_size=size, boxes=boxes,
            )

    @staticmethod
    def _night_scope(img):
        if img.night_id is None:  # the undated group of the trap: ordered by file name
            return (and_(Image.deployment_id == img.deployment_id, Image.night_id.is_(None)),
                    tuple_(Image.rel_path, Image.id), (img.rel_path, img.id))
        # images without a time cannot be in a night, so captured_at is set here
        return (Image.night_id == img.night_id, tuple_(Image.captured_at, Image.id),
                (img.captured_at, img.id))

    def _position(self, s, img) -> tuple[int, int]:
        scope, key, value = self._night_scope(img)
        size = s.execute(select(func.count(Image.id)).where(scope)).scalar_one()
        col = key.clauses[0]
        before = s.execute(select(func.count(Image.id)).where(
            scope, key < tuple_(literal(value[0], col.type), literal(value[1])))).scalar_one()
        return before, size

    def first_image(self, night_ids) -> int | None:
        """The earliest image of the earliest of these nights (what the viewer opens on)."""
        if not night_ids:
            return None
        with self.db.session() as s:
            return s.execute(
                select(Image.id).join(Night, Night.id == Image.night_id)
                .where(Image.night_id.in_(list(night_ids)))
                .order_by(Night.date, Image.captured_at, Image.id).limit(1)).scalar()

    def neighbour_image(self, image_id: int, step: int) -> int | None:
        """The image ``step`` places after (negative: before) this one in its night."""
        with self.db.session() as s:
            img = s.get(Image, image_id)
            if img is None or step == 0:
                return None
            scope, key, value = self._night_scope(img)
            col = key.clauses[0]
            bound = tuple_(literal(value[0], col.type), literal(value[1]))
            if step > 0:
                stmt = select(Image.id).where(scope, key > bound).order_by(col, Image.id)
            else:
                stmt = select(Image.id).where(scope, key < bound).order_by(
                    col.desc(), Image.id.desc())
            return s.execute(stmt.offset(abs(step) - 1).limit(1)).scalar()

    # -- species summary --------------------------------------------------------------------

    def nights(self, night_ids: list[int] | tuple[int, ...]) -> list[NightInfo]:
        if not night_ids:
            return []
        with self.db.session() as s:
            rows = s.execute(select(Night.id, Night.deployment_id, Night.date)
                             .where(Night.id.in_(night_ids)).order_by(Night.date))
            return [NightInfo(*r) for r in rows]

    def species_summary(
        self, deployment_id: int | None, night_ids, min_score: float, min_label_score: float
    ) -> list[SpeciesCount]:
        """Counts per label (species or order, whatever the deepest classifier said) of the
        detections above both thresholds, per night, with the best-scoring detection of each
        label. A detection whose label is below the classification threshold counts as
        unclassified: it is still an insect on the sheet."""
        label = func.coalesce(
            func.iif(Detection.top_score >= min_label_score, Detection.top_label, None),
            UNCLASSIFIED)
        rank = func.iif(Detection.top_score >= min_label_score, Detection.top_rank, None)
        base = (select(label.label("label"), rank.label("rank"), Image.night_id.label("night"),
                       Detection.id.label("det"), Detection.image_id.label("img"),
                       func.coalesce(Detection.top_score, Detection.score).label("quality"))
                .select_from(Detection).join(Image, Image.id == Detection.image_id)
                .where(Detection.score >= min_score, _not_deleted()))
        if night_ids:
            base = base.where(Image.night_id.in_(list(night_ids)))
        elif deployment_id is not None:
            base = base.where(Image.deployment_id == deployment_id)
        sub = base.subquery()
        counts_stmt = (select(sub.c.label, sub.c.rank, sub.c.night, func.count())
                       .group_by(sub.c.label, sub.c.rank, sub.c.night))
        ranked = select(
            sub.c.label, sub.c.rank, sub.c.det, sub.c.img, sub.c.quality,
            func.row_number().over(partition_by=(sub.c.label, sub.c.rank),
                                   order_by=(sub.c.quality.desc(), sub.c.det)).label("n"),
        ).subquery()
        best_stmt = (
            select(ranked.c.label, ranked.c.rank, ranked.c.det, ranked.c.img, ranked.c.quality,
                   Detection.x1, Detection.y1, Detection.x2, Detection.y2,
                   Deployment.path, Image.rel_path)
            .join(Detection, Detection.id == ranked.c.det)
            .join(Image, Image.id == ranked.c.img)
            .join(Deployment, Deployment.id == Image.deployment_id)
            .where(ranked.c.n == 1)
        )
        with self.db.session() as s:
            per: dict[tuple, dict[int, int]] = {}
            for lab, rk, night, n in s.execute(counts_stmt):
                per.setdefault((lab, rk), {})[night] = n
            best = {(r[0], r[1]): r for r in s.execute(best_stmt)}
        out = []
        for key, nights in per.items():
            b = best.get(key)
            out.append(SpeciesCount(
                label=key[0], rank=key[1], total=sum(nights.values()), per_night=nights,
                best_detection_id=b[2] if b else None, best_image_id=b[3] if b else None,
                best_image_path=disk_path(b[9], b[10]) if b else None,
                best_box=Box(b[5], b[6], b[7], b[8]) if b else None,
                best_score=b[4] if b else None,
            ))
        # most frequent first; the unclassified bucket last, it is not a taxon
        out.sort(key=lambda c: (c.label == UNCLASSIFIED, -c.total, c.label))
        return out
