"""Tracking as a job (``core.jobs`` shape): the catalogue's detections -> occurrences, night by
night, where the catalogue is.

When: at the end of every run of the engine (local queue, remote tasks, a cluster: the same
call) for the nights the run touched and any night with detections that belong to no
occurrence, once the night has no pending or claimed job of the pipeline left; and on demand
(``trapgui track``, the window). Each night is one transaction (``db.occurrence_store``): read,
track (``trapgui.tracking.track_night``, pinned occurrences kept), flag fixtures against the
stored evidence of the trap's other nights (``flag_fixtures``), write this night's
occurrences and the other nights' changed flags, then carry the decisions a person made in
the night's other model configurations onto this one's occurrences
(``pipeline.decision_carry``). A crash or an exception before the commit
leaves the night's previous occurrences untouched; a cancel stops between nights.

Cross-night fixtures cost no re-tracking: each tracked night stores its candidates (still,
all-night tracks: median box, presence, mean embedding) on their occurrences, so flagging a
new night against 100 others reads 100 nights' few candidate rows, and the other nights'
flags are updated in the same transaction.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from trapgui.core.errors import TrapguiError, UserInputError
from trapgui.core.jobs import Emit, JobControl, LogLine, Progress, safe_emit
from trapgui.core.tracking_params import TrackingParams
from trapgui.db import occurrence_store as store
from trapgui.pipeline.decision_carry import carry_into_night
from trapgui.tracking import (FixtureCandidate, NightDetection, NightImage, NightTracks,
                              PinnedOccurrence, apply_fixture_flags, decode_embedding,
                              flag_fixtures, track_night)


@dataclass(frozen=True, slots=True)
class NightTracked:
    night_id: int
    deployment_id: int
    date: str  # ISO date, for messages
    detections: int
    occurrences: int
    fixtures: int
    pinned: int
    other_flags_changed: int  # fixture flags of the trap's other nights this night changed
    track_s: float  # the tracker alone
    total_s: float  # reads, tracker and writes
    carried: int = 0  # decisions of other configurations of the night carried onto this one's
    to_check: int = 0  # decisions that could not be carried one-to-one (need a look)


@dataclass(frozen=True, slots=True)
class TrackingSummary:
    nights: tuple[NightTracked, ...] = ()
    problems: tuple[str, ...] = ()  # one sentence per night that could not be tracked
    elapsed_s: float = 0.0
    cancelled: bool = False

    @property
    def occurrences(self) -> int:
        return sum(n.occurrences for n in self.nights)

    @property
    def fixtures(self) -> int:
        return sum(n.fixtures for n in self.nights)

    @property
    def individuals(self) -> int:
        """Occurrences that are not fixtures (at any threshold: the counts apply theirs)."""
        return self.occurrences - self.fixtures

    @property
    def detections(self) -> int:
        return sum(n.detections for n in self.nights)

    @property
    def carried(self) -> int:
        return sum(n.carried for n in self.nights)

    @property
    def to_check(self) -> int:
        return sum(n.to_check for n in self.nights)

    def describe(self) -> str:
        if not self.nights:
            return "No night needed tracking."
        nights = f"{len(self.nights)} night{'s' if len(self.nights) != 1 else ''}"
        text = (f"Tracked {nights}: {self.detections} detections -> {self.occurrences} "
                f"occurrences ({self.fixtures} fixtures) in {self.elapsed_s:.1f} s.")
        if self.carried or self.to_check:
            text += (f" {self.carried} decision{'s' if self.carried != 1 else ''} of a person "
                     "carried from another model configuration")
            if self.to_check:
                text += (f"; {self.to_check} could not be carried and need a look "
                         "(`trapgui review list --needs-check`)")
            text += "."
        return text


def tracking_job(db, pipeline_id: int, night_ids: Sequence[int],
                 params: TrackingParams | None = None) -> Callable[[Emit, JobControl], TrackingSummary]:
    """A ``core.jobs`` job that tracks these nights (Progress per night)."""
    return lambda emit, control: track_catalogue_nights(db, pipeline_id, night_ids, params,
                                                        emit, control)


def track_catalogue_nights(db, pipeline_id: int, night_ids: Iterable[int],
                           params: TrackingParams | None = None, emit: Emit | None = None,
                           control: JobControl | None = None) -> TrackingSummary:
    """Track each night (in order of trap and date), one transaction each. A night that
    cannot be tracked (bad stored data) is reported and skipped; the others go on."""
    p = params or TrackingParams()
    emit = safe_emit(emit)
    started = time.perf_counter()
    with db.session() as s:
        dates = store.night_dates(s, night_ids)
    order = sorted(dates, key=lambda n: (dates[n], n))
    done: list[NightTracked] = []
    problems: list[str] = []
    cancelled = False
    for k, night_id in enumerate(order):
        if control is not None:
            control.wait_while_paused()
            if control.cancelled:
                cancelled = True
                break
        try:
            done.append(track_one_night(db, pipeline_id, night_id, p))
        except TrapguiError as exc:
            problems.append(f"Night {dates[night_id]:%Y-%m-%d} was not tracked: {exc}")
            emit(LogLine("warning", problems[-1]))
        emit(Progress(k + 1, len(order), unit="nights", rate=0.0,
                      message=f"Tracking night {dates[night_id]:%Y-%m-%d}"))
    if len(done) > 1:  # a later night's evidence may have flagged an earlier night's fixtures
        fixtures = store.fixture_counts(db, pipeline_id, [n.night_id for n in done])
        done = [dataclasses.replace(n, fixtures=fixtures.get(n.night_id, 0)) for n in done]
    return TrackingSummary(tuple(done), tuple(problems), time.perf_counter() - started, cancelled)


def track_one_night(db, pipeline_id: int, night_id: int, params: TrackingParams) -> NightTracked:
    """Read, track, flag and write one night in one write transaction (writers wait; readers
    see the old occurrences until the commit)."""
    with db.write_session() as s:
        return track_night_in(s, pipeline_id, night_id, params)


def track_night_in(s, pipeline_id: int, night_id: int, params: TrackingParams) -> NightTracked:
    """:func:`track_one_night` in the caller's write transaction (the night regroup tracks
    a trap's changed nights in the transaction that moved its images)."""
    t0 = time.perf_counter()
    data = store.read_night(s, pipeline_id, night_id)
    images = [NightImage(i.image_id, i.captured, i.width, i.height) for i in data.images]
    detections = [NightDetection(d.detection_id, d.image_id, d.box, d.score, d.labels,
                                 decode_embedding(d.embedding), d.sharpness)
                  for d in data.detections]
    pinned = [PinnedOccurrence(p.occurrence_id, p.detection_ids, p.fixture)
              for p in data.pinned if p.detection_ids]
    t1 = time.perf_counter()
    result = track_night(images, detections, params, pinned)
    track_s = time.perf_counter() - t1
    others = store.stored_candidates(s, pipeline_id, data.deployment_id, exclude_night=night_id)
    result, changes = _flag(s, result, night_id, data.date, others, params)
    candidates = {c.key: c for c in result.fixture_candidates}
    current = {d.detection_id: d.occurrence_id for d in data.detections}
    pinned_ids = {p.occurrence_id for p in data.pinned}
    reused: set[int] = set()
    writes = []
    for occ in result.occurrences:
        row_id = occ.pinned_key
        if row_id is None:  # continue the row its first detection is in (stable ids)
            was = current.get(occ.key)
            if was is not None and was not in pinned_ids and was not in reused:
                row_id = was
                reused.add(was)
        writes.append(_write_row(occ, candidates.get(occ.key), row_id))
    stats = store.replace_night(s, pipeline_id, data.deployment_id, night_id, writes, changes,
                                current)
    # the same transaction: a person's work in the night's other configurations follows
    carry = carry_into_night(s, pipeline_id, night_id)
    return NightTracked(night_id, data.deployment_id, data.date.isoformat(), len(detections),
                        len(result.occurrences), sum(o.fixture for o in result.occurrences),
                        sum(o.pinned for o in result.occurrences), stats.other_flags_changed,
                        track_s, time.perf_counter() - t0, carry.carried, carry.checks)


