"""Occurrences (tracked individuals) in the catalogue: what tracking reads and writes.

All SQL of tracking lives here; the tracker itself (``trapgui.tracking``) never sees the
database, and this module never sees the tracker (plain rows both ways). Rules:

- A night is tracked from the images whose job of the pipeline is done (an image still
  pending, failed or unreadable is not an image "where nothing was seen").
- :func:`replace_night` is one transaction: the night's machine-made occurrences of the
  pipeline are replaced, pinned ones (a person reviewed them) only get the machine fields
  (vote, best crop, first/last seen, detections the machine appended), every detection of
  the night gets its ``occurrence_id``, and the fixture flags of the trap's other nights are
  updated from the same evidence. Killed or failing before the commit, the previous
  occurrences are left exactly as they were.
- A person's fixture decision (:func:`set_fixture_decision`) pins the occurrence with
  ``fixture_reviewed``: re-tracking keeps both its detections and the decision.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from sqlalchemy import bindparam, delete, exists, func, insert, select, update

from trapgui.core.errors import UserInputError
from trapgui.core.file_names import disk_path
from trapgui.core.types import JobState
from trapgui.db.database import Database
from trapgui.db.tables import Deployment, Detection, Image, Job, Night, Occurrence

_CHUNK = 900  # SQLite's default limit is 999 host parameters per statement


# ---- what tracking reads --------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class StoredImage:
    image_id: int
    captured: dt.datetime
    width: int
    height: int


@dataclass(frozen=True, slots=True)
class StoredDetection:
    detection_id: int
    image_id: int
    box: tuple[float, float, float, float]
    score: float
    labels: dict  # rank -> [(label, score), ...] best first
    embedding: bytes | None
    sharpness: float | None
    occurrence_id: int | None = None  # where it is now (None: not tracked yet)


@dataclass(frozen=True, slots=True)
class StoredPinned:
    occurrence_id: int
    detection_ids: tuple[int, ...]
    fixture: bool | None  # the person's decision; None: they made none


@dataclass(frozen=True, slots=True)
class StoredCandidate:
    """Fixture evidence of another night (``occurrences.fixture_candidate``)."""

    night_id: int
    occurrence_id: int
    candidate: dict
    pinned: bool
    fixture_reviewed: bool
    fixture: bool
    fixture_reason: str | None = None


@dataclass(frozen=True, slots=True)
class NightData:
    night_id: int
    deployment_id: int
    date: dt.date
    images: tuple[StoredImage, ...]
    detections: tuple[StoredDetection, ...]
    pinned: tuple[StoredPinned, ...]


def read_night(session, pipeline_id: int, night_id: int) -> NightData:
    """Everything tracking needs of one night (in the caller's transaction)."""
    night = session.execute(select(Night.deployment_id, Night.date)
                            .where(Night.id == night_id)).first()
    if night is None:
        raise UserInputError(f"Night {night_id} is not in the catalogue.")
    done = select(Job.image_id).where(Job.pipeline_id == pipeline_id,
                                      Job.state == JobState.DONE.value)
    images = tuple(StoredImage(r[0], r[1], int(r[2] or 1), int(r[3] or 1)) for r in session.execute(
        select(Image.id, Image.captured_at, Image.width, Image.height)
        .where(Image.night_id == night_id, Image.captured_at.is_not(None), Image.id.in_(done))))
    conn = session.connection()
    # plain driver queries: 100,000 rows through the ORM's per-row JSON decoding cost seconds
    in_night = ("d.pipeline_id = ? AND d.image_id IN (SELECT i.id FROM images i JOIN jobs j "
                "ON j.image_id = i.id AND j.pipeline_id = ? AND j.state = ? "
                "WHERE i.night_id = ? AND i.captured_at IS NOT NULL)")
    args = (pipeline_id, pipeline_id, JobState.DONE.value, night_id)
    rows = conn.exec_driver_sql(
        "SELECT c.detection_id, c.rank, c.top_labels, c.top_scores FROM classifications c "
        f"JOIN detections d ON d.id = c.detection_id WHERE {in_night}", args).fetchall()
    # one JSON document for all of them: a parse per row would cost more than the tracking
    parsed = json.loads("[" + ",".join(f"[{r[2] or '[]'},{r[3] or '[]'}]" for r in rows) + "]")
    labels: dict[int, dict] = {}
    for (det_id, rank, _, _), (names, scores) in zip(rows, parsed):
        labels.setdefault(det_id, {})[rank] = list(zip(names, scores))
    detections = tuple(
        StoredDetection(r[0], r[1], (r[2], r[3], r[4], r[5]), r[6], labels.get(r[0], {}), r[7], r[8],
                        r[9])
        for r in conn.exec_driver_sql(
            "SELECT d.id, d.image_id, d.x1, d.y1, d.x2, d.y2, d.score, d.embedding, d.sharpness, "
            f"d.occurrence_id FROM detections d WHERE {in_night}", args))
    pinned_rows = session.execute(select(Occurrence.id, Occurrence.fixture_reviewed, Occurrence.fixture)
                                  .where(Occurrence.pipeline_id == pipeline_id,
                                         Occurrence.night_id == night_id,
                                         Occurrence.pinned.is_(True))).all()
    members: dict[int, list[int]] = {r[0]: [] for r in pinned_rows}
    if members:
        known = {d.detection_id for d in detections}
        for det_id, occ_id in session.execute(
                select(Detection.id, Detection.occurrence_id)
                .where(Detection.occurrence_id.in_(list(members)))):
            if det_id in known:  # a pinned detection of an image no longer done is left out
                members[occ_id].append(det_id)
    pinned = tuple(StoredPinned(occ_id, tuple(sorted(members[occ_id])),
                                bool(fixture) if reviewed else None)
                   for occ_id, reviewed, fixture in pinned_rows)
    return NightData(night_id, night[0], night[1], images, detections, pinned)


def stored_candidates(session, pipeline_id: int, deployment_id: int,
                      exclude_night: int | None = None) -> list[StoredCandidate]:
    """The fixture evidence of the trap's tracked nights (one row per candidate)."""
    q = (select(Occurrence.night_id, Occurrence.id, Occurrence.fixture_candidate,
                Occurrence.pinned, Occurrence.fixture_reviewed, Occurrence.fixture,
                Occurrence.fixture_reason)
         .where(Occurrence.pipeline_id == pipeline_id, Occurrence.deployment_id == deployment_id,
                Occurrence.fixture_candidate.is_not(None), Occurrence.night_id.is_not(None)))
    if exclude_night is not None:
        q = q.where(Occurrence.night_id != exclude_night)
    return [StoredCandidate(r[0], r[1], r[2], bool(r[3]), bool(r[4]), bool(r[5]), r[6])
            for r in session.execute(q.order_by(Occurrence.night_id, Occurrence.id))
            if isinstance(r[2], dict)]


def night_dates(session, night_ids: Iterable[int]) -> dict[int, dt.date]:
    ids = sorted(set(night_ids))
    out: dict[int, dt.date] = {}
    for part in _chunks(ids):
        out.update(dict(session.execute(select(Night.id, Night.date).where(Night.id.in_(part))).all()))
    return out


# ---- what tracking writes -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OccurrenceWrite:
    """One occurrence of the night as tracking made it. ``occurrence_id`` is set for a
    pinned one (its row is updated, never replaced) and for a machine one that continues an
    existing row (its first detection's occurrence: ids stay stable across re-tracking)."""

    occurrence_id: int | None
    detection_ids: tuple[int, ...]
    first_image_id: int
    last_image_id: int
    first_seen: dt.datetime
    last_seen: dt.datetime
    best_detection_id: int
    label: str | None
    label_rank: str | None
    label_score: float | None
    fixture: bool
    fixture_reason: str | None
    fixture_candidate: dict | None = None


@dataclass(frozen=True, slots=True)
class FlagChange:
    occurrence_id: int
    fixture: bool
    reason: str | None


@dataclass
class WriteStats:
    inserted: int = 0
    pinned_updated: int = 0
    deleted: int = 0
    detections: int = 0
    other_flags_changed: int = 0
    extra: dict = field(default_factory=dict)


def replace_night(session, pipeline_id: int, deployment_id: int, night_id: int,
                  occurrences: Sequence[OccurrenceWrite],
                  other_flags: Sequence[FlagChange] = (),
                  current: dict[int, int | None] | None = None) -> WriteStats:
    """In the caller's write transaction (``db.write_session()``): the night's machine-made
    occurrences of the pipeline replaced by ``occurrences`` (rows named by
    ``occurrence_id`` are updated, the others inserted, the rest deleted), pinned ones
    updated, every listed detection pointed at its occurrence (``current``: detection ->
    occurrence now, to write only the changes), and the fixture flags of other nights'
    occurrences changed as ``other_flags`` says (never a person's decision)."""
    stats = WriteStats()
    now = time.time()
    conn = session.connection()
    here = dict(session.execute(select(Occurrence.id, Occurrence.pinned).where(
        Occurrence.pipeline_id == pipeline_id, Occurrence.night_id == night_id)).all())
    machine = {i for i, pinned in here.items() if not pinned}
    pinned_here = {i for i, pinned in here.items() if pinned}
    kept = {o.occurrence_id for o in occurrences if o.occurrence_id in machine}
    gone = sorted(machine - kept)
    for part in _chunks(gone):
        stats.deleted += session.execute(delete(Occurrence).where(Occurrence.id.in_(part))).rowcount or 0
    next_id = (session.execute(select(func.max(Occurrence.id))).scalar() or 0) + 1
    rows, pinned_rows, machine_rows, assignment = [], [], [], []
    for occ in occurrences:
        values = dict(
            first_image_id=occ.first_image_id, last_image_id=occ.last_image_id,
            first_seen=occ.first_seen, last_seen=occ.last_seen,
            n_detections=len(occ.detection_ids), best_detection_id=occ.best_detection_id,
            label=occ.label, label_rank=occ.label_rank, label_score=occ.label_score,
            fixture_candidate=occ.fixture_candidate, updated_at=now)
        if occ.occurrence_id not in kept and occ.occurrence_id not in pinned_here:
            occ_id = next_id
            next_id += 1
            rows.append(dict(values, id=occ_id, pipeline_id=pipeline_id,
                             deployment_id=deployment_id, night_id=night_id,
                             fixture=occ.fixture, fixture_reason=occ.fixture_reason,
                             fixture_reviewed=False, pinned=False, created_by="machine"))
        elif occ.occurrence_id in kept:  # a machine row continued
            occ_id = occ.occurrence_id
            machine_rows.append(dict(values, b_id=occ_id, fixture=occ.fixture,
                                     fixture_reason=occ.fixture_reason))
        else:
            occ_id = occ.occurrence_id
            pinned_rows.append((occ_id, values, occ.fixture, occ.fixture_reason))
        assignment.extend((occ_id, d) for d in occ.detection_ids)
    for part in _chunks(rows, 500):
        session.execute(insert(Occurrence), part)
    if machine_rows:
        cols = [k for k in machine_rows[0] if k != "b_id"]
        conn.exec_driver_sql(
            f"UPDATE occurrences SET {', '.join(f'{c} = ?' for c in cols)} WHERE id = ?",
            [tuple(_param(r[c]) for c in cols) + (r["b_id"],) for r in machine_rows])
    for occ_id, values, fixture, reason in pinned_rows:
        session.execute(update(Occurrence).where(Occurrence.id == occ_id).values(**values))
        # the flag is the machine's to set unless a person decided it
        session.execute(update(Occurrence).where(Occurrence.id == occ_id,
                                                 Occurrence.fixture_reviewed.is_(False))
                        .values(fixture=fixture, fixture_reason=reason))
    stats.inserted, stats.pinned_updated = len(rows), len(pinned_rows)
    if current is not None:
        assignment = [(o, d) for o, d in assignment if current.get(d) != o]
    # executemany of one prepared statement: the cheapest way to set 100,000 foreign keys
    if assignment:
        conn.exec_driver_sql("UPDATE detections SET occurrence_id = ? WHERE id = ?", assignment)
    stats.detections = len(assignment)
    stats.other_flags_changed = set_flags(session, other_flags)
    return stats


def _param(value):
    """A value as the driver takes it in a plain statement (JSON and times as SQLAlchemy
    stores them)."""
    if isinstance(value, dict):
        return json.dumps(value)
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")  # SQLAlchemy's SQLite format
    if isinstance(value, bool):
        return int(value)
    return value


def set_flags(session, changes: Sequence[FlagChange]) -> int:
    """Machine fixture flags of occurrences (a person's decision is never overwritten)."""
    if not changes:
        return 0
    table = Occurrence.__table__
    statement = (update(table).where(table.c.id == bindparam("occurrence"),
                                     table.c.fixture_reviewed.is_(False))
                 .values(fixture=bindparam("flag"), fixture_reason=bindparam("why")))
    rows = [{"occurrence": c.occurrence_id, "flag": c.fixture, "why": c.reason} for c in changes]
    return session.execute(statement, rows).rowcount or 0


def set_fixture_decision(db: Database, occurrence_id: int,
                         fixture: bool | None) -> tuple[int | None, int]:
    """A person's decision: True "this is a fixture", False "this is no fixture" (it counts
    again), None "let the machine decide". The occurrence is pinned (its detections stay
    together when the night is tracked again, which keeps the decision). Returns its night and
    pipeline (the caller re-tracks the night, so the trap's other nights weigh the evidence)."""
    with db.write_session() as s:
        row = s.execute(select(Occurrence.night_id, Occurrence.pipeline_id)
                        .where(Occurrence.id == occurrence_id)).first()
        if row is None:
            raise UserInputError(f"Occurrence {occurrence_id} is not in the catalogue "
                                 "(tracking may have rebuilt it; reload the night).")
        if fixture is None:
            values = dict(fixture_reviewed=False)
        else:
            values = dict(fixture_reviewed=True, fixture=bool(fixture), pinned=True,
                          fixture_reason=("Marked as a fixture by a person." if fixture
                                          else "Marked as not a fixture by a person."))
        s.execute(update(Occurrence).where(Occurrence.id == occurrence_id)
                  .values(updated_at=time.time(), **values))
        return row[0], row[1]


# ---- which nights need tracking ------------------------------------------------------------
def nights_touched_by_run(db: Database, run_id: int) -> list[int]:
    """Dated nights with an image whose job this run finished (done or failed)."""
    with db.session() as s:
        return sorted(s.execute(select(Image.night_id).join(Job, Job.image_id == Image.id)
                                .where(Job.run_id == run_id, Image.night_id.is_not(None))
                                .distinct()).scalars())


def nights_with_untracked(db: Database, pipeline_id: int,
                          deployment_ids: Sequence[int] | None = None) -> list[int]:
    """Dated nights with detections of the pipeline that belong to no occurrence (never
    tracked, images processed again, or a run that stopped before it could track)."""
    q = (select(Image.night_id).join(Detection, Detection.image_id == Image.id)
         .where(Detection.pipeline_id == pipeline_id, Detection.occurrence_id.is_(None),
                Image.night_id.is_not(None), Image.captured_at.is_not(None)).distinct())
    if deployment_ids is not None:
        q = q.where(Image.deployment_id.in_(list(deployment_ids)))
    with db.session() as s:
        return sorted(s.execute(q).scalars())


def pipelines_with_untracked(db: Database, night_id: int) -> list[int]:
    """Configurations with detections of the night that belong to no occurrence."""
    q = (select(Detection.pipeline_id).join(Image, Image.id == Detection.image_id)
         .where(Image.night_id == night_id, Image.captured_at.is_not(None),
                Detection.occurrence_id.is_(None)).distinct())
    with db.session() as s:
        return sorted(s.execute(q).scalars())


def nights_complete(db: Database, pipeline_id: int, night_ids: Iterable[int]) -> list[int]:
    """Those of ``night_ids`` with no pending or claimed job of the pipeline left."""
    ids = sorted(set(night_ids))
    if not ids:
        return []
    busy = exists().where(Job.image_id == Image.id, Job.pipeline_id == pipeline_id,
                          Job.state.in_([JobState.PENDING.value, JobState.CLAIMED.value]))
    with db.session() as s:
        unfinished = set()
        for part in _chunks(ids):
            unfinished.update(s.execute(select(Image.night_id)
                                        .where(Image.night_id.in_(part), busy).distinct()).scalars())
    return [n for n in ids if n not in unfinished]


def fixture_counts(db: Database, pipeline_id: int, night_ids: Sequence[int]) -> dict[int, int]:
    """night -> occurrences flagged as fixtures."""
    out: dict[int, int] = {}
    with db.session() as s:
        for part in _chunks(sorted(set(night_ids))):
            out.update(dict(s.execute(
                select(Occurrence.night_id, func.count()).where(
                    Occurrence.pipeline_id == pipeline_id, Occurrence.night_id.in_(part),
                    Occurrence.fixture.is_(True)).group_by(Occurrence.night_id)).all()))
    return out


def nights_of(db: Database, deployment_ids: Sequence[int] | None = None,
              dates: Sequence[dt.date] | None = None) -> list[int]:
    """Night ids of some traps (all when None), optionally only on some dates."""
    q = select(Night.id)
    if deployment_ids is not None:
        q = q.where(Night.deployment_id.in_(list(deployment_ids)))
    if dates is not None:
        q = q.where(Night.date.in_(list(dates)))
    with db.session() as s:
        return list(s.execute(q.order_by(Night.deployment_id, Night.date)).scalars())


# ---- what the views show -------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OccurrenceRow:
    """One individual of a night, with its best crop (image file and box)."""

    id: int
    night_id: int
    deployment_id: int
    label: str | None  # the machine's vote (db.final_labels decides the final label)
    label_rank: str | None
    label_score: float | None
    first_seen: dt.datetime | None
    last_seen: dt.datetime | None
    n_detections: int
    best_score: float | None  # highest detector score of its detections
    fixture: bool
    fixture_reason: str | None
    fixture_reviewed: bool
    pinned: bool
    best_detection_id: int | None
    best_image_id: int | None
    best_image_path: str | None
    best_box: tuple[float, float, float, float] | None


@dataclass(frozen=True, slots=True)
class OccurrenceDetectionRow:
    """One detection of an occurrence (frame order)."""

    detection_id: int
    image_id: int
    captured: dt.datetime | None
    image_path: str
    box: tuple[float, float, float, float]
    score: float
    label: str | None
    label_score: float | None
    is_best: bool


def night_occurrences(db: Database, pipeline_id: int, night_id: int, *,
                      min_score: float = 0.0, include_fixtures: bool = True) -> list[OccurrenceRow]:
    """The night's occurrences in order of first sight; an occurrence is listed at detection
    threshold ``min_score`` when at least one of its detections scores that much (the rule of
    ``db.counts``)."""
    best_score = (select(Detection.occurrence_id.label("occ"), func.max(Detection.score).label("best"))
                  .where(Detection.occurrence_id.is_not(None), Detection.pipeline_id == pipeline_id)
                  .group_by(Detection.occurrence_id).subquery())
    q = (select(Occurrence.id, Occurrence.night_id, Occurrence.deployment_id, Occurrence.label,
                Occurrence.label_rank, Occurrence.label_score, Occurrence.first_seen,
                Occurrence.last_seen, Occurrence.n_detections, best_score.c.best,
                Occurrence.fixture, Occurrence.fixture_reason, Occurrence.fixture_reviewed,
                Occurrence.pinned, Occurrence.best_detection_id, Detection.image_id,
                Deployment.path, Image.rel_path, Detection.x1, Detection.y1, Detection.x2,
                Detection.y2)
         .join(best_score, best_score.c.occ == Occurrence.id)
         .outerjoin(Detection, Detection.id == Occurrence.best_detection_id)
         .outerjoin(Image, Image.id == Detection.image_id)
         .outerjoin(Deployment, Deployment.id == Image.deployment_id)
         .where(Occurrence.pipeline_id == pipeline_id, Occurrence.night_id == night_id,
                best_score.c.best >= min_score)
         .order_by(Occurrence.first_seen, Occurrence.id))
    if not include_fixtures:
        q = q.where(Occurrence.fixture.is_(False))
    with db.session() as s:
        rows = s.execute(q).all()
    return [OccurrenceRow(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], int(r[8] or 0), r[9],
                          bool(r[10]), r[11], bool(r[12]), bool(r[13]), r[14], r[15],
                          disk_path(r[16], r[17]) if r[16] is not None else None,
                          (r[18], r[19], r[20], r[21]) if r[18] is not None else None)
            for r in rows]


