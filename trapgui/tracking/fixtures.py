"""Fixtures: things at the same place in nearly every image of a night *and* on other nights.

Screws and rivets of the trap frame, stains, printed labels and scale bars are detected in
every image, night after night (the idea of MegaDetector's repeat-detection elimination). A
moth that rests all night is just as still within its night, which is why one night is not
enough: only the same place on other nights of the same trap makes a fixture.

Two steps, so the cross-night part can run over stored results of many nights:
``night_candidates`` (per night, from its tracks) and ``flag_fixtures`` (over the
candidates of several nights of one trap).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from trapgui.tracking.arrays import NightArrays
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.place_pairs import same_place_pairs
from trapgui.tracking.relink import Group
from trapgui.tracking.types import FixtureCandidate


def _static_groups(arr: NightArrays, groups: Sequence[Group], p: TrackingParams) -> np.ndarray:
    """Per group: do 90 % of its detections lie within ``fixture_max_motion`` box sizes of
    its (lower) median centre? Group reductions over all groups at once."""
    lengths = np.array([len(g.dets) for g in groups])
    order = np.concatenate([g.dets for g in groups])
    group = np.repeat(np.arange(len(groups)), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]

    def lower_quantile(values: np.ndarray, q: float) -> np.ndarray:
        pick = np.lexsort((values, group))
        return values[pick[starts + np.floor(q * (lengths - 1)).astype(np.int64)]]

    cx, cy = arr.centres[order, 0], arr.centres[order, 1]
    mx, my = lower_quantile(cx, 0.5), lower_quantile(cy, 0.5)
    size = lower_quantile(arr.sizes[order], 0.5)
    spread = np.hypot(cx - mx[group], cy - my[group]) / size[group]
    return lower_quantile(spread, 0.9) <= p.fixture_max_motion


def night_candidates(arr: NightArrays, groups: Sequence[Group], keys: Sequence[int],
                     p: TrackingParams, reference: float | None,
                     pinned_fixture: Mapping[int, bool | None]) -> list[FixtureCandidate]:
    """Static tracks that, alone or together with other static tracks at the same place
    (a fixture whose detection flickers), cover at least ``fixture_min_presence`` of the
    night's images. A pinned occurrence a person marked as no fixture is never a candidate;
    one they marked as a fixture always is."""
    n_images = len(arr.images)
    if n_images == 0 or not groups:
        return []
    decided = [pinned_fixture.get(g.pinned_key) for g in groups]
    static = np.flatnonzero(_static_groups(arr, groups, p)
                            | np.array([d is True for d in decided]))
    static = np.array([k for k in static if decided[k] is not False], dtype=np.int64)
    if len(static) == 0:
        return []
    medians = _group_medians(arr, [groups[k] for k in static])
    # Static tracks at the same place belong together (connected components), unless they
    # were there at the same time: fragments of one flickering fixture never overlap in time
    rows, cols = same_place_pairs(medians, p)
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(static), len(static)))
    _, component = connected_components(graph, directed=False)
    places = []
    for label in np.unique(component):
        members = sorted(static[component == label].tolist(), key=lambda k: (-len(groups[k].dets), k))
        # longest first, each into the first place it shares no image with (what repeated
        # greedy passes over the rest give); images as bits of one int per place
        taken: list[list[int]] = []
        seen: list[int] = []
        for k in members:
            bits = _image_bits(arr.image_index[groups[k].dets])
            for slot, used in enumerate(seen):
                if not used & bits:
                    taken[slot].append(k)
                    seen[slot] = used | bits
                    break
            else:
                taken.append([k])
                seen.append(bits)
        places.extend(np.array(t) for t in taken)
    out = []
    for members in places:
        dets = np.concatenate([groups[k].dets for k in members])
        presence = len(np.unique(arr.image_index[dets])) / n_images
        forced = any(decided[k] is True for k in members)
        if not forced and (presence < p.fixture_min_presence or len(dets) < p.fixture_min_images):
            continue
        box = np.median(arr.boxes[dets], axis=0)
        image = arr.images[int(arr.image_index[dets[0]])]
        rel = (box[0] / image.width, box[1] / image.height, box[2] / image.width, box[3] / image.height)
        emb = None
        if arr.embeddings is not None and arr.has_embedding[dets].any():
            mean = arr.embeddings[dets[arr.has_embedding[dets]]].mean(axis=0, dtype=np.float64)
            norm = np.linalg.norm(mean)
            emb = (mean / norm).astype(np.float32) if norm > 0 else None
        for k in members:
            out.append(FixtureCandidate(keys[k], tuple(float(v) for v in rel), presence,
                                        n_images, emb, reference, groups[k].pinned))
    return sorted(out, key=lambda c: c.key)


def _image_bits(image_index: np.ndarray) -> int:
    bits = 0
    for i in np.unique(image_index).tolist():
        bits |= 1 << i
    return bits


def _group_medians(arr: NightArrays, groups: Sequence[Group]) -> np.ndarray:
    """The (lower) median box of each group, coordinate by coordinate."""
    lengths = np.array([len(g.dets) for g in groups])
    order = np.concatenate([g.dets for g in groups])
    group = np.repeat(np.arange(len(groups)), lengths)
    starts = np.r_[0, np.cumsum(lengths)[:-1]]
    out = np.empty((len(groups), 4))
    for c in range(4):
        values = arr.boxes[order, c]
        pick = np.lexsort((values, group))
        out[:, c] = values[pick[starts + (lengths - 1) // 2]]
    return out


def flag_fixtures(nights: Mapping[Hashable, Sequence[FixtureCandidate]],
                  params: TrackingParams = TrackingParams(),
                  night_labels: Mapping[Hashable, str] | None = None) -> dict[Hashable, dict[int, str]]:
    """night -> {occurrence key: reason} for the candidates that are fixtures: at the same
    place (``same_place`` on the median boxes in relative coordinates, and alike when
    both have embeddings) on at least ``fixture_min_nights`` nights, this one included, and
    on at least ``fixture_min_night_fraction`` of the nights that have candidates.
    Pass every night of one trap (one deployment); ``night_labels`` names them in reasons."""
    p = params
    flat = [(night, c) for night, cands in nights.items() for c in cands]
    result: dict[Hashable, dict[int, str]] = {night: {} for night in nights}
    if not flat:
        return result
    boxes = np.array([c.box for _, c in flat], dtype=np.float64)
    labels = night_labels or {}
    night_names = list(nights)
    night_of = _night_index(flat, night_names)
    nights_seen = len(np.unique(night_of))
    needed = max(p.fixture_min_nights, math.ceil(p.fixture_min_night_fraction * nights_seen - 1e-9))
    # every pair at once (a season holds thousands of candidates: pair by pair in Python took
    # minutes): at the same place, of another night, alike
    rows, cols = same_place_pairs(boxes, p)
    keep = night_of[rows] != night_of[cols]
    rows, cols = rows[keep], cols[keep]
    keep = _alike_pairs([c for _, c in flat], rows, cols, p)
    rows, cols = rows[keep], cols[keep]
    pairs = np.unique(rows * len(night_names) + night_of[cols])  # (candidate, other night)
    others_of: dict[int, list] = {}
    for i, other in zip(*np.divmod(pairs, len(night_names))):
        others_of.setdefault(int(i), []).append(night_names[int(other)])
    for i, (night, cand) in enumerate(flat):
        others = others_of.get(i, [])
        if 1 + len(others) >= needed:
            result[night][cand.key] = _reason(cand, sorted(others, key=lambda n: str(labels.get(n, n))),
                                              labels)
    return result


def _night_index(flat, night_names) -> np.ndarray:
    index = {night: k for k, night in enumerate(night_names)}
    return np.array([index[night] for night, _ in flat], dtype=np.int64)


def _alike_pairs(cands: Sequence[FixtureCandidate], rows: np.ndarray, cols: np.ndarray,
                 p: TrackingParams) -> np.ndarray:
    """``_alike`` for the pairs (rows[k], cols[k]), vectorised (float64 dot products)."""
    out = np.ones(len(rows), dtype=bool)
    if len(rows) == 0:
        return out
    dims = np.array([c.embedding.shape[0] if c.embedding is not None and c.embedding.ndim == 1
                     else -1 for c in cands], dtype=np.int64)
    refs = np.array([c.reference_distance or np.nan for c in cands], dtype=np.float64)
    for dim in np.unique(dims[dims > 0]).tolist():
        members = np.flatnonzero(dims == dim)
        matrix = np.zeros((len(cands), dim), dtype=np.float64)
        matrix[members] = np.stack([cands[k].embedding for k in members.tolist()])
        both = (dims[rows] == dim) & (dims[cols] == dim)
        pair_refs = np.stack([refs[rows[both]], refs[cols[both]]], axis=1)
        has_ref = ~np.isnan(pair_refs).all(axis=1)
        mean_ref = np.nanmean(np.where(has_ref[:, None], pair_refs, 1.0), axis=1)
        dot = np.einsum("ij,ij->i", matrix[rows[both]], matrix[cols[both]])
        alike = (1.0 - dot) / mean_ref <= p.fixture_max_appearance
        out[np.flatnonzero(both)] = alike | ~has_ref
    return out


def _reason(cand: FixtureCandidate, others: list, labels: Mapping) -> str:
    here = (f"at the same place in {cand.presence:.0%} of this night's {cand.n_images} images"
            if not cand.pinned else "marked as a fixture by a person")
    if not others:
        return f"Fixture: {here}."
    names = [str(labels.get(n, n)) for n in others]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    nights = "night" if len(others) == 1 else "nights"
    return f"Fixture: {here}, and on {len(others)} other {nights} ({shown})."