def _flag(session, result: NightTracks, night_id: int, date, others, params):
    """This night's fixture flags against the other nights' stored evidence, and the changes
    of those nights' flags that this night's evidence brings."""
    by_night: dict[int, list[FixtureCandidate]] = {night_id: list(result.fixture_candidates)}
    stored = {}
    for c in others:
        cand = _candidate(c)
        if cand is not None:
            by_night.setdefault(c.night_id, []).append(cand)
            stored[c.occurrence_id] = c
    labels = {n: d.isoformat() for n, d in store.night_dates(session, by_night).items()}
    labels[night_id] = date.isoformat()
    flags = flag_fixtures(by_night, params, labels)
    changes = []
    for other_night, cands in by_night.items():
        if other_night == night_id:
            continue
        for cand in cands:
            row = stored[cand.key]
            reason = flags[other_night].get(cand.key)
            # written only when the flag or its reason (the nights it names) changed: a
            # season's nights hold thousands of fixtures, and most stay as they are
            if not row.fixture_reviewed and (row.fixture != (reason is not None)
                                             or (reason is not None and reason != row.fixture_reason)):
                changes.append(store.FlagChange(cand.key, reason is not None, reason))
    return apply_fixture_flags(result, flags[night_id]), changes


def _candidate(c: store.StoredCandidate) -> FixtureCandidate | None:
    data = c.candidate
    try:
        box = tuple(float(v) for v in data["box"])
        emb = data.get("embedding")
        return FixtureCandidate(
            c.occurrence_id, box, float(data["presence"]), int(data["n_images"]),
            np.asarray(emb, dtype=np.float32) if emb else None,
            float(data["reference_distance"]) if data.get("reference_distance") else None,
            c.pinned and c.fixture_reviewed and c.fixture)
    except (KeyError, TypeError, ValueError):
        return None  # damaged evidence of one occurrence: that place is judged without it


