"""``flag_fixtures`` compares every pair of a trap's candidates at once; here against the rule
written out pair by pair (its docstring), on random seasons with and without embeddings."""

import math

import numpy as np
import pytest

from trapgui.tracking.fixtures import flag_fixtures, same_place
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
