"""A person's review of occurrences: the decisions, track corrections and undo (their reads
are in ``db.review_queries``).

Rules (docs/review.md):
- A review decision is written on the occurrence beside the machine's label (``label`` goes
  on following re-tracking; ``reviewed_machine_*`` keep what the machine said when the person
  decided) and pins the occurrence: re-tracking keeps its detections and never touches the
  review columns (``db.occurrence_store.replace_night`` updates only machine fields of pinned
  rows), another model's run writes another pipeline's occurrences, and thresholds only
  filter (``db.final_labels``: a person's label counts at every threshold).
- Every action is one transaction and one row of ``review_actions`` holding what each touched
  occurrence and detection was before and became, so :func:`undo` restores it exactly.
- Merged-away occurrences keep their row (no detections, ``merged_into`` set): undo gives
  them their detections back under the same id.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, delete, func, insert, or_, select, update

from trapgui.core.errors import UserInputError
from trapgui.core.types import HUMAN_DETECTOR
from trapgui.db import review_queries
from trapgui.db.database import Database
from trapgui.db.review_queries import CONFIRMED, REJECTED, RELABELLED
from trapgui.db.tables import (Detection, Image, Morphospecies, Occurrence, ReviewAction,
                               ReviewCarry)

MORPHOSPECIES = "morphospecies"
_MAX_LABEL = 255
_CHUNK = 900

# what an action may change on an occurrence, and undo restores
_REVIEW_FIELDS = ("review_state", "review_label", "review_rank", "identified_by",
                  "identified_at", "reviewed_machine_label", "reviewed_machine_rank",
                  "reviewed_machine_score", "pinned", "merged_into", "fixture",
                  "fixture_reason", "fixture_reviewed", "carried_from")
_READ = (Occurrence.id, Occurrence.pipeline_id, Occurrence.night_id, Occurrence.label,
         Occurrence.label_rank, Occurrence.label_score,
         *(getattr(Occurrence, f) for f in _REVIEW_FIELDS))


@dataclass(frozen=True, slots=True)
class ReviewOutcome:
    action_id: int | None  # None: nothing changed (no action recorded)
    kind: str
    occurrence_ids: tuple[int, ...]
    night_ids: tuple[int, ...]
    summary: str
    created_ids: tuple[int, ...] = ()


# ---- label decisions ------------------------------------------------------------------------
def confirm(db: Database, occurrence_ids: Sequence[int], by: str) -> ReviewOutcome:
    """The machine's label is right."""
    def values(row, now):
        if row.label is None:
            raise UserInputError(f"Occurrence {row.id} has no machine label to confirm; "
                                 "give it a label instead.")
        return dict(_decided(row, by, now), review_state=CONFIRMED, review_label=row.label,
                    review_rank=row.label_rank)
    return _decide(db, "confirm", occurrence_ids, values, "confirmed", by)


def relabel(db: Database, occurrence_ids: Sequence[int], label: str, rank: str | None,
            by: str, known: Mapping[str, str | None] | None = None) -> ReviewOutcome:
    """A person's label at any rank. A label that is neither known (``known``: label -> rank,
    the classifier's labels, insect orders) nor an existing morphospecies becomes a new
    morphospecies (undo removes it again if nothing else uses it)."""
    label = clean_label(label)
    known = dict(known or {})
    created: list[str] = []

    def values(row, now):
        state = CONFIRMED if label == row.label and rank in (None, row.label_rank) else RELABELLED
        return dict(_decided(row, by, now), review_state=state, review_label=label,
                    review_rank=rank_for)

    with db.write_session() as s:
        rank_for = rank if rank else known.get(label)
        existing = s.execute(select(Morphospecies.rank).where(Morphospecies.name == label)).first()
        if existing is not None and not rank:
            rank_for = existing[0]
        elif existing is None and (rank_for is None or rank_for == MORPHOSPECIES) \
                and label not in known:
            rank_for = MORPHOSPECIES
            s.execute(insert(Morphospecies).values(name=label, rank=MORPHOSPECIES,
                                                   created_by=by, created_at=time.time()))
            created.append(label)
        return _decide_in(s, "relabel", occurrence_ids, values, f"labelled {label!r}", by,
                          extra={"created_morphospecies": created})


