"""A person's decisions follow the insect to another model configuration of the night: the
catalogue side (reads for ``tracking.decision_match``, writes of its plans). The rules are in
``tracking.decision_match`` and docs/review.md ("Decisions follow the insect").

- A *decision* is an occurrence a person decided in its own configuration (``carried_from``
  NULL): a review state, a fixture decision, or a grouping of the person's (the occurrence was
  made by a person, or touched by a merge, split, move, drawn or deleted box not undone).
- Carried, it is written on the target occurrence exactly as the review columns of a decision
  made there (so ``db.final_labels``, counts and exports treat it alike), with the original
  reviewer and time, ``carried_from`` = the source occurrence, the target pinned, and one
  ``review_actions`` row (kind "carry") per carrying so undo takes it back.
- ``review_carries`` records, per source and target configuration, what became of it:
  ``carried`` and ``undone`` are final (never carried twice, never again after an undo);
  ``check`` rows are rebuilt each time the night is tracked.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update

from trapgui.core.types import HUMAN_DETECTOR, JobState
from trapgui.db import review_store
from trapgui.db.review_queries import CONFIRMED, REJECTED, RELABELLED
from trapgui.db.tables import (Detection, Image, Job, Night, Occurrence, PipelineConfig,
                               ReviewAction, ReviewCarry)

CARRIED, CHECK, UNDONE = "carried", "check", "undone"
# review actions whose result is a grouping of the person's
_GROUPING_KINDS = ("merge", "split", "move", "add box", "delete box")


@dataclass(frozen=True, slots=True)
class Source:
    """A decided occurrence of another configuration, with what is to be carried."""

    occurrence_id: int
    pipeline_id: int
    pipeline_name: str
    review_state: str | None
    review_label: str | None
    review_rank: str | None
    identified_by: str | None
    identified_at: object
    fixture_reviewed: bool
    fixture: bool
    fixture_reason: str | None
    grouping: bool  # the person's grouping (carried as a frame set)
    decided_at: float
    frames: tuple[tuple[int, int, tuple[float, float, float, float], bool], ...]
    # (detection, image, box, drawn by a person)

    def describe(self) -> str:
        if self.review_state == REJECTED:
            what = "rejected as not an insect"
        elif self.review_state == CONFIRMED:
            what = f"confirmed as {self.review_label}"
        elif self.review_state == RELABELLED:
            what = f"labelled {self.review_label}"
        elif self.fixture_reviewed:
            what = "marked as a fixture" if self.fixture else "marked as no fixture"
        else:
            what = "its frames grouped by a person"
        return f"occurrence {self.occurrence_id}, {what}"


@dataclass(frozen=True, slots=True)
class CarryInputs:
    sources: tuple[Source, ...]
    targets: tuple[tuple[int, int, tuple[float, float, float, float], int | None], ...]
    target_images: frozenset[int]
    source_images: dict[int, frozenset[int]]
    pinned_targets: frozenset[int]  # a person's (or an earlier carry's): never overridden


@dataclass
class CarryStats:
    carried: int = 0
    checks: int = 0
    action_id: int | None = None
    reasons: list[str] = field(default_factory=list)


def _done_images(s, pipeline_id: int, night_id: int) -> frozenset[int]:
    return frozenset(s.execute(
        select(Image.id).join(Job, Job.image_id == Image.id)
        .where(Image.night_id == night_id, Image.captured_at.is_not(None),
               Job.pipeline_id == pipeline_id, Job.state == JobState.DONE.value)).scalars())


def read_inputs(s, pipeline_id: int, night_id: int) -> CarryInputs | None:
    """What the plan needs (in the caller's transaction); None: no decision of another
    configuration waits to be carried into this night."""
    grouped = _grouped_by_a_person(s, night_id)
    final = set(s.execute(select(ReviewCarry.source_occurrence_id).where(
        ReviewCarry.target_pipeline_id == pipeline_id, ReviewCarry.night_id == night_id,
        ReviewCarry.state.in_([CARRIED, UNDONE]))).scalars())
    names = dict(s.execute(select(PipelineConfig.id, PipelineConfig.name)).all())
    rows = s.execute(select(
        Occurrence.id, Occurrence.pipeline_id, Occurrence.review_state, Occurrence.review_label,
        Occurrence.review_rank, Occurrence.identified_by, Occurrence.identified_at,
        Occurrence.fixture_reviewed, Occurrence.fixture, Occurrence.fixture_reason,
        Occurrence.created_by, Occurrence.updated_at)
        .where(Occurrence.night_id == night_id, Occurrence.pipeline_id != pipeline_id,
               Occurrence.carried_from.is_(None), Occurrence.merged_into.is_(None),
               Occurrence.n_detections > 0)).all()
    decided = [r for r in rows if r[0] not in final and (
        r[2] is not None or r[7] or r[10] == "human" or r[0] in grouped)]
    if not decided:
        return None
    frames: dict[int, list] = {r[0]: [] for r in decided}
    ids = list(frames)
    for k in range(0, len(ids), 900):
        for d in s.execute(select(Detection.occurrence_id, Detection.id, Detection.image_id,
                                  Detection.x1, Detection.y1, Detection.x2, Detection.y2,
                                  Detection.detector)
                           .where(Detection.occurrence_id.in_(ids[k:k + 900]))
                           .order_by(Detection.id)):
            frames[d[0]].append((d[1], d[2], (d[3], d[4], d[5], d[6]), d[7] == HUMAN_DETECTOR))
    sources = tuple(Source(
        r[0], r[1], names.get(r[1], f"configuration {r[1]}"), r[2], r[3], r[4], r[5], r[6],
        bool(r[7]), bool(r[8]), r[9], r[10] == "human" or r[0] in grouped,
        r[6].timestamp() if r[6] is not None else float(r[11] or 0.0), tuple(frames[r[0]]))
        for r in decided)
    target_images = _done_images(s, pipeline_id, night_id)
    targets = tuple((r[0], r[1], (r[2], r[3], r[4], r[5]), r[6]) for r in s.execute(
        select(Detection.id, Detection.image_id, Detection.x1, Detection.y1, Detection.x2,
               Detection.y2, Detection.occurrence_id)
        .where(Detection.pipeline_id == pipeline_id, Detection.image_id.in_(
            select(Image.id).where(Image.night_id == night_id)))))
    targets = tuple(t for t in targets if t[1] in target_images)
    source_images = {p: _done_images(s, p, night_id) for p in {src.pipeline_id for src in sources}}
    pinned = frozenset(s.execute(select(Occurrence.id).where(
        Occurrence.pipeline_id == pipeline_id, Occurrence.night_id == night_id,
        Occurrence.pinned.is_(True))).scalars())
    return CarryInputs(sources, targets, target_images, source_images, pinned)


def _grouped_by_a_person(s, night_id: int) -> set[int]:
    """Occurrences of the night whose grouping a person made (an action not undone)."""
    out: set[int] = set()
    for (changes,) in s.execute(select(ReviewAction.changes).where(
            ReviewAction.night_id == night_id, ReviewAction.undone.is_(False),
            ReviewAction.kind.in_(_GROUPING_KINDS))):
        if isinstance(changes, str):
            changes = json.loads(changes)
        out.update(int(i) for i in (changes or {}).get("occurrences", {}))
        out.update(int(i) for i in (changes or {}).get("created", []))
    return out


# ---- writes ---------------------------------------------------------------------------------
def write_plans(s, pipeline_id: int, night_id: int, sources: Sequence[Source],
                plans: Sequence) -> CarryStats:
    """Apply ``tracking.decision_match`` plans (one per source, same order) in the caller's
    write transaction: carried decisions (one review action for all of them), and the night's
    ``check`` rows rebuilt."""
    stats = CarryStats()
    now = time.time()
    by_id = {src.occurrence_id: src for src in sources}
    s.execute(delete(ReviewCarry).where(ReviewCarry.target_pipeline_id == pipeline_id,
                                        ReviewCarry.night_id == night_id,
                                        ReviewCarry.state == CHECK))
    conn = s.connection()
    changes: dict[str, dict] = {}
    moves: list[list] = []
    created: list[int] = []
    drawn: list[int] = []
    carried: list[tuple[Source, int]] = []
    touched_rows: dict[int, object] = {}
    for plan in plans:
        src = by_id[plan.source_id]
        if plan.kind == "check":
            reason = (f"Needs a look: the decision from {src.pipeline_name} "
                      f"({src.describe()}) could not be carried: {plan.reason}.")
            s.execute(insert(ReviewCarry).values(
                source_occurrence_id=src.occurrence_id, target_pipeline_id=pipeline_id,
                night_id=night_id, state=CHECK, target_occurrence_ids=list(plan.look_at),
                reason=reason, at=now))
            stats.checks += 1
            stats.reasons.append(reason)
            continue
        if plan.kind == "occurrence" or (plan.kind == "frames" and plan.target_id is not None):
            target = plan.target_id
        elif plan.kind == "frames":
            target = _new_occurrence(s, pipeline_id, night_id, plan, now)
            created.append(target)
            for det in plan.copies:
                new_det = _copy_box(s, det, pipeline_id, target)
                drawn.append(new_det)
            owners = dict(s.execute(select(Detection.id, Detection.occurrence_id)
                                    .where(Detection.id.in_(list(plan.detection_ids)))).all())
            step = [[d, owners.get(d), target] for d in plan.detection_ids]
            if step:
                conn.exec_driver_sql("UPDATE detections SET occurrence_id = ? WHERE id = ?",
                                     [(to, d) for d, _, to in step])
            moves += step
            emptied = sorted({o for _, o, _ in step if o is not None})
            for o, row in review_store.load_rows(s, emptied).items():
                # listed so undo refreshes them when their boxes come back
                touched_rows.setdefault(o, row)
                snap = review_store.snapshot(row)
                changes.setdefault(str(o), {"before": snap, "after": snap})
            review_store.refresh_summaries(s, {target, *emptied})
        else:
            continue
        row = review_store.load_rows(s, [target])[target]
        touched_rows[target] = row
        new = _decision_values(src, row)
        s.execute(update(Occurrence).where(Occurrence.id == target).values(updated_at=now, **new))
        before = review_store.snapshot(row)
        changes[str(target)] = {"before": before,
                                "after": {**before, **review_store.jsonable(new)}}
        carried.append((src, target))
    if not carried:
        return stats
    ledger = []
    for src, target in carried:
        ledger.append(s.execute(insert(ReviewCarry).values(
            source_occurrence_id=src.occurrence_id, target_pipeline_id=pipeline_id,
            night_id=night_id, state=CARRIED, target_occurrence_ids=[target], at=now)
            .returning(ReviewCarry.id)).scalar_one())
    names = sorted({src.pipeline_name for src, _ in carried})
    n = len(carried)
    text = (f"{n} decision{'s' if n != 1 else ''} carried from {', '.join(names)} "
            f"(the same insects, matched by their boxes)")
    outcome = review_store.record_action(
        s, "carry", touched_rows, sorted(touched_rows),
        {"occurrences": changes, "detections": moves, "created": created,
         "created_detections": drawn, "carries": ledger}, text, now, tuple(created), by=None)
    s.execute(update(ReviewCarry).where(ReviewCarry.id.in_(ledger))
              .values(action_id=outcome.action_id))
    stats.carried, stats.action_id = n, outcome.action_id
    return stats


def _decision_values(src: Source, row) -> dict:
    values = dict(pinned=True, carried_from=src.occurrence_id)
    if src.review_state is not None:
        state = src.review_state
        if state != REJECTED:  # confirmed or relabelled against *this* configuration's label
            state = CONFIRMED if (src.review_label == row.label and src.review_rank in
                                  (None, row.label_rank)) else RELABELLED
        values.update(review_state=state, review_label=src.review_label,
                      review_rank=src.review_rank, identified_by=src.identified_by,
                      identified_at=src.identified_at, reviewed_machine_label=row.label,
                      reviewed_machine_rank=row.label_rank,
                      reviewed_machine_score=row.label_score)
    if src.fixture_reviewed:
        values.update(fixture_reviewed=True, fixture=src.fixture,
                      fixture_reason=src.fixture_reason)
    return values


def _new_occurrence(s, pipeline_id: int, night_id: int, plan, now: float) -> int:
    """A person's frame set in this configuration: a new occurrence (made by a person, as
    the grouping is), with the machine vote of the occurrence most of its boxes came from
    until the night is tracked again."""
    dep = s.execute(select(Night.deployment_id).where(Night.id == night_id)).scalar_one()
    label = (None, None, None)
    if plan.detection_ids:
        main = s.execute(select(Detection.occurrence_id, func.count()).where(
            Detection.id.in_(list(plan.detection_ids)), Detection.occurrence_id.is_not(None))
            .group_by(Detection.occurrence_id).order_by(func.count().desc()).limit(1)).first()
        if main is not None:
            label = tuple(s.execute(select(Occurrence.label, Occurrence.label_rank,
                                           Occurrence.label_score)
                                    .where(Occurrence.id == main[0])).one())
    new_id = (s.execute(select(func.max(Occurrence.id))).scalar() or 0) + 1
    s.execute(insert(Occurrence).values(
        id=new_id, pipeline_id=pipeline_id, deployment_id=dep, night_id=night_id,
        n_detections=0, fixture=False, fixture_reviewed=False, pinned=True, created_by="human",
        updated_at=now, label=label[0], label_rank=label[1], label_score=label[2]))
    return new_id


def _copy_box(s, detection_id: int, pipeline_id: int, occurrence_id: int) -> int:
    """A box a person drew belongs to every configuration: the same box, of this one."""
    d = s.execute(select(Detection.image_id, Detection.x1, Detection.y1, Detection.x2,
                         Detection.y2).where(Detection.id == detection_id)).one()
    new_id = (s.execute(select(func.max(Detection.id))).scalar() or 0) + 1
    s.execute(insert(Detection).values(
        id=new_id, image_id=d[0], pipeline_id=pipeline_id, x1=d[1], y1=d[2], x2=d[3], y2=d[4],
        score=1.0, detector=HUMAN_DETECTOR, occurrence_id=occurrence_id))
    return new_id


# ---- reads for the views --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class CarryCheck:
    """A decision of another configuration that could not be carried into this one."""

    source_occurrence_id: int
    night_id: int
    look_at: tuple[int, ...]  # this configuration's occurrences to look at (may be none)
    reason: str


def open_checks(s, pipeline_id: int, night_ids: Sequence[int] | None = None) -> list[CarryCheck]:
    """The ``check`` rows of the configuration that a person has not settled yet: a row is
    settled once every occurrence it names is decided in this configuration."""
    q = select(ReviewCarry.source_occurrence_id, ReviewCarry.night_id,
               ReviewCarry.target_occurrence_ids, ReviewCarry.reason).where(
        ReviewCarry.target_pipeline_id == pipeline_id, ReviewCarry.state == CHECK)
    if night_ids is not None:
        q = q.where(ReviewCarry.night_id.in_(list(night_ids)))
    rows = s.execute(q.order_by(ReviewCarry.night_id, ReviewCarry.source_occurrence_id)).all()
    named = sorted({int(o) for r in rows for o in (r[2] or [])})
    settled = set()
    for k in range(0, len(named), 900):
        settled.update(s.execute(select(Occurrence.id).where(
            Occurrence.id.in_(named[k:k + 900]),
            (Occurrence.review_state.is_not(None)) | Occurrence.fixture_reviewed.is_(True)
            | Occurrence.merged_into.is_not(None))).scalars())
    out = []
    for src, night, look_at, reason in rows:
        look = tuple(int(o) for o in (look_at or []))
        if look and all(o in settled for o in look):
            continue
        out.append(CarryCheck(int(src), int(night), look, reason or ""))
    return out


__all__ = ["CARRIED", "CHECK", "UNDONE", "CarryCheck", "CarryInputs", "CarryStats", "Source",
           "open_checks", "read_inputs", "write_plans"]
