"""The night cut-off hour changed: regroup every trap whose nights were made with another hour
(a ``core.jobs`` job), keeping every result.

Per trap, one write transaction: images to their new nights, occurrences after their
detections, pinned ones split along the new boundary with their decision (``db.night_regroup``),
then the nights whose detections changed tracked again (``pipeline.tracking_job``). Nothing is
detected or classified again. A kill leaves each trap either as it was (its stored hour still
the old one) or done; the next start (the window, ``trapgui scan``/``process``/``nights
--regroup``) finds the traps still differing and finishes the job.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from sqlalchemy import select

from trapgui.core.errors import TrapguiError
from trapgui.core.jobs import Emit, JobControl, LogLine, Progress, safe_emit
from trapgui.core.nights import check_cutoff_hour
from trapgui.core.safe_text import printable
from trapgui.core.tracking_params import TrackingParams
from trapgui.db.night_regroup import regroup_trap, traps_to_regroup
from trapgui.db.tables import Deployment
from trapgui.pipeline.tracking_job import track_night_in


@dataclass(frozen=True, slots=True)
class TrapRegrouped:
    deployment_id: int
    name: str
    old_hour: int
    nights_before: int
    nights_after: int
    images_moved: int
    decisions_split: int
    nights_tracked: int


@dataclass(frozen=True, slots=True)
class RegroupSummary:
    hour: int
    traps: tuple[TrapRegrouped, ...] = ()
    remaining: int = 0  # traps still on another hour (cancelled before them)
    problems: tuple[str, ...] = ()
    elapsed_s: float = 0.0

    @property
    def nights_before(self) -> int:
        return sum(t.nights_before for t in self.traps)

    @property
    def nights_after(self) -> int:
        return sum(t.nights_after for t in self.traps)

    @property
    def decisions_split(self) -> int:
        return sum(t.decisions_split for t in self.traps)

    def describe(self) -> str:
        """One sentence for the status bar and the CLI."""
        hour = f"{self.hour:02d}:00"
        if not self.traps and not self.remaining:
            return f"Nights start at {hour} in every trap."
        n = len(self.traps)
        text = (f"Nights now start at {hour}: {n} trap{'s' * (n != 1)} regrouped, "
                f"{self.nights_before} night{'s' * (self.nights_before != 1)} → "
                f"{self.nights_after}; results kept; individuals counted again")
        if self.decisions_split:
            k = self.decisions_split
            text += (f"; {k} reviewed individual{'s' * (k != 1)} split at the new boundary, "
                     "each part keeping the decision (see the review history)")
        if self.remaining:
            text += (f"; stopped before {self.remaining} more trap"
                     f"{'s' * (self.remaining != 1)} (they are regrouped at the next start)")
        text += "."
        if self.problems:
            text += " " + " ".join(self.problems)
        return text


def pending_traps(db, cutoff_hour: int, deployment_ids: Sequence[int] | None = None) -> list[str]:
    """Names of the traps whose nights were made with another hour than ``cutoff_hour``."""
    with db.session() as s:
        return [r[1] for r in traps_to_regroup(
            s, cutoff_hour, None if deployment_ids is None else list(deployment_ids))]


def regroup_job(db, cutoff_hour: int, deployment_ids: Sequence[int] | None = None,
                params: TrackingParams | None = None
                ) -> Callable[[Emit, JobControl], RegroupSummary]:
    """A ``core.jobs`` job moving the traps (all, or ``deployment_ids``) to ``cutoff_hour``."""
    check_cutoff_hour(cutoff_hour)
    return lambda emit, control: regroup_nights(db, cutoff_hour, deployment_ids, params,
                                                emit, control)


def regroup_nights(db, cutoff_hour: int, deployment_ids: Sequence[int] | None = None,
                   params: TrackingParams | None = None, emit: Emit | None = None,
                   control: JobControl | None = None) -> RegroupSummary:
    emit = safe_emit(emit)
    p = params or TrackingParams()
    started = time.perf_counter()
    with db.session() as s:
        todo = traps_to_regroup(s, cutoff_hour,
                                None if deployment_ids is None else list(deployment_ids))
    done: list[TrapRegrouped] = []
    problems: list[str] = []
    for k, (dep_id, name, _) in enumerate(todo):
        if control is not None:
            control.wait_while_paused()
            if control.cancelled:
                break
        emit(Progress(k, len(todo), unit="traps",
                      message=f"Regrouping the nights of {printable(name)}"))
        done.append(_one_trap(db, dep_id, cutoff_hour, p, problems, emit))
    emit(Progress(len(done), len(todo), unit="traps", message="Nights regrouped"))
    return RegroupSummary(cutoff_hour, tuple(done), len(todo) - len(done), tuple(problems),
                          time.perf_counter() - started)


def _one_trap(db, dep_id: int, hour: int, params: TrackingParams, problems: list[str],
              emit: Emit) -> TrapRegrouped:
    """One transaction: the move and the tracking of the nights it changed."""
    tracked = 0
    with db.write_session() as s:
        # another process may have done it meanwhile
        if s.execute(select(Deployment.night_cutoff_hour).where(
                Deployment.id == dep_id)).scalar_one() == hour:
            name = s.execute(select(Deployment.name).where(Deployment.id == dep_id)).scalar_one()
            return TrapRegrouped(dep_id, name, hour, 0, 0, 0, 0, 0)
        moved = regroup_trap(s, dep_id, hour)
        for pipeline_id, night_id in moved.to_track:
            try:
                with s.begin_nested():
                    track_night_in(s, pipeline_id, night_id, params)
                tracked += 1
            except TrapguiError as exc:  # that night waits for the next tracking
                problems.append(f"A night of {printable(moved.name)} was not tracked again: {exc}")
                emit(LogLine("warning", problems[-1]))
    return TrapRegrouped(dep_id, moved.name, moved.old_hour, moved.nights_before,
                         moved.nights_after, moved.images_moved, moved.decisions_split, tracked)