def reject(db: Database, occurrence_ids: Sequence[int], by: str) -> ReviewOutcome:
    """Not an insect: left out of counts and exports."""
    def values(row, now):
        return dict(_decided(row, by, now), review_state=REJECTED, review_label=None,
                    review_rank=None)
    return _decide(db, "reject", occurrence_ids, values, "rejected (not an insect)", by)


def mark_fixture(db: Database, occurrence_ids: Sequence[int], fixture: bool,
                 by: str) -> ReviewOutcome:
    """A person's fixture decision (kept by re-tracking, like ``occurrence_store``'s)."""
    reason = "Marked as a fixture by a person." if fixture else "Marked as not a fixture by a person."

    def values(row, now):
        return dict(fixture=fixture, fixture_reviewed=True, fixture_reason=reason, pinned=True)
    return _decide(db, "fixture", occurrence_ids, values,
                   "marked as a fixture" if fixture else "marked as no fixture", by)


def confirm_label_above(db: Database, pipeline_id: int, night_id: int, label: str,
                        min_score: float, by: str) -> ReviewOutcome:
    """Bulk: confirm every not yet reviewed occurrence of the night whose machine label is
    ``label`` at a score of at least ``min_score`` (one action, one undo)."""
    with db.session() as s:
        ids = list(s.execute(select(Occurrence.id).where(
            Occurrence.pipeline_id == pipeline_id, Occurrence.night_id == night_id,
            Occurrence.label == label, Occurrence.label_score >= min_score,
            Occurrence.review_state.is_(None), Occurrence.merged_into.is_(None),
            Occurrence.fixture.is_(False), Occurrence.n_detections > 0)).scalars())
    if not ids:
        return ReviewOutcome(None, "confirm", (), (night_id,),
                             f"No unreviewed occurrence labelled {label!r} scores {min_score:.2f} "
                             "or more in this night.")
    return confirm(db, ids, by)


def _decided(row, by: str, now: float) -> dict:
    # a decision made here is this configuration's own, over one carried from another
    return dict(identified_by=by, identified_at=_utc(now), reviewed_machine_label=row.label,
                reviewed_machine_rank=row.label_rank, reviewed_machine_score=row.label_score,
                pinned=True, carried_from=None)


def _decide(db, kind, occurrence_ids, values, summary, by) -> ReviewOutcome:
    with db.write_session() as s:
        return _decide_in(s, kind, occurrence_ids, values, summary, by)


def _decide_in(s, kind, occurrence_ids, values, summary, by, extra=None) -> ReviewOutcome:
    ids = _ids(occurrence_ids)
    rows = _load(s, ids)
    now = time.time()
    changes: dict[str, dict] = {}
    for occ_id in ids:
        row = rows[occ_id]
        if row.merged_into is not None:
            raise UserInputError(f"Occurrence {occ_id} was merged into occurrence "
                                 f"{row.merged_into}; review that one.")
        new = values(row, now)
        s.connection().execute(_decision_update(), {"occ_id": occ_id, "updated_at": now, **new})
        before = _snap(row)
        changes[str(occ_id)] = {"before": before, "after": {**before, **_jsonable(new)}}
    n = len(ids)
    text = f"{n} occurrence{'s' if n != 1 else ''} {summary}"
    return _record(s, kind, rows, ids, {"occurrences": changes, **(extra or {})}, text, now,
                   by=by)


# ---- track corrections ----------------------------------------------------------------------
def merge(db: Database, target_id: int, other_ids: Sequence[int], by: str) -> ReviewOutcome:
    """One individual: the detections of ``other_ids`` join ``target_id`` (same night and
    pipeline); the others keep their rows, empty, with ``merged_into``."""
    others = [i for i in _ids(other_ids) if i != target_id]
    if not others:
        raise UserInputError("Give at least one other occurrence to merge into "
                             f"occurrence {target_id}.")
    with db.write_session() as s:
        rows = _load(s, [target_id, *others])
        _same_night(rows)
        for i, row in rows.items():
            if row.merged_into is not None:
                raise UserInputError(f"Occurrence {i} was already merged into occurrence "
                                     f"{row.merged_into}.")
        moves = [[d, o, target_id] for o in others for d in _members(s, o)]
        now = time.time()
        new = {target_id: dict(pinned=True)}
        new.update({o: dict(pinned=True, merged_into=target_id) for o in others})
        return _membership(s, "merge", rows, new, moves, [], now,
                           f"{len(others) + 1} occurrences merged into occurrence {target_id}", by)


