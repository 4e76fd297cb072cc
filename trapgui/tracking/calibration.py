"""The night's appearance unit: how far apart two *different* detections typically are.

Cosine distances mean different things for different embeddings (a colour/texture
descriptor, a ResNet's pooled features, a ConvNeXt's), and for different sheets and lamps.
Two detections in the same image are always different objects, so the median cosine
distance over such pairs is a unit that adapts to all of that without labels; the gates and
weights then hold for every embedding. Deterministic: the pairs are a fixed function of the
input order.
"""

from __future__ import annotations

import numpy as np

from trapgui.tracking.arrays import NightArrays

MAX_PAIRS = 4096
MIN_PAIRS = 8
MIN_REFERENCE = 1e-3  # all crops alike (a night of identical stains): avoid dividing by ~0


def reference_distance(arr: NightArrays) -> float | None:
    """Median cosine distance between different detections of the same image; None when
    the night has no (or too few) embeddings to tell."""
    if arr.embeddings is None:
        return None
    firsts, seconds = [], []
    counts = np.diff(arr.image_starts)
    for t in np.flatnonzero(counts >= 2):
        idx = np.arange(arr.image_starts[t], arr.image_starts[t + 1])
        idx = idx[arr.has_embedding[idx]]
        if len(idx) < 2:
            continue
        # pair each detection with the one half the image's list further on: neighbours in
        # id order are often neighbours on the sheet, so this mixes near and far pairs
        shift = max(1, len(idx) // 2)
        firsts.append(idx)
        seconds.append(np.roll(idx, -shift))
    if not firsts:
        return None
    a = np.concatenate(firsts)
    b = np.concatenate(seconds)
    different = a != b
    a, b = a[different], b[different]
    if len(a) > MAX_PAIRS:  # evenly spread over the night
        pick = np.linspace(0, len(a) - 1, MAX_PAIRS).round().astype(np.int64)
        a, b = a[pick], b[pick]
    if len(a) < MIN_PAIRS:
        return None
    cos = np.einsum("kd,kd->k", arr.embeddings[a], arr.embeddings[b], dtype=np.float64)
    return max(float(np.median(1.0 - cos)), MIN_REFERENCE)
