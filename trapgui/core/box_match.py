"""When two boxes on one image are the same box: the one rule of trapgui, used where a
person's decision must find its insect among boxes the machine made anew (decisions carried
to another model configuration, ``tracking.decision_match``; machine results replaced by
processing an image again, ``db.jobqueue``). Documented in docs/review.md.

A box *matches* the candidate box on the same image with the largest IoU (intersection over
union), when that IoU is at least ``MIN_IOU``; a candidate already taken by another box is
not offered again (one-to-one, in the order the boxes are asked about)."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import TypeVar

MIN_IOU = 0.5

Box = tuple[float, float, float, float]
K = TypeVar("K", bound=Hashable)
H = TypeVar("H", bound=Hashable)


def iou(a: Box, b: Box) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    if w <= 0 or h <= 0:
        return 0.0
    inter = w * h
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def best_match(box: Box, candidates: Iterable[tuple[K, Box]], exclude: Iterable[K] = (),
               min_iou: float = MIN_IOU) -> K | None:
    """The key of the candidate with the largest IoU with ``box``, at least ``min_iou``
    (of equals, the later one), leaving out ``exclude``; None when none is that close."""
    skip = exclude if isinstance(exclude, (set, frozenset, dict)) else set(exclude)
    found, top = None, min_iou
    for key, other in candidates:
        if key in skip:
            continue
        v = iou(box, other)
        if v >= top:
            found, top = key, v
    return found


def match_boxes(boxes: Sequence[tuple[H, Box]], candidates: Sequence[tuple[K, Box]],
                min_iou: float = MIN_IOU) -> dict[H, K]:
    """One-to-one: each of ``boxes`` (in order) takes its :func:`best_match` among the
    candidates not taken yet. Returns box key -> candidate key for those that matched."""
    taken: set = set()
    out: dict = {}
    for key, box in boxes:
        hit = best_match(box, candidates, taken, min_iou)
        if hit is not None:
            out[key] = hit
            taken.add(hit)
    return out


__all__ = ["MIN_IOU", "best_match", "iou", "match_boxes"]
