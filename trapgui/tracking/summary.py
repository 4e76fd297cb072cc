"""Per occurrence: the label vote, the best detection, first/last seen.

Vote (per rank): every detection adds each of its top-k labels' scores to that label; the
winner is the label with the largest sum (ties: alphabetical, so re-runs agree). Its score
is that sum over the number of detections with a result of this rank, i.e. the mean
probability of the winner across those crops. The occurrence's label comes from the most
specific rank (species, order, binary, then others) whose results cover at least
``label_min_support`` of its detections; species runs only on crops the binary model
passed, so an occurrence that is mostly "nonmoth" keeps its binary label.

Best detection: crops cut by the image edge are avoided (unless all are), then the largest
``score * sqrt(area / max area) * sqrt(sharpness / max sharpness)`` wins (sharpness only
when every detection has one); ties go to the earliest.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from trapgui.tracking.arrays import NightArrays
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.types import LabelVote, NightDetection

RANK_ORDER = {"species": 0, "order": 1, "binary": 2}


def vote(detections: Sequence[NightDetection]) -> dict[str, LabelVote]:
    sums: dict[str, dict[str, float]] = {}
    counts: dict[str, int] = {}
    for det in detections:
        for rank, results in det.labels.items():
            if not results:
                continue
            counts[rank] = counts.get(rank, 0) + 1
            per_label = sums.setdefault(rank, {})
            for label, score in results:
                per_label[label] = per_label.get(label, 0.0) + float(score)
    votes = {}
    for rank, per_label in sums.items():
        label, total = min(per_label.items(), key=lambda kv: (-kv[1], kv[0]))
        n = counts[rank]
        votes[rank] = LabelVote(rank, label, total / n, n / len(detections), n)
    return votes


def choose_label(votes: dict[str, LabelVote], min_support: float) -> LabelVote | None:
    ranked = sorted(votes.values(), key=lambda v: (RANK_ORDER.get(v.rank, len(RANK_ORDER)), v.rank))
    for v in ranked:
        if v.support >= min_support:
            return v
    return ranked[-1] if ranked else None  # none covers enough: the broadest rank there is


def best_detection(arr: NightArrays, dets: np.ndarray, p: TrackingParams) -> int:
    """Index (into ``arr``) of the occurrence's best detection."""
    boxes = arr.boxes[dets]
    widths = np.array([arr.images[t].width for t in arr.image_index[dets]], dtype=np.float64)
    heights = np.array([arr.images[t].height for t in arr.image_index[dets]], dtype=np.float64)
    mx = p.edge_margin * widths
    my = p.edge_margin * heights
    cut = ((boxes[:, 0] <= mx) | (boxes[:, 1] <= my)
           | (boxes[:, 2] >= widths - mx) | (boxes[:, 3] >= heights - my))
    areas = arr.sizes[dets] ** 2
    scores = np.array([arr.detections[i].score for i in dets], dtype=np.float64)
    quality = np.clip(scores, 0.0, None) * np.sqrt(areas / areas.max())
    sharp = [arr.detections[i].sharpness for i in dets]
    if all(s is not None for s in sharp):
        s = np.array(sharp, dtype=np.float64)
        if s.max() > 0:
            quality = quality * np.sqrt(np.clip(s, 0.0, None) / s.max())
    if not cut.all():
        quality = np.where(cut, -1.0, quality)
    return int(dets[int(np.argmax(quality))])  # argmax: first of equals = earliest
