"""Point-in-box scoring of the detector evaluation (benchmarks/detector_scoring.py) and the
hand-labelled points it scores against (tests/data/detector-labels)."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.detector_scoring import (
    HELD_OUT_PHOTOS,
    LABELS,
    NOT_SHEETS,
    TUNE_PHOTOS,
    Labels,
    load_labels,
    operating_point,
    pr_table,
    reliability,
    score_image,
    training_targets,
)


def _labels(insects, unsure=()) -> Labels:
    return Labels("x", 100, 100, True, np.array(insects, float).reshape(-1, 2),
                  np.array(unsure, float).reshape(-1, 2))


def test_greedy_point_in_box_matching():
    labels = _labels([[10, 10], [50, 50], [52, 52], [90, 90]], unsure=[[30, 80]])
    boxes = np.array([
        [0, 0, 20, 20],  # insect 1
        [40, 40, 60, 60],  # holds two insects: claims one (a merged box)
        [45, 45, 55, 55],  # lower score: claims the other one left inside
        [5, 5, 15, 15],  # duplicate of insect 1: false positive
        [25, 75, 35, 85],  # only an unsure speck: ignored
        [60, 0, 70, 10],  # empty sheet: false positive
    ], float)
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.95, 0.55])
    s = score_image(boxes, scores, labels, 0.5)
    assert (s.tp, s.fp, s.ignored, s.missed) == (3, 2, 1, 1)
    assert s.outcome.tolist() == [1, 1, 1, 0, -1, 0]
    assert s.claimed.tolist() == [True, True, True, False]  # the insect at 90,90 has no box
    assert s.precision == pytest.approx(3 / 5) and s.recall == pytest.approx(3 / 4)
    high = score_image(boxes, scores, labels, 0.75)
    assert (high.tp, high.fp, high.ignored, high.missed) == (2, 0, 1, 2)
    assert high.outcome[2] == -2  # below the threshold: not scored
    assert high.claimed.tolist() == [True, True, False, False]  # the merged box claims the nearer


def test_a_box_with_an_insect_and_a_speck_is_not_ignored():
    labels = _labels([[10, 10]], unsure=[[12, 12]])
    s = score_image(np.array([[0, 0, 20, 20], [0, 0, 21, 21]], float), np.array([0.9, 0.8]), labels, 0.5)
    assert (s.tp, s.fp, s.ignored) == (1, 1, 0)  # the duplicate still holds the claimed insect


def test_training_targets_give_each_insect_its_own_box():
    labels = _labels([[50, 50], [80, 50]], unsure=[[10, 90]])
    boxes = np.array([
        [30, 30, 100, 70],  # both moths (merged)
        [40, 40, 60, 60],  # the first moth alone: nearer its centre
        [45, 45, 52, 52],  # a part-box around the first moth's point, farther off-centre
        [0, 80, 20, 100],  # unsure only
        [0, 0, 10, 10],  # empty
    ], float)
    assert training_targets(boxes, labels).tolist() == [1, 1, 0, -1, 0]


def test_tables_and_reliability():
    labels = _labels([[10, 10], [50, 50]])
    per = [(np.array([[0, 0, 20, 20], [40, 40, 60, 60], [70, 70, 80, 80]], float),
            np.array([0.9, 0.4, 0.6]), labels)]
    rows = pr_table(per, np.array([0.3, 0.5]))
    assert [(t, s.tp, s.fp) for t, s in rows] == [(0.3, 2, 1), (0.5, 1, 1)]
    t, s = operating_point(rows, 1.0)
    assert t == 0.3 and s.recall == 1.0
    assert operating_point(rows, 1.01) is None
    table, brier = reliability(np.array([0.9, 0.4, 0.6, 0.1]), np.array([1, 1, 0, -1]),
                               np.linspace(0, 1, 3))
    assert brier == pytest.approx(((0.1) ** 2 + 0.6**2 + 0.6**2) / 3)
    assert table[0][2] == 1 and table[1][2] == 2


def test_labels_cover_every_shared_photo_once():
    labels = load_labels()
    assert set(labels) == set(TUNE_PHOTOS) | set(HELD_OUT_PHOTOS) | set(NOT_SHEETS)
    assert not set(TUNE_PHOTOS) & set(HELD_OUT_PHOTOS)
    for name in NOT_SHEETS:
        assert not labels[name].sheet and len(labels[name].insects) == 0
    for name in TUNE_PHOTOS + HELD_OUT_PHOTOS:
        lab = labels[name]
        assert lab.sheet and len(lab.insects) > 0
        pts = np.concatenate([lab.insects, lab.unsure])
        assert (pts >= 0).all() and (pts[:, 0] < lab.width).all() and (pts[:, 1] < lab.height).all()
        # one point per insect: no two labelled insects on the same spot
        d = np.linalg.norm(lab.insects[:, None] - lab.insects[None], axis=2)
        np.fill_diagonal(d, np.inf)
        assert d.min() > 20, name
    assert sum(1 for _ in LABELS.glob("*.json")) == len(labels)