def occurrence_detections(db: Database, occurrence_id: int) -> list[OccurrenceDetectionRow]:
    """An occurrence's detections in frame order (capture time, then image and detection id)."""
    q = (select(Detection.id, Detection.image_id, Image.captured_at, Deployment.path,
                Image.rel_path, Detection.x1, Detection.y1, Detection.x2, Detection.y2,
                Detection.score, Detection.top_label, Detection.top_score,
                Occurrence.best_detection_id)
         .join(Image, Image.id == Detection.image_id)
         .join(Deployment, Deployment.id == Image.deployment_id)
         .join(Occurrence, Occurrence.id == Detection.occurrence_id)
         .where(Detection.occurrence_id == occurrence_id)
         .order_by(Image.captured_at, Image.id, Detection.id))
    with db.session() as s:
        rows = s.execute(q).all()
    return [OccurrenceDetectionRow(r[0], r[1], r[2], disk_path(r[3], r[4]), (r[5], r[6], r[7], r[8]),
                                   r[9], r[10], r[11], r[0] == r[12]) for r in rows]


def _chunks(items: Sequence, size: int = _CHUNK):
    items = list(items)
    for i in range(0, len(items), size):
        yield items[i:i + size]


__all__ = [
    "FlagChange", "NightData", "OccurrenceDetectionRow", "OccurrenceRow", "OccurrenceWrite",
    "StoredCandidate", "StoredDetection", "StoredImage", "StoredPinned", "WriteStats",
    "fixture_counts", "night_dates", "night_occurrences", "nights_complete", "nights_of", "nights_touched_by_run",
    "nights_with_untracked", "occurrence_detections", "pipelines_with_untracked", "read_night", "replace_night",
    "set_fixture_decision", "set_flags", "stored_candidates",
]