def split(db: Database, occurrence_id: int, first_detection_id: int, by: str) -> ReviewOutcome:
    """Two individuals: from the frame of ``first_detection_id`` on, the occurrence's
    detections become a new occurrence (made by a person, pinned, not yet reviewed)."""
    with db.write_session() as s:
        rows = _load(s, [occurrence_id])
        frames = review_queries.frames(s, occurrence_id)
        at = next((k for k, (d, _) in enumerate(frames) if d == first_detection_id), None)
        if at is None:
            raise UserInputError(f"Detection {first_detection_id} is not part of occurrence "
                                 f"{occurrence_id}.")
        cut = frames[at][1]
        later = [d for d, when in frames if _after(when, cut)]
        if len(later) == len(frames):
            raise UserInputError("Splitting at the first frame leaves nothing before it; "
                                 "choose a later frame.")
        src = s.execute(select(Occurrence.pipeline_id, Occurrence.deployment_id,
                               Occurrence.night_id, Occurrence.label, Occurrence.label_rank,
                               Occurrence.label_score).where(Occurrence.id == occurrence_id)).one()
        now = time.time()
        new_id = (s.execute(select(func.max(Occurrence.id))).scalar() or 0) + 1
        s.execute(insert(Occurrence).values(
            id=new_id, pipeline_id=src[0], deployment_id=src[1], night_id=src[2], label=src[3],
            label_rank=src[4], label_score=src[5], n_detections=0, fixture=False,
            fixture_reviewed=False, pinned=True, created_by="human", updated_at=now))
        moves = [[d, occurrence_id, new_id] for d in later]
        return _membership(s, "split", rows, {occurrence_id: dict(pinned=True)}, moves, [new_id],
                           now, f"occurrence {occurrence_id} split: {len(later)} detections "
                           f"became occurrence {new_id}", by)


def move_detection(db: Database, detection_id: int, target_id: int, by: str) -> ReviewOutcome:
    """One detection belongs to another occurrence of the same night and pipeline."""
    with db.write_session() as s:
        det = s.execute(select(Detection.occurrence_id, Detection.pipeline_id, Image.night_id)
                        .join(Image, Image.id == Detection.image_id)
                        .where(Detection.id == detection_id)).first()
        if det is None:
            raise UserInputError(f"Detection {detection_id} is not in the catalogue.")
        if det[0] == target_id:
            raise UserInputError(f"Detection {detection_id} already belongs to occurrence "
                                 f"{target_id}.")
        rows = _load(s, [target_id] + ([det[0]] if det[0] is not None else []))
        target = rows[target_id]
        if (target.pipeline_id, target.night_id) != (det[1], det[2]):
            raise UserInputError(f"Detection {detection_id} is of another night or model "
                                 f"configuration than occurrence {target_id}.")
        if target.merged_into is not None:
            raise UserInputError(f"Occurrence {target_id} was merged into occurrence "
                                 f"{target.merged_into}; move it there.")
        new = {i: dict(pinned=True) for i in rows}
        return _membership(s, "move", rows, new, [[detection_id, det[0], target_id]], [],
                           time.time(), f"detection {detection_id} moved to occurrence {target_id}",
                           by)




