"""Tracking one night, and several nights of one trap with their fixtures.

``track_night`` is deterministic (same input -> same output, whatever the input order) and
runs in time proportional to the night's candidate pairs, so re-running it whenever new
images of the night are processed is cheap. Pinned (human-reviewed) occurrences are kept as
they are; the machine re-tracks everything else around them and may append machine tracks
before or after one, with the strict re-link gates (``TrackingParams.extend_pinned``).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trapgui.core.errors import UserInputError
from trapgui.core.jobs import Emit, JobControl, Progress, safe_emit
from trapgui.tracking.arrays import NightArrays, build_arrays
from trapgui.tracking.calibration import reference_distance
from trapgui.tracking.fixtures import flag_fixtures, night_candidates
from trapgui.tracking.linker import link_consecutive
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.relink import Group, relink
from trapgui.tracking.summary import best_detections, choose_label, votes_by_group
from trapgui.tracking.types import (NightDetection, NightImage, NightTracks, Occurrence,
                                    PinnedOccurrence, TrackingStats)


def track_night(images: Sequence[NightImage], detections: Sequence[NightDetection],
                params: TrackingParams | None = None,
                pinned: Sequence[PinnedOccurrence] = ()) -> NightTracks:
    """Link one night's detections into occurrences. Fixture flags are not set here (they
    need other nights): see ``flag_fixtures`` / ``apply_fixture_flags`` / ``track_nights``."""
    p = params or TrackingParams()
    started = time.perf_counter()
    arr = build_arrays(images, detections)
    index_of = {int(d): i for i, d in enumerate(arr.ids)}
    excluded = np.zeros(arr.n, dtype=bool)
    pinned_groups: list[Group] = []
    pinned_sets: dict[int, set[int]] = {}
    pinned_fixture: dict[int | None, bool | None] = {}
    for occ in sorted(pinned, key=lambda o: o.key):
        if occ.key in pinned_sets:
            raise UserInputError(f"Pinned occurrence {occ.key} is listed twice.")
        missing = [d for d in occ.detection_ids if d not in index_of]
        if missing:
            raise UserInputError(f"Pinned occurrence {occ.key} holds detection {missing[0]}, which "
                                 "is not among this night's detections.")
        idx = np.array(sorted(index_of[d] for d in set(occ.detection_ids)), dtype=np.int64)
        if len(idx) == 0:
            continue
        if excluded[idx].any():
            other = next(k for k, s in pinned_sets.items() if s & set(occ.detection_ids))
            raise UserInputError(f"A detection belongs to two pinned occurrences ({other} and "
                                 f"{occ.key}).")
        excluded[idx] = True
        pinned_sets[occ.key] = set(occ.detection_ids)
        pinned_fixture[occ.key] = occ.fixture
        pinned_groups.append(Group(idx, occ.key))

    reference = reference_distance(arr)
    track_of, links = link_consecutive(arr, p, reference, excluded)
    groups = _machine_groups(track_of) + pinned_groups
    joins = extended = 0
    if p.relink:
        groups, joins, extended = relink(arr, p, reference, groups)
    groups = [Group(np.sort(g.dets), g.pinned_key) for g in groups]
    groups.sort(key=lambda g: int(g.dets[0]))  # capture order of first detection
    keys = [int(arr.ids[g.dets[0]]) for g in groups]  # unique: a detection is in one group
    occurrences = _occurrences(arr, groups, keys, p, pinned_sets, pinned_fixture)
    candidates = night_candidates(arr, groups, keys, p, reference, pinned_fixture)
    occurrence_of = {int(arr.ids[d]): i for i, g in enumerate(groups) for d in g.dets}
    stats = TrackingStats(arr.n, len(arr.images), links, joins, extended, reference,
                          time.perf_counter() - started)
    return NightTracks(occurrences, occurrence_of, tuple(candidates), stats)


def _machine_groups(track_of: np.ndarray) -> list[Group]:
    idx = np.flatnonzero(track_of >= 0)
    if len(idx) == 0:
        return []
    order = idx[np.argsort(track_of[idx], kind="stable")]
    bounds = np.flatnonzero(np.diff(track_of[order])) + 1
    return [Group(part) for part in np.split(order, bounds)]


def _occurrences(arr: NightArrays, groups: list[Group], keys: list[int], p: TrackingParams,
                 pinned_sets: Mapping[int, set[int]],
                 pinned_fixture: Mapping[int | None, bool | None]) -> tuple[Occurrence, ...]:
    if not groups:
        return ()
    order = np.concatenate([g.dets for g in groups])
    lengths = np.array([len(g.dets) for g in groups])
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    group_of = np.repeat(np.arange(len(groups)), lengths)
    votes = votes_by_group([arr.detections[i] for i in order], group_of.tolist(), len(groups))
    best = arr.ids[best_detections(arr, order, starts, p)].tolist()
    ids = arr.ids.tolist()
    image_ids = [im.image_id for im in arr.images]
    index = arr.image_index.tolist()
    out = []
    for g, key, v, b in zip(groups, keys, votes, best):
        dets = g.dets.tolist()
        det_ids = tuple(ids[i] for i in dets)
        chosen = choose_label(v, p.label_min_support)
        first, last = arr.images[index[dets[0]]], arr.images[index[dets[-1]]]
        human_fixture = bool(g.pinned and pinned_fixture.get(g.pinned_key))
        out.append(Occurrence(
            key=key, detection_ids=det_ids, image_ids=tuple(image_ids[index[i]] for i in dets),
            first_image_id=first.image_id, last_image_id=last.image_id,
            first_seen=first.captured, last_seen=last.captured, best_detection_id=b,
            votes=v, label=chosen.label if chosen else None,
            label_rank=chosen.rank if chosen else None,
            label_score=chosen.score if chosen else None,
            pinned_key=g.pinned_key,
            added_detection_ids=(tuple(d for d in det_ids if d not in pinned_sets[g.pinned_key])
                                 if g.pinned else ()),
            fixture=human_fixture,
            fixture_reason="Marked as a fixture by a person." if human_fixture else None))
    return tuple(out)


def apply_fixture_flags(tracks: NightTracks, flags: Mapping[int, str]) -> NightTracks:
    """The night's occurrences with ``fixture``/``fixture_reason`` set from ``flags``
    (occurrence key -> reason, one night's part of ``flag_fixtures``). A pinned occurrence
    keeps a person's decision."""
    out = []
    for occ in tracks.occurrences:
        if occ.pinned and (occ.fixture or occ.key not in flags):
            out.append(occ)
            continue
        reason = flags.get(occ.key)
        out.append(dataclasses.replace(occ, fixture=reason is not None, fixture_reason=reason))
    return dataclasses.replace(tracks, occurrences=tuple(out))


@dataclass(frozen=True, slots=True)
class NightInput:
    """One night of a trap for ``track_nights``."""

    key: Hashable  # the caller's night id
    label: str  # how the night is named in reasons ("2022-06-21")
    images: Sequence[NightImage]
    detections: Sequence[NightDetection]
    pinned: Sequence[PinnedOccurrence] = ()


def track_nights(nights: Sequence[NightInput], params: TrackingParams | None = None,
                 emit: Emit | None = None, control: JobControl | None = None) -> dict[Hashable, NightTracks]:
    """Every night of one trap, then fixtures across them. Job-shaped: Progress after each
    night; a cancel stops between nights (``control.raise_if_cancelled``)."""
    p = params or TrackingParams()
    emit = safe_emit(emit)
    results: dict[Hashable, NightTracks] = {}
    for done, night in enumerate(nights):
        if control is not None:
            control.wait_while_paused()
            control.raise_if_cancelled("Tracking was cancelled.")
        results[night.key] = track_night(night.images, night.detections, p, night.pinned)
        emit(Progress(done + 1, len(nights), unit="nights", message=f"Tracked night {night.label}"))
    flags = flag_fixtures({k: r.fixture_candidates for k, r in results.items()}, p,
                          {n.key: n.label for n in nights})
    return {k: apply_fixture_flags(r, flags.get(k, {})) for k, r in results.items()}
