"""Occurrences in an order that puts similar-looking ones side by side (review's "Appearance"
sort): each occurrence is the mean of its detections' stored embeddings, and the order is the
leaf order of a hierarchical clustering of those means (cosine distance, average linkage), so
every tight group of look-alikes is one contiguous run of the grid.

Pure numpy/scipy, deterministic (no random start). A large night is clustered in two levels
(k-means of the means, then each cluster's members) so memory stays linear instead of the
quadratic distance matrix of one clustering.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterable

import numpy as np
from scipy.cluster.hierarchy import leaves_list, linkage
from scipy.cluster.vq import kmeans2

from trapgui.tracking.embeddings import decode_embedding

DIRECT_LIMIT = 3000  # occurrences clustered at once: a 3,000² distance matrix is ~36 MB
_BUCKET = 40  # mean members per first-level cluster of a large night


def mean_embeddings(rows: Iterable[tuple[int, bytes | None]]) -> tuple[list[int], np.ndarray]:
    """(occurrence ids, their unit-length mean embeddings) from (occurrence id, stored bytes)
    rows. Detections without an embedding, or of a length other than the night's most common
    one (another embedding model), are left out; so is an occurrence left with none."""
    vectors: dict[int, list[np.ndarray]] = {}
    for occ, data in rows:
        v = decode_embedding(data)
        if v is None or not np.all(np.isfinite(v)):
            continue
        norm = float(np.linalg.norm(v))
        if norm > 0:
            vectors.setdefault(occ, []).append(v / norm)
    if not vectors:
        return [], np.zeros((0, 0), dtype=np.float64)
    dim = Counter(v.size for vs in vectors.values() for v in vs).most_common(1)[0][0]
    ids, means = [], []
    for occ in sorted(vectors):
        vs = [v for v in vectors[occ] if v.size == dim]
        if not vs:
            continue
        m = np.mean(np.stack(vs).astype(np.float64), axis=0)
        n = float(np.linalg.norm(m))
        if n > 0:
            ids.append(occ)
            means.append(m / n)
    return ids, (np.stack(means) if means else np.zeros((0, dim)))


def _leaf_order(x: np.ndarray) -> np.ndarray:
    if len(x) <= 2:
        return np.arange(len(x))
    # unit vectors: euclidean distance is a monotone function of cosine distance, and it
    # never yields NaN for identical rows
    return leaves_list(linkage(x, method="average", metric="euclidean"))


def similarity_order(ids: list[int], means: np.ndarray) -> list[int]:
    """``ids`` reordered so that occurrences with similar mean embeddings are adjacent."""
    if len(ids) <= DIRECT_LIMIT:
        return [ids[k] for k in _leaf_order(means)]
    k = max(2, len(ids) // _BUCKET)
    # deterministic start: every (n/k)-th occurrence
    start = means[np.linspace(0, len(ids) - 1, k).astype(int)]
    with warnings.catch_warnings():  # an emptied cluster is simply not used
        warnings.simplefilter("ignore", UserWarning)
        centroids, labels = kmeans2(means, start, iter=10, minit="matrix", missing="warn")
    used = np.unique(labels)
    out: list[int] = []
    for c in used[_leaf_order(centroids[used])]:
        members = np.flatnonzero(labels == c)
        for chunk in (members[i:i + DIRECT_LIMIT] for i in range(0, len(members), DIRECT_LIMIT)):
            out += [ids[m] for m in chunk[_leaf_order(means[chunk])]]
    return out