def add_box(db: Database, image_id: int, pipeline_id: int,
            box: tuple[float, float, float, float], by: str,
            occurrence_id: int | None = None) -> ReviewOutcome:
    """A missed insect: a person's box on an image becomes a detection (detector "human",
    score 1) of a new occurrence made by a person (pinned, not yet labelled), or of
    ``occurrence_id`` (same night and model configuration). Undo removes both."""
    x1, y1, x2, y2 = (float(v) for v in box)
    with db.write_session() as s:
        image = s.execute(select(Image.night_id, Image.deployment_id, Image.width, Image.height,
                                 Image.captured_at).where(Image.id == image_id)).first()
        if image is None:
            raise UserInputError(f"Image {image_id} is not in the catalogue.")
        night, dep, width, height, captured = image
        if night is None or captured is None:
            raise UserInputError("That image has no capture time (an undated image): it "
                                 "belongs to no night, so a box there makes no individual.")
        x1, x2 = sorted((max(0.0, x1), min(float(width or x2), x2)))
        y1, y2 = sorted((max(0.0, y1), min(float(height or y2), y2)))
        if x2 - x1 < 2 or y2 - y1 < 2:
            raise UserInputError("The box is too small (or outside the image): draw it around "
                                 "the insect.")
        now = time.time()
        rows, created = {}, []
        if occurrence_id is None:
            occurrence_id = (s.execute(select(func.max(Occurrence.id))).scalar() or 0) + 1
            s.execute(insert(Occurrence).values(
                id=occurrence_id, pipeline_id=pipeline_id, deployment_id=dep, night_id=night,
                n_detections=0, fixture=False, fixture_reviewed=False, pinned=True,
                created_by="human", updated_at=now))
            created.append(occurrence_id)
        rows = _load(s, [occurrence_id])
        target = rows[occurrence_id]
        if (target.pipeline_id, target.night_id) != (pipeline_id, night):
            raise UserInputError(f"Occurrence {occurrence_id} is of another night or model "
                                 "configuration than the image.")
        det_id = (s.execute(select(func.max(Detection.id))).scalar() or 0) + 1
        s.execute(insert(Detection).values(
            id=det_id, image_id=image_id, pipeline_id=pipeline_id, x1=x1, y1=y1, x2=x2, y2=y2,
            score=1.0, detector=HUMAN_DETECTOR, occurrence_id=occurrence_id))
        new = {occurrence_id: dict(pinned=True)}
        outcome = _membership(s, "add box", rows, new, [], created, now,
                              f"a box drawn by a person: detection {det_id} of occurrence "
                              f"{occurrence_id}", by, created_detections=[det_id])
        return outcome


def delete_box(db: Database, detection_id: int, by: str) -> ReviewOutcome:
    """A false box (a stain, a shadow): the detection leaves its occurrence for one of its own,
    rejected as not an insect by a person, so it counts nowhere and re-tracking never puts it
    back (undo restores it where it was)."""
    with db.write_session() as s:
        det = s.execute(select(Detection.occurrence_id, Detection.pipeline_id, Image.night_id,
                               Image.deployment_id)
                        .join(Image, Image.id == Detection.image_id)
                        .where(Detection.id == detection_id)).first()
        if det is None:
            raise UserInputError(f"Detection {detection_id} is not in the catalogue.")
        source, pipeline_id, night, dep = det
        if night is None:
            raise UserInputError("That detection is of an undated image: it belongs to no "
                                 "night's individuals.")
        now = time.time()
        new_id = (s.execute(select(func.max(Occurrence.id))).scalar() or 0) + 1
        s.execute(insert(Occurrence).values(
            id=new_id, pipeline_id=pipeline_id, deployment_id=dep, night_id=night,
            n_detections=0, fixture=False, fixture_reviewed=False, pinned=True,
            created_by="human", updated_at=now, review_state=REJECTED, identified_by=by,
            identified_at=_utc(now)))
        rows = _load(s, [source] if source is not None else [])
        new = {source: dict(pinned=True)} if source is not None else {}
        return _membership(s, "delete box", rows or {new_id: _load(s, [new_id])[new_id]}, new,
                           [[detection_id, source, new_id]], [new_id], now,
                           f"detection {detection_id} deleted as a false box", by)


def _membership(s, kind, rows, new: dict[int, dict], moves, created, now, text,
                by, created_detections=()) -> ReviewOutcome:
    conn = s.connection()
    if moves:
        conn.exec_driver_sql("UPDATE detections SET occurrence_id = ? WHERE id = ?",
                             [(to, d) for d, _, to in moves])
    changes = {}
    for occ_id, values in new.items():
        s.execute(update(Occurrence).where(Occurrence.id == occ_id).values(updated_at=now, **values))
        before = _snap(rows[occ_id])
        changes[str(occ_id)] = {"before": before, "after": {**before, **values}}
    refresh_summaries(s, [*new, *created])
    ids = sorted(set(new) | set(created))
    return _record(s, kind, rows, ids, {"occurrences": changes, "detections": moves,
                                        "created": list(created),
                                        "created_detections": list(created_detections)},
                   text, now, tuple(created), by)


