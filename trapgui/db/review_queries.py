"""What review shows and reports: the reads of ``db.review_store``'s tables (the grid's rows,
the agreement, who identified what, the action history). Decisions are in
``db.review_store``."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, func, select

from trapgui.core.errors import UserInputError
from trapgui.core.file_names import disk_path
from trapgui.db.database import Database
from trapgui.db.tables import (Deployment, Detection, Image, Morphospecies, Occurrence,
                               ReviewAction)

CONFIRMED, RELABELLED, REJECTED = "confirmed", "relabelled", "rejected"
LABELLED_STATES = (CONFIRMED, RELABELLED)  # a person's label, the final one
_CHUNK = 900


@dataclass(frozen=True, slots=True)
class ReviewRow:
    """One occurrence as review shows it: the machine's label and the person's side by side."""

    id: int
    pipeline_id: int
    night_id: int
    machine_label: str | None
    machine_rank: str | None
    machine_score: float | None
    review_state: str | None
    review_label: str | None
    review_rank: str | None
    identified_by: str | None
    identified_at: dt.datetime | None
    first_seen: dt.datetime | None
    n_detections: int
    best_score: float | None
    fixture: bool
    fixture_reviewed: bool
    best_detection_id: int | None
    best_image_id: int | None
    best_image_path: str | None
    best_box: tuple[float, float, float, float] | None
    # the decision was carried from this occurrence of another configuration (db.review_carry)
    carried_from: int | None = None
    # "Needs a look: the decision from … could not be carried: …" (None: nothing to look at)
    needs_check: str | None = None

    @property
    def reviewed(self) -> bool:
        return self.review_state is not None or self.fixture_reviewed

    @property
    def final_label(self) -> str | None:
        if self.review_state in LABELLED_STATES:
            return self.review_label
        return None if self.review_state == REJECTED else self.machine_label

    @property
    def method(self) -> str:
        return "human" if self.review_state is not None else "machine"



def history(db: Database, night_id: int | None = None, limit: int = 50) -> list[tuple]:
    """(id, kind, summary, by, at (UTC), undone) of the latest actions, newest first."""
    q = select(ReviewAction.id, ReviewAction.kind, ReviewAction.summary, ReviewAction.by,
               ReviewAction.at, ReviewAction.undone)
    if night_id is not None:
        q = q.where(ReviewAction.night_id == night_id)
    with db.session() as s:
        return [(r[0], r[1], r[2], r[3], _utc(r[4]), bool(r[5]))
                for r in s.execute(q.order_by(ReviewAction.id.desc()).limit(limit))]



# ---- reads ----------------------------------------------------------------------------------
def review_rows(db: Database, pipeline_id: int, night_id: int, *,
                unreviewed_only: bool = False,
                occurrence_ids: Sequence[int] | None = None) -> list[ReviewRow]:
    """The night's occurrences that have detections, in order of first sight (only
    ``occurrence_ids`` when given: the rows an action changed)."""
    params = {"pipeline_id": pipeline_id, "night_id": night_id}
    if occurrence_ids is not None:
        params["ids"] = sorted(set(occurrence_ids))[:_CHUNK]
    with db.session() as s:
        rows = s.execute(_rows_statement(occurrence_ids is not None, unreviewed_only),
                         params).all()
        checks = carry_checks_by_occurrence(s, pipeline_id, [night_id])
    return [ReviewRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11],
                      int(r[12] or 0), r[13], bool(r[14]), bool(r[15]), r[16], r[17],
                      disk_path(r[18], r[19]) if r[18] is not None else None,
                      (r[20], r[21], r[22], r[23]) if r[20] is not None else None, r[24],
                      None if (r[6] is not None or r[15]) else checks.get(r[0]))
            for r in rows]


@functools.cache
def _rows_statement(by_ids: bool, unreviewed_only: bool):
    """The grid's query, built once (bound parameters): each review action reads its rows
    again on the saving thread, and building this select in SQLAlchemy costs more Python than
    running it. With ``by_ids`` the best score is computed for those occurrences only, not for
    the whole night."""
    pipeline, night = bindparam("pipeline_id"), bindparam("night_id")
    ids = bindparam("ids", expanding=True)
    best = select(Detection.occurrence_id.label("occ"), func.max(Detection.score).label("best"))
    if by_ids:
        best = best.where(Detection.occurrence_id.in_(ids))
    else:
        best = (best.join(Occurrence, Occurrence.id == Detection.occurrence_id)
                .where(Occurrence.pipeline_id == pipeline, Occurrence.night_id == night))
    best = best.group_by(Detection.occurrence_id).subquery()
    q = (select(Occurrence.id, Occurrence.pipeline_id, Occurrence.night_id, Occurrence.label,
                Occurrence.label_rank, Occurrence.label_score, Occurrence.review_state,
                Occurrence.review_label, Occurrence.review_rank, Occurrence.identified_by,
                Occurrence.identified_at, Occurrence.first_seen, Occurrence.n_detections,
                best.c.best, Occurrence.fixture, Occurrence.fixture_reviewed,
                Occurrence.best_detection_id, Detection.image_id, Deployment.path,
                Image.rel_path, Detection.x1, Detection.y1, Detection.x2, Detection.y2,
                Occurrence.carried_from)
         .join(best, best.c.occ == Occurrence.id)
         .outerjoin(Detection, Detection.id == Occurrence.best_detection_id)
         .outerjoin(Image, Image.id == Detection.image_id)
         .outerjoin(Deployment, Deployment.id == Image.deployment_id)
         .where(Occurrence.pipeline_id == pipeline, Occurrence.night_id == night)
         .order_by(Occurrence.first_seen, Occurrence.id))
    if unreviewed_only:
        q = q.where(Occurrence.review_state.is_(None), Occurrence.fixture_reviewed.is_(False))
    if by_ids:
        q = q.where(Occurrence.id.in_(ids))
    return q


def carry_checks_by_occurrence(s, pipeline_id: int, night_ids: Sequence[int]) -> dict[int, str]:
    """occurrence -> why a decision of another configuration could not be carried onto it
    (the open "needs a look" rows of ``db.review_carry``; several joined by a space)."""
    from trapgui.db.review_carry import open_checks

    out: dict[int, str] = {}
    for check in open_checks(s, pipeline_id, night_ids):
        for occ in check.look_at:
            out[occ] = f"{out[occ]} {check.reason}" if occ in out else check.reason
    return out


def carry_checks(db: Database, pipeline_id: int, night_ids: Sequence[int] | None = None) -> list:
    """The open ``db.review_carry.CarryCheck``s of a configuration (all nights: None)."""
    from trapgui.db.review_carry import open_checks

    with db.session() as s:
        return open_checks(s, pipeline_id, night_ids)


def night_version(db: Database, pipeline_id: int, night_id: int) -> tuple:
    """(occurrences, largest id, latest change) of the night's occurrences of the model
    configuration: it changes whenever tracking, a run or a review action adds, removes or
    edits one (the review grid's cue to read the night again, without reading it)."""
    q = select(func.count(Occurrence.id), func.max(Occurrence.id), func.max(Occurrence.updated_at),
               func.sum(Occurrence.n_detections)).where(
        Occurrence.pipeline_id == pipeline_id, Occurrence.night_id == night_id)
    with db.session() as s:
        return tuple(s.execute(q).one())


def box_authors(s, night_id: int | None, detection_ids: Sequence[int]) -> dict[int, str | None]:
    """Who drew each of these detections (boxes a person drew, ``review_store.add_box``),
    read in the caller's session from the night's review log."""
    wanted = set(detection_ids)
    if not wanted or night_id is None:
        return {}
    out: dict[int, str | None] = {}
    for by, changes in s.execute(select(ReviewAction.by, ReviewAction.changes).where(
            ReviewAction.night_id == night_id, ReviewAction.kind == "add box",
            ReviewAction.undone.is_(False))):
        for det in (changes or {}).get("created_detections") or ():
            if det in wanted:
                out[int(det)] = by
    return out


def occurrence_embeddings(db: Database, pipeline_id: int,
                          night_id: int) -> list[tuple[int, bytes]]:
    """(occurrence, stored embedding) of every detection of the night's occurrences that has
    one (the appearance sort)."""
    q = (select(Detection.occurrence_id, Detection.embedding)
         .join(Occurrence, Occurrence.id == Detection.occurrence_id)
         .where(Occurrence.pipeline_id == pipeline_id, Occurrence.night_id == night_id,
                Detection.embedding.is_not(None)))
    with db.session() as s:
        return [(r[0], r[1]) for r in s.execute(q)]


def image_boxes(db: Database, image_id: int,
                pipeline_id: int) -> list[tuple[int, int | None, tuple[float, float, float, float]]]:
    """(detection, occurrence, box) of every detection of the model configuration on the image
    (the boxes shown while a person draws a missed one)."""
    q = (select(Detection.id, Detection.occurrence_id, Detection.x1, Detection.y1, Detection.x2,
                Detection.y2)
         .where(Detection.image_id == image_id, Detection.pipeline_id == pipeline_id)
         .order_by(Detection.id))
    with db.session() as s:
        return [(r[0], r[1], (r[2], r[3], r[4], r[5])) for r in s.execute(q)]


def occurrence_scope(db: Database, occurrence_id: int) -> tuple[int, int]:
    """(pipeline, night) of an occurrence."""
    with db.session() as s:
        row = s.execute(select(Occurrence.pipeline_id, Occurrence.night_id)
                        .where(Occurrence.id == occurrence_id)).first()
    if row is None:
        raise UserInputError(f"Occurrence {occurrence_id} is not in the catalogue.")
    return row[0], row[1]


def image_night(db: Database, image_id: int) -> int:
    with db.session() as s:
        row = s.execute(select(Image.night_id).where(Image.id == image_id)).first()
    if row is None:
        raise UserInputError(f"Image {image_id} is not in the catalogue.")
    if row[0] is None:
        raise UserInputError(f"Image {image_id} has no capture time: it belongs to no night.")
    return row[0]


def frame_detections(db: Database, occurrence_id: int) -> list[int]:
    """The occurrence's detection ids in frame order."""
    occurrence_scope(db, occurrence_id)  # exists
    with db.session() as s:
        return [d for d, _ in frames(s, occurrence_id)]


def frames(s, occ_id: int) -> list[tuple[int, dt.datetime | None]]:
    """(detection, capture time) of an occurrence in frame order (in the caller's session)."""
    return [(r[0], r[1]) for r in s.execute(
        select(Detection.id, Image.captured_at).join(Image, Image.id == Detection.image_id)
        .where(Detection.occurrence_id == occ_id)
        .order_by(Image.captured_at, Image.id, Detection.id))]


def morphospecies(db: Database) -> list[tuple[str, str]]:
    with db.session() as s:
        return [(r[0], r[1]) for r in s.execute(select(Morphospecies.name, Morphospecies.rank)
                                                .order_by(Morphospecies.name))]


def machine_labels(db: Database, pipeline_id: int | None = None) -> dict[str, str | None]:
    """Labels the machine gave occurrences (label -> rank)."""
    q = select(Occurrence.label, Occurrence.label_rank).where(Occurrence.label.is_not(None)).distinct()
    if pipeline_id is not None:
        q = q.where(Occurrence.pipeline_id == pipeline_id)
    with db.session() as s:
        return {r[0]: r[1] for r in s.execute(q)}


def agreement_rows(db: Database, pipeline_id: int | None,
                   night_ids: Sequence[int] | None = None) -> list[tuple[str | None, str, str | None, int]]:
    """(machine label when reviewed, state, person's label, occurrences) of every reviewed
    occurrence with detections."""
    q = (select(Occurrence.reviewed_machine_label, Occurrence.review_state,
                Occurrence.review_label, func.count())
         .where(Occurrence.review_state.is_not(None), Occurrence.merged_into.is_(None),
                Occurrence.n_detections > 0)
         .group_by(Occurrence.reviewed_machine_label, Occurrence.review_state,
                   Occurrence.review_label))
    if pipeline_id is not None:
        q = q.where(Occurrence.pipeline_id == pipeline_id)
    if night_ids is not None:
        q = q.where(Occurrence.night_id.in_(list(night_ids)))
    with db.session() as s:
        return [(r[0], r[1], r[2], int(r[3])) for r in s.execute(q)]


def human_identifications(db: Database, pipeline_id: int | None,
                          night_ids: Sequence[int] | None = None) -> dict[tuple[int, str], dict]:
    """(night, the person's label) -> {"by": reviewer names, "machine": {machine label when
    reviewed: occurrences}}: who identified a night's records of a taxon (Darwin Core's
    identifiedBy) and what the machine had said."""
    q = (select(Occurrence.night_id, Occurrence.review_label, Occurrence.identified_by,
                Occurrence.reviewed_machine_label, func.count())
         .where(Occurrence.review_state.in_(LABELLED_STATES), Occurrence.merged_into.is_(None),
                Occurrence.night_id.is_not(None))
         .group_by(Occurrence.night_id, Occurrence.review_label, Occurrence.identified_by,
                   Occurrence.reviewed_machine_label))
    if pipeline_id is not None:
        q = q.where(Occurrence.pipeline_id == pipeline_id)
    if night_ids is not None:
        q = q.where(Occurrence.night_id.in_(list(night_ids)))
    out: dict[tuple[int, str], dict] = {}
    with db.session() as s:
        for night, label, by, machine, n in s.execute(q):
            entry = out.setdefault((night, label), {"by": set(), "machine": {}})
            if by:
                entry["by"].add(by)
            key = machine or "(no label)"
            entry["machine"][key] = entry["machine"].get(key, 0) + int(n)
    return out


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(tzinfo=None)
