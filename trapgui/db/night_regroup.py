"""Moving one trap's images to the nights of another cut-off hour, in the caller's write
transaction, keeping every result and every decision of a person (``pipeline.night_regroup``
re-tracks the nights it changed in the same transaction).

- Night rows are per evening date: a date that stays keeps its row (and id); new dates get
  rows; a night left without images is removed only once nothing refers to it any more.
- Detections and classifications hang on images: they move with them, untouched.
- Every individual (occurrence) ends in the night that holds its detections. One whose
  detections now lie in two nights is split along the new boundary: a machine-made one lets go
  of the detections outside its largest part (tracking makes them individuals again); a
  pinned one (a person's decision) keeps its largest part and each other part becomes a new
  pinned occurrence carrying the same decision, recorded in the review log (kind
  ``regroup``, a record that undo passes over). An occurrence without detections (merged into
  another) follows the one it was merged into, else the night most of its images went to.
- ``review_actions.night_id`` and ``review_carries.night_id`` (plain integers) follow the
  occurrences they touched, else that same night.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from sqlalchemy import delete, func, insert, select, update

from trapgui.core.nights import check_cutoff_hour, night_date
from trapgui.db.review_store import refresh_summaries
from trapgui.db.tables import (Deployment, Detection, Image, Night, Occurrence, ReviewAction,
                               ReviewCarry)

REGROUP_KIND = "regroup"  # review-log entries of a split along a new night boundary
_CHUNK = 900


@dataclass
class TrapRegroup:
    """What moving one trap to another cut-off hour did."""

    deployment_id: int
    name: str
    old_hour: int
    new_hour: int
    nights_before: int = 0
    nights_after: int = 0
    images_moved: int = 0
    occurrences_moved: int = 0
    decisions_split: int = 0  # pinned occurrences split along the new boundary
    # (pipeline, night) pairs whose detections changed night: tracked again
    to_track: list[tuple[int, int]] = field(default_factory=list)


def traps_to_regroup(session, cutoff_hour: int,
                     deployment_ids: list[int] | None = None) -> list[tuple[int, str, int]]:
    """(id, name, stored hour) of the traps whose nights were made with another hour."""
    q = select(Deployment.id, Deployment.name, Deployment.night_cutoff_hour).where(
        Deployment.night_cutoff_hour != cutoff_hour)
    if deployment_ids is not None:
        q = q.where(Deployment.id.in_(list(deployment_ids)))
    return [tuple(r) for r in session.execute(q.order_by(Deployment.name, Deployment.id))]


def regroup_trap(session, dep_id: int, cutoff_hour: int, by: str | None = None) -> TrapRegroup:
    """Move trap ``dep_id`` to ``cutoff_hour`` (see the module docstring). The caller commits
    (and re-tracks ``to_track`` before it does)."""
    check_cutoff_hour(cutoff_hour)
    name, old_hour = session.execute(select(Deployment.name, Deployment.night_cutoff_hour).where(
        Deployment.id == dep_id)).one()
    out = TrapRegroup(dep_id, name, old_hour, cutoff_hour)
    nights = dict(session.execute(select(Night.date, Night.id).where(
        Night.deployment_id == dep_id)).all())
    out.nights_before = len(nights)
    old_ids = set(nights.values())

    # 1. images to the nights of the new hour
    went: dict[int, Counter] = defaultdict(Counter)  # old night -> new night -> images
    changed_nights: set[int] = set()
    moves = []
    for image_id, night_id, captured_at in session.execute(
            select(Image.id, Image.night_id, Image.captured_at).where(
                Image.deployment_id == dep_id, Image.captured_at.is_not(None))).all():
        date = night_date(captured_at, cutoff_hour)
        target = nights.get(date)
        if target is None:
            target = nights[date] = session.execute(insert(Night).values(
                deployment_id=dep_id, date=date, start=captured_at, end=captured_at
            ).returning(Night.id)).scalar_one()
        if night_id is not None:
            went[night_id][target] += 1
        if target != night_id:
            moves.append({"id": image_id, "night_id": target})
            changed_nights.update(n for n in (night_id, target) if n is not None)
    for k in range(0, len(moves), _CHUNK):
        session.execute(update(Image), moves[k:k + _CHUNK])
    out.images_moved = len(moves)
    successor = {old: c.most_common(1)[0][0] for old, c in went.items()}

    # 2. every occurrence into the night of its detections
    dates = {v: k for k, v in nights.items()}
    occ_rows = session.execute(select(Occurrence.id, Occurrence.night_id, Occurrence.pinned,
                                      Occurrence.merged_into).where(
        Occurrence.deployment_id == dep_id)).all()
    parts: dict[int, dict[int, list[int]]] = defaultdict(lambda: defaultdict(list))
    for det_id, occ_id, night_id in session.execute(
            select(Detection.id, Detection.occurrence_id, Image.night_id)
            .join(Image, Image.id == Detection.image_id)
            .join(Occurrence, Occurrence.id == Detection.occurrence_id)
            .where(Occurrence.deployment_id == dep_id)).all():
        parts[occ_id][night_id].append(det_id)
    home: dict[int, int | None] = {}
    now = time.time()
    for occ_id, night_id, pinned, _ in occ_rows:
        by_night = parts.get(occ_id)
        if not by_night:
            continue
        order = sorted(by_night, key=lambda n: (-len(by_night[n]), dates.get(n, dt.date.max)))
        home[occ_id] = order[0]
        for other in order[1:]:
            changed_nights.add(other)
            if pinned:
                new_id = _split_off(session, occ_id, other, by_night[other], now)
                _log_split(session, occ_id, new_id, dates.get(other), by_night[other],
                           old_hour, cutoff_hour, by, now)
                out.decisions_split += 1
            else:  # tracking makes them individuals of their night again
                _set_occurrence(session, by_night[other], None)
        if len(order) > 1:
            refresh_summaries(session, [occ_id])
    for occ_id, night_id, _, merged_into in occ_rows:
        if occ_id not in home:  # no detections: follow the one it was merged into
            home[occ_id] = successor.get(night_id, night_id)
    for occ_id, night_id, _, merged_into in occ_rows:
        if occ_id not in parts and merged_into in home:
            home[occ_id] = home[merged_into]
    current = {r[0]: r[1] for r in occ_rows}
    for occ_id, target in home.items():
        if target != current[occ_id]:
            session.execute(update(Occurrence).where(Occurrence.id == occ_id).values(
                night_id=target))
            out.occurrences_moved += 1

    # 3. the review log and the carry ledger follow the individuals
    night_of = dict(session.execute(select(Occurrence.id, Occurrence.night_id).where(
        Occurrence.deployment_id == dep_id)).all())
    for action_id, night_id, changes in session.execute(
            select(ReviewAction.id, ReviewAction.night_id, ReviewAction.changes).where(
                ReviewAction.night_id.in_(old_ids))).all():
        touched = [night_of.get(int(i)) for i in ((changes or {}).get("occurrences") or {})]
        target = next((n for n in touched if n is not None), successor.get(night_id, night_id))
        if target != night_id:
            session.execute(update(ReviewAction).where(ReviewAction.id == action_id).values(
                night_id=target))
    for carry_id, night_id, targets in session.execute(
            select(ReviewCarry.id, ReviewCarry.night_id, ReviewCarry.target_occurrence_ids).where(
                ReviewCarry.night_id.in_(old_ids))).all():
        found = [night_of.get(int(i)) for i in targets or []]
        target = next((n for n in found if n is not None), successor.get(night_id, night_id))
        if target != night_id:
            session.execute(update(ReviewCarry).where(ReviewCarry.id == carry_id).values(
                night_id=target))

    # 4. nights left empty go, bounds follow, the trap records its hour
    remove_empty_nights(session, dep_id)
    session.execute(update(Deployment).where(Deployment.id == dep_id).values(
        night_cutoff_hour=cutoff_hour))
    out.nights_after = session.execute(select(func.count()).select_from(Night).where(
        Night.deployment_id == dep_id)).scalar_one()
    live = set(session.execute(select(Night.id).where(Night.deployment_id == dep_id)).scalars())
    pipelines = session.execute(select(Detection.pipeline_id, Image.night_id).join(
        Image, Image.id == Detection.image_id).where(
        Image.deployment_id == dep_id, Image.night_id.in_(sorted(changed_nights & live)))
        .distinct()).all()
    out.to_track = sorted((p, n) for p, n in pipelines)
    return out


def remove_empty_nights(session, dep_id: int) -> int:
    """Night start/end = first/last capture; a night without images goes, unless an
    occurrence still refers to it (its row would go with it: a person's work)."""
    spans = {r[0]: (r[1], r[2]) for r in session.execute(
        select(Image.night_id, func.min(Image.captured_at), func.max(Image.captured_at))
        .where(Image.deployment_id == dep_id, Image.night_id.is_not(None))
        .group_by(Image.night_id))}
    held = set(session.execute(select(Occurrence.night_id).where(
        Occurrence.deployment_id == dep_id).distinct()).scalars())
    removed = 0
    for night_id, start, end in session.execute(select(Night.id, Night.start, Night.end).where(
            Night.deployment_id == dep_id)).all():
        span = spans.get(night_id)
        if span is None:
            if night_id not in held:
                session.execute(delete(Night).where(Night.id == night_id))
                removed += 1
        elif span != (start, end):
            session.execute(update(Night).where(Night.id == night_id).values(
                start=span[0], end=span[1]))
    return removed


def _set_occurrence(session, detection_ids: list[int], occ_id: int | None) -> None:
    session.connection().exec_driver_sql(
        "UPDATE detections SET occurrence_id = ? WHERE id = ?",
        [(occ_id, d) for d in detection_ids])


def _split_off(session, occ_id: int, night_id: int, detection_ids: list[int], now: float) -> int:
    """A new pinned occurrence in ``night_id``: a copy of ``occ_id`` (its decision included)
    holding ``detection_ids``."""
    table = Occurrence.__table__
    row = session.execute(select(table).where(table.c.id == occ_id)).mappings().one()
    new_id = (session.execute(select(func.max(Occurrence.id))).scalar() or 0) + 1
    values = {k: v for k, v in row.items() if k != "id"}
    values.update(id=new_id, night_id=night_id, pinned=True, updated_at=now,
                  fixture_candidate=None, merged_into=None)
    session.execute(insert(Occurrence).values(**values))
    _set_occurrence(session, detection_ids, new_id)
    refresh_summaries(session, [new_id])
    # the part shares the decision's history: undoing the decision takes it back on both
    key = str(occ_id)
    for action_id, changes in session.execute(select(ReviewAction.id, ReviewAction.changes).where(
            ReviewAction.undone.is_(False), ReviewAction.kind != REGROUP_KIND,
            ReviewAction.pipeline_id.is_(None) | (ReviewAction.pipeline_id == row["pipeline_id"]))):
        touched = (changes or {}).get("occurrences") or {}
        if key in touched:
            updated = dict(changes, occurrences={**touched, str(new_id): touched[key]})
            session.execute(update(ReviewAction).where(ReviewAction.id == action_id).values(
                changes=updated))
    return new_id


def _log_split(session, occ_id: int, new_id: int, date, detection_ids, old_hour: int,
               new_hour: int, by: str | None, now: float) -> None:
    n = len(detection_ids)
    when = date.isoformat() if date is not None else "another night"
    session.execute(insert(ReviewAction).values(
        kind=REGROUP_KIND, pipeline_id=session.execute(select(Occurrence.pipeline_id).where(
            Occurrence.id == occ_id)).scalar_one(), night_id=session.execute(
            select(Occurrence.night_id).where(Occurrence.id == new_id)).scalar_one(),
        summary=(f"occurrence {occ_id} split by the night cut-off change from "
                 f"{old_hour:02d}:00 to {new_hour:02d}:00: its {n} detection{'s' * (n != 1)} "
                 f"of the night of {when} became occurrence {new_id}, with the same decision"),
        changes={"regroup": {"from_hour": old_hour, "to_hour": new_hour},
                 "split": {"from": occ_id, "to": new_id, "detections": sorted(detection_ids)}},
        by=by, at=now, undone=False))