def refresh_summaries(s, occurrence_ids: Iterable[int]) -> None:
    """Detections, first / last sight and best detection of occurrences whose members
    changed (the vote stays the machine's until the night is tracked again)."""
    for occ_id in sorted(set(occurrence_ids)):
        rows = s.execute(select(Detection.id, Detection.image_id, Image.captured_at,
                                Detection.score)
                         .join(Image, Image.id == Detection.image_id)
                         .where(Detection.occurrence_id == occ_id)
                         .order_by(Image.captured_at, Image.id, Detection.id)).all()
        best_now = s.execute(select(Occurrence.best_detection_id)
                             .where(Occurrence.id == occ_id)).scalar()
        if not rows:
            values = dict(n_detections=0, best_detection_id=None)
        else:
            members = {r[0] for r in rows}
            best = best_now if best_now in members else max(rows, key=lambda r: r[3])[0]
            values = dict(n_detections=len(rows), first_image_id=rows[0][1],
                          last_image_id=rows[-1][1], first_seen=rows[0][2], last_seen=rows[-1][2],
                          best_detection_id=best)
        s.execute(update(Occurrence).where(Occurrence.id == occ_id).values(**values))


# ---- undo -----------------------------------------------------------------------------------
def undo(db: Database, *, night_id: int | None = None,
         action_id: int | None = None) -> ReviewOutcome:
    """Take back the latest review action (of a night, or the one named): every occurrence
    gets its fields back, every moved detection goes back where it was, occurrences the
    action created and morphospecies nobody else uses go."""
    with db.write_session() as s:
        # a split along a new night boundary (db.night_regroup) is a record, not a step to
        # take back: its parts lie in two nights now
        q = select(ReviewAction).where(ReviewAction.undone.is_(False),
                                       ReviewAction.kind != "regroup")
        if night_id is not None:
            q = q.where(ReviewAction.night_id == night_id)
        latest = s.execute(q.order_by(ReviewAction.id.desc()).limit(1)).scalars().first()
        if action_id is not None:
            if latest is None or latest.id != action_id:
                raise UserInputError(f"Review action {action_id} is not the latest one not yet "
                                     "undone; undo the later ones first.")
        if latest is None:
            raise UserInputError("Nothing to undo.")
        ch = latest.changes or {}
        conn = s.connection()
        moves = ch.get("detections") or []
        if moves:  # (where the occurrence it came from is gone, it waits to be tracked again)
            conn.exec_driver_sql(
                "UPDATE detections SET occurrence_id = (SELECT id FROM occurrences WHERE id = ?) "
                "WHERE id = ? AND occurrence_id IS ?",
                [(frm, d, to) for d, frm, to in moves])
        touched = []
        for occ_id, change in (ch.get("occurrences") or {}).items():
            values = _from_json(change["before"])
            conn.execute(_decision_update(), {"occ_id": int(occ_id), **values})
            touched.append(int(occ_id))
        created = [int(i) for i in ch.get("created") or []]
        drawn = [int(i) for i in ch.get("created_detections") or []]
        if drawn:  # boxes a person drew: gone again
            s.execute(delete(Detection).where(Detection.id.in_(drawn),
                                              Detection.detector == HUMAN_DETECTOR))
        if moves or created or drawn:  # a label decision left every occurrence's frames be
            refresh_summaries(s, touched)
        for occ_id in created:
            if s.execute(select(Detection.id).where(Detection.occurrence_id == occ_id)).first() is None:
                s.execute(delete(Occurrence).where(Occurrence.id == occ_id))
        for name in ch.get("created_morphospecies") or []:
            used = s.execute(select(Occurrence.id).where(Occurrence.review_label == name)).first()
            if used is None:
                s.execute(delete(Morphospecies).where(Morphospecies.name == name))
        # a person's other decisions keep an occurrence pinned
        if touched:
            s.execute(update(Occurrence).where(
                Occurrence.id.in_(touched),
                or_(Occurrence.fixture_reviewed.is_(True), Occurrence.review_state.is_not(None),
                    Occurrence.merged_into.is_not(None), Occurrence.created_by == "human"))
                .values(pinned=True))
        carries = [int(i) for i in ch.get("carries") or []]
        if carries:  # a carry taken back is not carried again (db.review_carry)
            s.execute(update(ReviewCarry).where(ReviewCarry.id.in_(carries))
                      .values(state="undone"))
        latest.undone = True
        return ReviewOutcome(latest.id, latest.kind, tuple(sorted(set(touched))),
                             (latest.night_id,) if latest.night_id is not None else (),
                             f"Undone: {latest.summary}", tuple(created))


