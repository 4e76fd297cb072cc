"""Per occurrence: the label vote and the best detection, for all occurrences of a night at once.

Vote (per rank): every detection adds each of its top-k labels' scores to that label; the
winner is the label with the largest sum (ties: alphabetical, so re-runs agree). Its score
is that sum over the number of detections with a result of this rank, i.e. the mean
probability of the winner across those crops. The occurrence's label comes from the most
specific rank (species, order, binary, then others) whose results cover at least
``label_min_support`` of its detections; species runs only on crops the binary model
passed, so an occurrence that is mostly "nonmoth" keeps its binary label.

Best detection: crops cut by the image edge are avoided (unless all are), then the largest
``score * sqrt(area / max area) * sqrt(sharpness / max sharpness)`` wins (sharpness only
when every detection of the occurrence has one); ties go to the earliest.

Both are computed with one pass of Python over the labels and NumPy group reductions
(detections sorted by occurrence), so a night of 100,000 detections takes well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trapgui.tracking.arrays import NightArrays
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.types import LabelVote, NightDetection

RANK_ORDER = {"species": 0, "order": 1, "binary": 2}


def _group_starts(group_of: np.ndarray) -> np.ndarray:
    return np.r_[0, np.flatnonzero(np.diff(group_of)) + 1]


def votes_by_group(detections: Sequence[NightDetection], group_of: Sequence[int],
                   n_groups: int) -> list[dict[str, LabelVote]]:
    """``group_of[i]``: the group of ``detections[i]``. One dict of votes per group."""
    rank_ids: dict[str, int] = {}
    label_ids: dict[str, int] = {}
    rid, lid = rank_ids.setdefault, label_ids.setdefault
    # (group, rank) once per detection with results of that rank; then one row per label
    present = [(g, rid(rank, len(rank_ids)))
               for det, g in zip(detections, group_of) for rank, results in det.labels.items() if results]
    rows = [(g, rank_ids[rank], lid(label, len(label_ids)), score)
            for det, g in zip(detections, group_of) for rank, results in det.labels.items()
            for label, score in results]
    out: list[dict[str, LabelVote]] = [{} for _ in range(n_groups)]
    if not present:
        return out
    names = list(label_ids)
    alpha = np.empty(len(names), dtype=np.int64)
    alpha[np.argsort(np.array(names, dtype=object), kind="stable")] = np.arange(len(names))
    n_ranks, n_labels = len(rank_ids), len(names)
    table = np.array(rows, dtype=np.float64).reshape(-1, 4)
    g, r, lab = (table[:, c].astype(np.int64) for c in range(3))
    key = (g * n_ranks + r) * n_labels + alpha[lab]
    keys, inverse = np.unique(key, return_inverse=True)
    sums = np.bincount(inverse, weights=table[:, 3])
    group_rank = keys // n_labels
    # winner per (group, rank): largest sum, then alphabetical (smallest alpha id)
    order = np.lexsort((keys % n_labels, -sums, group_rank))
    first = order[_group_starts(group_rank[order])]
    pres = np.array(present, dtype=np.int64)
    gr, counts = np.unique(pres[:, 0] * n_ranks + pres[:, 1], return_counts=True)
    count_of = dict(zip(gr.tolist(), counts.tolist()))
    size = np.bincount(np.asarray(group_of, dtype=np.int64), minlength=n_groups)
    rank_names = list(rank_ids)
    sorted_names = sorted(names)
    for k in first.tolist():
        grk = int(group_rank[k])
        grp, r = divmod(grk, n_ranks)
        n = count_of[grk]
        rank = rank_names[r]
        out[grp][rank] = LabelVote(rank, sorted_names[int(keys[k] % n_labels)], float(sums[k]) / n,
                                   n / int(size[grp]), n)
    return out


def vote(detections: Sequence[NightDetection]) -> dict[str, LabelVote]:
    """The votes of one occurrence."""
    return votes_by_group(detections, [0] * len(detections), 1)[0] if detections else {}


def choose_label(votes: dict[str, LabelVote], min_support: float) -> LabelVote | None:
    ranked = sorted(votes.values(), key=lambda v: (RANK_ORDER.get(v.rank, len(RANK_ORDER)), v.rank))
    for v in ranked:
        if v.support >= min_support:
            return v
    return ranked[-1] if ranked else None  # none covers enough: the broadest rank there is


def best_detections(arr: NightArrays, order: np.ndarray, starts: np.ndarray,
                    p: TrackingParams) -> np.ndarray:
    """Index (into ``arr``) of each group's best detection. ``order``: detection indices
    grouped (capture order inside each group); ``starts``: where each group begins."""
    widths = np.array([im.width for im in arr.images], dtype=np.float64)[arr.image_index[order]]
    heights = np.array([im.height for im in arr.images], dtype=np.float64)[arr.image_index[order]]
    boxes = arr.boxes[order]
    mx, my = p.edge_margin * widths, p.edge_margin * heights
    cut = ((boxes[:, 0] <= mx) | (boxes[:, 1] <= my)
           | (boxes[:, 2] >= widths - mx) | (boxes[:, 3] >= heights - my))
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(order)]))
    areas = arr.sizes[order] ** 2
    quality = np.clip(arr.scores[order], 0.0, None) * np.sqrt(areas / np.maximum.reduceat(areas, starts)[group])
    sharp = arr.sharpness[order]
    has_all = np.logical_and.reduceat(~np.isnan(sharp), starts)
    top = np.fmax.reduceat(np.where(np.isnan(sharp), -np.inf, sharp), starts)
    use = (has_all & (top > 0))[group]
    ratio = np.where(use, np.clip(np.nan_to_num(sharp), 0.0, None) / np.where(use, top[group], 1.0), 1.0)
    quality = quality * np.sqrt(ratio)
    all_cut = np.logical_and.reduceat(cut, starts)[group]
    quality = np.where(cut & ~all_cut, -1.0, quality)
    pick = np.lexsort((order, -quality, group))  # best quality, then earliest
    return order[pick[_group_starts(group[pick])]]
