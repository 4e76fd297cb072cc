"""Boxes at the same place (``same_place``), and every such pair, without trying all pairs.

``same_place`` needs the centres within ``fixture_max_offset`` of the mean width apart on x
(and of the mean height on y), so each box's interval ``centre ± offset * width / 2`` must
overlap the other's on both axes. A sweep over the intervals sorted by their start gives
exactly the x-overlapping pairs as arrays (no Python lists: a KD-tree ball query with a
radius that bounds every shape returned millions of Python ints for a night of large noise
boxes, 0.5 s per night); then the y test, then ``same_place`` itself. The result is the
same as testing every pair (tests/test_fixture_flags.py holds it to that).
"""

from __future__ import annotations

import numpy as np

from trapgui.tracking.params import TrackingParams


def same_place(a: np.ndarray, b: np.ndarray, p: TrackingParams) -> np.ndarray:
    """For box pairs a[k], b[k]: centres within ``fixture_max_offset`` of the mean width /
    height on each axis, sizes within ``fixture_max_size_ratio``."""
    wa, ha = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
    wb, hb = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    dx = np.abs(a[:, 0] + a[:, 2] - b[:, 0] - b[:, 2]) / (wa + wb)  # = |centre dx| / mean width
    dy = np.abs(a[:, 1] + a[:, 3] - b[:, 1] - b[:, 3]) / (ha + hb)
    sa, sb = np.sqrt(np.maximum(wa * ha, 1e-18)), np.sqrt(np.maximum(wb * hb, 1e-18))
    ratio = np.maximum(sa, sb) / np.minimum(sa, sb)
    return (np.hypot(dx, dy) <= p.fixture_max_offset) & (ratio <= p.fixture_max_size_ratio)


CHUNK_PAIRS = 2_000_000  # candidate pairs held at once (48 MB of indices)
_SLACK = 1e-9  # the interval test must not drop a pair same_place accepts by a rounding


def same_place_pairs(boxes: np.ndarray, p: TrackingParams) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols): every ordered pair i != j of ``boxes`` (N, 4) for which
    ``same_place(boxes[i], boxes[j])`` holds."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    n = len(boxes)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    reach = p.fixture_max_offset * (1 + _SLACK)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    half_w = reach * (boxes[:, 2] - boxes[:, 0]) / 2 + _SLACK
    half_h = reach * (boxes[:, 3] - boxes[:, 1]) / 2 + _SLACK
    order = np.argsort(cx - half_w, kind="stable")
    lo = (cx - half_w)[order]
    ends = np.searchsorted(lo, (cx + half_w)[order], side="right")
    # sorted position k pairs with the positions after it whose interval starts inside its own
    counts = np.maximum(ends - np.arange(n) - 1, 0)
    rows_out, cols_out = [], []
    start = 0
    cumulative = np.cumsum(counts)
    while start < n:
        stop = int(np.searchsorted(cumulative, cumulative[start] - counts[start] + CHUNK_PAIRS,
                                   side="right"))
        stop = max(stop, start + 1)
        part = counts[start:stop]
        first = np.repeat(np.arange(start, stop), part)
        step = np.arange(int(part.sum())) - np.repeat(np.cumsum(part) - part, part)
        a, b = order[first], order[first + 1 + step]
        near_y = np.abs(cy[a] - cy[b]) <= half_h[a] + half_h[b]
        a, b = a[near_y], b[near_y]
        # each direction on its own: at the limit, rounding can accept a, b and not b, a
        forward, backward = same_place(boxes[a], boxes[b], p), same_place(boxes[b], boxes[a], p)
        rows_out += [a[forward], b[backward]]
        cols_out += [b[forward], a[backward]]
        start = stop
    return np.concatenate(rows_out), np.concatenate(cols_out)
