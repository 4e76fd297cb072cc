"""Stage 2: join tracks that ended to tracks that began later, when place and appearance agree.

Covers an insect that was missed for longer than stage 1 allows, one that flew off and came
back to the same spot, a fixture whose detection flickers, and the extension of pinned
(human-reviewed) occurrences by new machine tracks before or after them. The gates are the
strict ``relink_*`` settings and both ends must have embeddings: without appearance, two
insects that sat at the same spot one after the other cannot be told apart, so they are
never joined. One-to-one (a track's end joins at most one later start, and vice versa), by
the same maximum-weight assignment as stage 1; joined pairs form chains in time order.
A chain never holds two pinned occurrences (a person separated them).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from trapgui.tracking.arrays import NightArrays
from trapgui.tracking.assignment import max_weight_matching
from trapgui.tracking.costs import Gates, appearance_distance, link_costs
from trapgui.tracking.params import TrackingParams


@dataclass
class Group:
    dets: np.ndarray  # detection indices, capture order
    pinned_key: int | None = None

    @property
    def pinned(self) -> bool:
        return self.pinned_key is not None


def _end_embedding(arr: NightArrays, dets: np.ndarray, window: int, tail: bool) -> np.ndarray | None:
    with_emb = dets[arr.has_embedding[dets]]
    if len(with_emb) == 0:
        return None
    picked = with_emb[-window:] if tail else with_emb[:window]
    mean = arr.embeddings[picked].mean(axis=0, dtype=np.float64)
    norm = np.linalg.norm(mean)
    return (mean / norm).astype(np.float32) if norm > 0 else None


def relink(arr: NightArrays, p: TrackingParams, reference: float | None,
           groups: list[Group]) -> tuple[list[Group], int, int]:
    """Joined groups (capture order inside), number of machine joins, number of machine
    tracks appended to pinned occurrences."""
    if reference is None or arr.embeddings is None or len(groups) < 2:
        return groups, 0, 0
    gates = Gates.relink(p)
    g = len(groups)
    first = np.array([grp.dets[0] for grp in groups])
    last = np.array([grp.dets[-1] for grp in groups])
    first_img, last_img = arr.image_index[first], arr.image_index[last]
    pinned = np.array([grp.pinned for grp in groups])
    dim = arr.embeddings.shape[1]
    head_emb = np.zeros((g, dim), dtype=np.float32)
    tail_emb = np.zeros((g, dim), dtype=np.float32)
    head_has = np.zeros(g, dtype=bool)
    tail_has = np.zeros(g, dtype=bool)
    for k, grp in enumerate(groups):
        h = _end_embedding(arr, grp.dets, p.relink_window, tail=False)
        t = _end_embedding(arr, grp.dets, p.relink_window, tail=True)
        if h is not None:
            head_emb[k], head_has[k] = h, True
        if t is not None:
            tail_emb[k], tail_has[k] = t, True

    tails = np.flatnonzero(tail_has)
    heads = np.flatnonzero(head_has)
    if len(tails) == 0 or len(heads) == 0:
        return groups, 0, 0
    tree = cKDTree(arr.centres[first[heads]])
    found = tree.query_ball_point(arr.centres[last[tails]], gates.search_radius(arr.sizes[last[tails]]),
                                  return_sorted=True)
    counts = np.fromiter(map(len, found), dtype=np.int64, count=len(found))
    cols = heads[np.fromiter(itertools.chain.from_iterable(found), dtype=np.int64, count=int(counts.sum()))]
    rows = np.repeat(tails, counts)
    keep = first_img[cols] > last_img[rows]  # strictly later: never two detections in one image
    keep &= ~(pinned[rows] & pinned[cols])
    if not p.extend_pinned:
        keep &= ~(pinned[rows] | pinned[cols])
    rows, cols = rows[keep], cols[keep]
    if len(rows) == 0:
        return groups, 0, 0
    gap = arr.times[first_img[cols]] - arr.times[last_img[rows]]
    dist = appearance_distance(tail_emb[rows], head_emb[cols], reference)
    cost, ok = link_costs(p, gates, arr.boxes[last[rows]], arr.boxes[first[cols]], dist, gap)
    weight = p.relink_max_cost - cost
    mr, mc = max_weight_matching(rows[ok], cols[ok], weight[ok])
    pair_weight = dict(zip(zip(rows[ok].tolist(), cols[ok].tolist()), weight[ok].tolist()))
    nxt = dict(zip(mr.tolist(), mc.tolist()))
    _cut_chains_with_two_pinned(nxt, pinned, pair_weight)

    has_prev = set(nxt.values())
    joined: list[Group] = []
    machine_joins = pinned_ext = 0
    for start in range(g):
        if start in has_prev:
            continue
        chain = [start]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        keys = [groups[k].pinned_key for k in chain if groups[k].pinned]
        if len(chain) > 1:
            if keys:
                pinned_ext += len(chain) - 1
            else:
                machine_joins += len(chain) - 1
        joined.append(Group(np.concatenate([groups[k].dets for k in chain]),
                            keys[0] if keys else None))
    return joined, machine_joins, pinned_ext


def _cut_chains_with_two_pinned(nxt: dict[int, int], pinned: np.ndarray,
                                weight: dict[tuple[int, int], float]) -> None:
    """Between two pinned occurrences of one chain, drop the weakest link."""
    starts = set(nxt) - set(nxt.values())
    for start in sorted(starts):
        chain = [start]
        while chain[-1] in nxt:
            chain.append(nxt[chain[-1]])
        pins = [i for i, k in enumerate(chain) if pinned[k]]
        for a, b in zip(pins, pins[1:]):
            links = [(weight[(chain[i], chain[i + 1])], chain[i]) for i in range(a, b)]
            _, weakest = min(links)
            nxt.pop(weakest, None)
