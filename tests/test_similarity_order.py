"""The appearance order of review: look-alike occurrences form contiguous runs."""

from __future__ import annotations

import numpy as np

from trapgui.tracking import encode_embedding
from trapgui.tracking.similarity_order import DIRECT_LIMIT, mean_embeddings, similarity_order


def _groups(n_groups, per_group, dim, rng, spread=0.05):
    centres = rng.normal(size=(n_groups, dim))
    rows, truth = [], {}
    occ = 0
    order = rng.permutation(n_groups * per_group)  # interleaved ids: time order is no help
    for k in order:
        g = int(k) // per_group
        occ += 1
        truth[occ] = g
        for _ in range(3):  # three detections each
            rows.append((occ, encode_embedding(centres[g] + spread * rng.normal(size=dim))))
    return rows, truth


def _runs(order, truth):
    return sum(1 for a, b in zip(order, order[1:]) if truth[a] != truth[b]) + 1


def test_look_alikes_are_contiguous():
    rng = np.random.default_rng(7)
    rows, truth = _groups(6, 9, 64, rng)
    rows += [(999, None), (1000, b"")]  # no embedding: not listed
    ids, means = mean_embeddings(rows)
    assert len(ids) == 54 and np.allclose(np.linalg.norm(means, axis=1), 1.0)
    order = similarity_order(ids, means)
    assert sorted(order) == sorted(truth)
    assert _runs(order, truth) == 6  # each group one run


def test_another_embedding_length_is_left_out():
    rows = [(1, encode_embedding([1.0, 0.0])), (1, encode_embedding([0.0, 1.0, 0.0])),
            (2, encode_embedding([0.0, 1.0, 0.0])), (3, encode_embedding([0.0, 1.0, 0.1])),
            (4, encode_embedding([1.0, 1.0]))]
    ids, means = mean_embeddings(rows)
    assert ids == [1, 2, 3] and means.shape == (3, 3)  # three values is the common length
    assert np.allclose(means[0], [0.0, 1.0, 0.0])  # occurrence 1 without its 2-value one


def test_a_large_night_is_ordered_in_two_levels():
    rng = np.random.default_rng(3)
    rows, truth = _groups(40, DIRECT_LIMIT // 40 + 10, 32, rng, spread=0.02)
    ids, means = mean_embeddings(rows)
    assert len(ids) > DIRECT_LIMIT
    order = similarity_order(ids, means)
    assert sorted(order) == sorted(ids)
    # k-means may cut a group in two; nearly every neighbour is still a look-alike
    assert _runs(order, truth) <= 3 * 40
