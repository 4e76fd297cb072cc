"""``flag_fixtures`` compares every pair of a trap's candidates at once; here against the rule
written out pair by pair (its docstring), on random seasons with and without embeddings."""

import math

import numpy as np
import pytest

from trapgui.tracking import place_pairs
from trapgui.tracking.fixtures import flag_fixtures
from trapgui.tracking.place_pairs import same_place, same_place_pairs
from trapgui.tracking.params import TrackingParams
from trapgui.tracking.types import FixtureCandidate


def _alike(a, b, p):
    if a.embedding is None or b.embedding is None or a.embedding.shape != b.embedding.shape:
        return True
    refs = [r for r in (a.reference_distance, b.reference_distance) if r]
    if not refs:
        return True
    dot = float(np.dot(a.embedding.astype(np.float64), b.embedding.astype(np.float64)))
    return (1.0 - dot) / (sum(refs) / len(refs)) <= p.fixture_max_appearance


def _reference(nights, p):
    flat = [(n, c) for n, cands in nights.items() for c in cands]
    seen = len({n for n, _ in flat})
    needed = max(p.fixture_min_nights, math.ceil(p.fixture_min_night_fraction * seen - 1e-9))
    out = {n: set() for n in nights}
    for night, a in flat:
        others = {m for m, b in flat if m != night
                  and same_place(np.array([a.box]), np.array([b.box]), p)[0] and _alike(a, b, p)}
        if 1 + len(others) >= needed:
            out[night].add(a.key)
    return out


@pytest.mark.parametrize("seed", range(6))
def test_flags_equal_the_pair_by_pair_rule(seed):
    rng = np.random.default_rng(seed)
    places = rng.uniform(0.05, 0.95, (15, 2))
    nights, key = {}, 0
    for n in range(int(rng.integers(2, 9))):
        cands = []
        for _ in range(int(rng.integers(0, 25))):
            cx, cy = places[rng.integers(0, len(places))] + rng.normal(0, 0.004, 2)
            w, h = rng.uniform(0.005, 0.03, 2)
            emb = None
            if rng.random() < 0.7:
                emb = rng.normal(size=6 if rng.random() < 0.9 else 4).astype(np.float32)
                emb /= np.linalg.norm(emb)
            ref = float(rng.uniform(0.2, 1.0)) if rng.random() < 0.8 else None
            cands.append(FixtureCandidate(key, (cx - w, cy - h, cx + w, cy + h), 0.9, 20, emb, ref,
                                          False))
            key += 1
        nights[f"night {n}"] = cands
    p = TrackingParams(fixture_max_appearance=float(rng.uniform(0.3, 1.5)))
    flags = flag_fixtures(nights, p)
    assert {n: set(f) for n, f in flags.items()} == _reference(nights, p)
    assert sum(map(len, flags.values())) > 0  # not vacuous: places recur across nights


@pytest.mark.parametrize("seed", range(4))
def test_same_place_pairs_are_every_pair_same_place_accepts(seed, monkeypatch):
    """Against all pairs, with thin and huge boxes, duplicates and pairs exactly at the
    offset limit; small chunks so several are used."""
    monkeypatch.setattr(place_pairs, "CHUNK_PAIRS", 37)
    rng = np.random.default_rng(seed)
    n = 160
    centres = rng.uniform(0, 1, (n, 2))
    sides = np.exp(rng.uniform(np.log(0.002), np.log(0.6), (n, 2)))
    sides[:10, 0] *= 40  # long thin boxes
    boxes = np.concatenate([centres - sides / 2, centres + sides / 2], axis=1)
    boxes[20:30] = boxes[10:20]  # the same box twice
    p = TrackingParams()
    w = boxes[40, 2] - boxes[40, 0]
    boxes[41] = boxes[40] + [p.fixture_max_offset * w, 0, p.fixture_max_offset * w, 0]
    rows, cols = same_place_pairs(boxes, p)
    i, j = np.nonzero(~np.eye(n, dtype=bool))
    want = {(a, b) for a, b, ok in zip(i, j, same_place(boxes[i], boxes[j], p)) if ok}
    got = list(zip(rows.tolist(), cols.tolist()))
    assert len(got) == len(set(got)) and set(got) == want
    assert len(want) > 40  # not vacuous
    assert (40, 41) in want  # exactly at the limit: same_place accepts it