def _write_row(occ, candidate: FixtureCandidate | None, row_id: int | None) -> store.OccurrenceWrite:
    return store.OccurrenceWrite(
        occurrence_id=row_id, detection_ids=occ.detection_ids,
        first_image_id=occ.first_image_id, last_image_id=occ.last_image_id,
        first_seen=occ.first_seen, last_seen=occ.last_seen,
        best_detection_id=occ.best_detection_id, label=occ.label, label_rank=occ.label_rank,
        label_score=occ.label_score, fixture=occ.fixture, fixture_reason=occ.fixture_reason,
        fixture_candidate=None if candidate is None else {
            "box": [round(v, 6) for v in candidate.box], "presence": round(candidate.presence, 4),
            "n_images": candidate.n_images,
            "reference_distance": candidate.reference_distance,
            "embedding": None if candidate.embedding is None
            else [round(float(v), 4) for v in candidate.embedding]})


# ---- when -----------------------------------------------------------------------------------
def nights_to_track(db, pipeline_id: int, run_id: int | None = None,
                    deployment_ids: Sequence[int] | None = None) -> list[int]:
    """Nights a run leaves needing tracking: those it touched and those with detections in
    no occurrence, once no job of theirs is pending or claimed."""
    nights = set(store.nights_with_untracked(db, pipeline_id, deployment_ids))
    if run_id is not None:
        nights.update(store.nights_touched_by_run(db, run_id))
    return store.nights_complete(db, pipeline_id, nights)


def track_after_run(db, pipeline_id: int, run_id: int | None, params: TrackingParams | None,
                    emit: Emit | None = None, control: JobControl | None = None
                    ) -> TrackingSummary:
    """What every engine run calls when its devices have stopped. Never raises for a night's
    trouble (reported as a warning); the run's results are already safe."""
    emit = safe_emit(emit)
    nights = nights_to_track(db, pipeline_id, run_id)
    if not nights:
        return TrackingSummary()
    summary = track_catalogue_nights(db, pipeline_id, nights, params, None, control)
    for problem in summary.problems:
        emit(LogLine("warning", problem))
    emit(LogLine("info", summary.describe()))
    return summary


def set_fixture_decision(db, occurrence_id: int, fixture: bool | None,
                         params: TrackingParams | None = None) -> TrackingSummary:
    """A person's fixture decision, stored so re-tracking keeps it, then the night tracked
    again so the trap's other nights weigh the new evidence."""
    night_id, pipeline_id = store.set_fixture_decision(db, occurrence_id, fixture)
    if night_id is None:
        raise UserInputError("This occurrence belongs to no night.")
    return track_catalogue_nights(db, pipeline_id, [night_id], params)