# ---- helpers --------------------------------------------------------------------------------
def clean_label(label: str) -> str:
    text = " ".join(str(label or "").split())
    if not text:
        raise UserInputError("A label cannot be empty.")
    if len(text) > _MAX_LABEL:
        raise UserInputError(f"A label can have at most {_MAX_LABEL} characters.")
    if any(not c.isprintable() for c in text):
        raise UserInputError("A label cannot contain control characters.")
    return text


def _ids(ids: Iterable[int]) -> list[int]:
    out = sorted({int(i) for i in ids})
    if not out:
        raise UserInputError("No occurrence given.")
    return out


# Statements every action runs, built once and executed on the session's connection (Core):
# a person makes several decisions a second and this Python runs on the saving thread, holding
# the GIL the window needs; building and ORM-executing them cost more than SQLite running them.
@functools.cache
def _decision_update():
    """UPDATE of one occurrence (``occ_id``); the SET clause is each call's other parameters."""
    table = Occurrence.__table__
    return update(table).where(table.c.id == bindparam("occ_id"))


@functools.cache
def _read_statement():
    return select(*_READ).where(Occurrence.id.in_(bindparam("ids", expanding=True)))


@functools.cache
def _action_insert():
    table = ReviewAction.__table__
    return insert(table).returning(table.c.id)


def _load(s, ids: Sequence[int]) -> dict:
    rows = {}
    conn = s.connection()
    for part in [list(ids)[i:i + _CHUNK] for i in range(0, len(ids), _CHUNK)]:
        rows.update({r.id: r for r in conn.execute(_read_statement(), {"ids": part})})
    missing = [i for i in ids if i not in rows]
    if missing:
        raise UserInputError(f"Occurrence {missing[0]} is not in the catalogue "
                             "(tracking may have rebuilt it; reload the night).")
    return rows


def _same_night(rows) -> None:
    scopes = {(r.pipeline_id, r.night_id) for r in rows.values()}
    if len(scopes) > 1:
        raise UserInputError("Only occurrences of the same night (and model configuration) "
                             "can be merged.")


def _members(s, occ_id: int) -> list[int]:
    return list(s.execute(select(Detection.id).where(Detection.occurrence_id == occ_id)
                          .order_by(Detection.id)).scalars())


def _after(when, cut) -> bool:
    return when is not None and cut is not None and when >= cut


def _record(s, kind, rows, ids, changes, text, now, created=(), by=None) -> ReviewOutcome:
    nights = sorted({rows[i].night_id for i in rows if rows[i].night_id is not None})
    pipelines = {rows[i].pipeline_id for i in rows}
    action_id = s.connection().execute(_action_insert(), dict(
        kind=kind, pipeline_id=next(iter(pipelines)) if len(pipelines) == 1 else None,
        night_id=nights[0] if len(nights) == 1 else None, summary=text, changes=changes,
        by=by, at=now, undone=False)).scalar_one()
    return ReviewOutcome(action_id, kind, tuple(ids), tuple(nights), text, tuple(created))


def _snap(row) -> dict:
    return _jsonable({f: getattr(row, f) for f in _REVIEW_FIELDS})


def _jsonable(values: dict) -> dict:
    return {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in values.items()}


def _from_json(values: dict) -> dict:
    out = dict(values)
    if isinstance(out.get("identified_at"), str):
        out["identified_at"] = dt.datetime.fromisoformat(out["identified_at"])
    for key in ("pinned", "fixture", "fixture_reviewed"):
        if key in out and out[key] is not None:
            out[key] = bool(out[key])
    return out


def _utc(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).replace(tzinfo=None)


# what db.review_carry writes with (one log, one undo)
load_rows, record_action, snapshot, jsonable, utc = _load, _record, _snap, _jsonable, _utc
