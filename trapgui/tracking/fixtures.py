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

from collections.abc import Hashable, Mapping, Sequence

import numpy as np
from scipy.spatial import cKDTree

from trapgui.tracking.arrays import NightArrays
from trapgui.tracking.costs import box_centres, box_sizes, pair_iou
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.relink import Group
from trapgui.tracking.types import FixtureCandidate


def _is_static(arr: NightArrays, dets: np.ndarray, p: TrackingParams) -> bool:
    centres = arr.centres[dets]
    median = np.median(centres, axis=0)
    size = float(np.median(arr.sizes[dets]))
    spread = np.hypot(*(centres - median).T) / size
    return float(np.quantile(spread, 0.9)) <= p.fixture_max_motion


def night_candidates(arr: NightArrays, groups: Sequence[Group], keys: Sequence[int],
                     p: TrackingParams, reference: float | None,
                     pinned_fixture: Mapping[int, bool | None]) -> list[FixtureCandidate]:
    """Static tracks that, alone or together with other static tracks at the same place
    (a fixture whose detection flickers), cover at least ``fixture_min_presence`` of the
    night's images. A pinned occurrence a person marked as no fixture is never a candidate;
    one they marked as a fixture always is."""
    n_images = len(arr.images)
    if n_images == 0:
        return []
    static = [k for k, grp in enumerate(groups)
              if pinned_fixture.get(grp.pinned_key) is True
              or (pinned_fixture.get(grp.pinned_key) is not False
                  and _is_static(arr, grp.dets, p))]
    if not static:
        return []
    medians = np.array([np.median(arr.boxes[groups[k].dets], axis=0) for k in static])
    # static tracks at the same place belong together (union-find over overlapping medians)
    parent = list(range(len(static)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    tree = cKDTree(box_centres(medians))
    sizes = box_sizes(medians)
    for i, near in enumerate(tree.query_ball_point(box_centres(medians), sizes)):
        for j in near:
            if j > i and pair_iou(medians[i:i + 1], medians[j:j + 1])[0] >= p.fixture_min_iou:
                parent[find(j)] = find(i)
    places: dict[int, list[int]] = {}
    for i in range(len(static)):
        places.setdefault(find(i), []).append(i)
    out = []
    for members in places.values():
        dets = np.concatenate([groups[static[i]].dets for i in members])
        presence = len(np.unique(arr.image_index[dets])) / n_images
        forced = [i for i in members if pinned_fixture.get(groups[static[i]].pinned_key) is True]
        if not forced and (presence < p.fixture_min_presence or len(dets) < p.fixture_min_images):
            continue
        box = np.median(arr.boxes[dets], axis=0)
        sizes_wh = np.array([[arr.images[t].width, arr.images[t].height] for t in arr.image_index[dets[:1]]])
        w, h = float(sizes_wh[0, 0]), float(sizes_wh[0, 1])
        rel = (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
        emb = None
        if arr.embeddings is not None and arr.has_embedding[dets].any():
            mean = arr.embeddings[dets[arr.has_embedding[dets]]].mean(axis=0, dtype=np.float64)
            norm = np.linalg.norm(mean)
            emb = (mean / norm).astype(np.float32) if norm > 0 else None
        for i in members:
            grp = groups[static[i]]
            if pinned_fixture.get(grp.pinned_key) is False:
                continue
            out.append(FixtureCandidate(keys[static[i]], tuple(float(v) for v in rel), presence,
                                        n_images, emb, reference, grp.pinned))
    return sorted(out, key=lambda c: c.key)


def flag_fixtures(nights: Mapping[Hashable, Sequence[FixtureCandidate]],
                  params: TrackingParams = TrackingParams(),
                  night_labels: Mapping[Hashable, str] | None = None) -> dict[Hashable, dict[int, str]]:
    """night -> {occurrence key: reason} for the candidates that are fixtures: at the same
    place (median boxes' IoU in relative coordinates >= fixture_min_iou, and alike when
    both have embeddings) on at least ``fixture_min_nights`` nights, this one included.
    Pass every night of one trap (one deployment); ``night_labels`` names them in reasons."""
    p = params
    flat = [(night, c) for night, cands in nights.items() for c in cands]
    result: dict[Hashable, dict[int, str]] = {night: {} for night in nights}
    if not flat:
        return result
    boxes = np.array([c.box for _, c in flat], dtype=np.float64)
    centres, sizes = box_centres(boxes), box_sizes(boxes)
    tree = cKDTree(centres)
    labels = night_labels or {}
    for i, near in enumerate(tree.query_ball_point(centres, sizes)):
        night, cand = flat[i]
        others = set()
        for j in near:
            other_night, other = flat[j]
            if other_night == night or other_night in others:
                continue
            if pair_iou(boxes[i:i + 1], boxes[j:j + 1])[0] < p.fixture_min_iou:
                continue
            if not _alike(cand, other, p):
                continue
            others.add(other_night)
        if 1 + len(others) >= p.fixture_min_nights:
            result[night][cand.key] = _reason(cand, sorted(others, key=lambda n: str(labels.get(n, n))),
                                              labels)
    return result


def _alike(a: FixtureCandidate, b: FixtureCandidate, p: TrackingParams) -> bool:
    if a.embedding is None or b.embedding is None or a.embedding.shape != b.embedding.shape:
        return True  # place alone decides
    refs = [r for r in (a.reference_distance, b.reference_distance) if r]
    if not refs:
        return True
    distance = (1.0 - float(np.dot(a.embedding, b.embedding))) / (sum(refs) / len(refs))
    return distance <= p.fixture_max_appearance


def _reason(cand: FixtureCandidate, others: list, labels: Mapping) -> str:
    here = (f"at the same place in {cand.presence:.0%} of this night's {cand.n_images} images"
            if not cand.pinned else "marked as a fixture by a person")
    if not others:
        return f"Fixture: {here}."
    names = [str(labels.get(n, n)) for n in others]
    shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
    nights = "night" if len(others) == 1 else "nights"
    return f"Fixture: {here}, and on {len(others)} other {nights} ({shown})."
