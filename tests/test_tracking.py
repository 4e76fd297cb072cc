"""The tracker's parts (assignment, gates, gaps, re-linking, fixtures, vote, best crop, pinned
occurrences, input checks) on small hand-made nights, and its goals on synthetic nights."""

from __future__ import annotations

import datetime as dt
import random

import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

from trapgui.core.errors import Cancelled, UserInputError
from trapgui.core.jobs import JobControl
from trapgui.tracking import (NightDetection, NightImage, NightInput, PinnedOccurrence,
                              TrackingParams, decode_embedding, encode_embedding, flag_fixtures,
                              max_n, night_max_n, track_night, track_nights)
from trapgui.tracking.assignment import max_weight_matching
from trapgui.tracking.summary import choose_label, vote

T0 = dt.datetime(2023, 6, 1, 22, 0)
W, H = 4000, 2000


def images(n, minutes=5.0, start_id=1, start=T0):
    return [NightImage(start_id + i, start + dt.timedelta(minutes=minutes * i), W, H) for i in range(n)]


def unit(seed, dim=32):
    v = np.random.default_rng(seed).normal(size=dim)
    return v / np.linalg.norm(v)


class Night:
    """Detections placed by hand: ``add(image index, x, y, size, look)``, where ``look`` is a
    seed for a distinct embedding (None: no embedding). Other insects are scattered far away
    so the night's appearance unit is well defined."""

    def __init__(self, n_images, minutes=5.0, background=6):
        self.images = images(n_images, minutes)
        self.dets: list[NightDetection] = []
        for t in range(n_images):
            for k in range(background):
                self.add(t, 3000 + 150 * k, 1700, 40, look=1000 + k)

    def add(self, t, x, y, size=50.0, look=1, score=0.9, labels=None, noise=0.0, sharpness=None):
        emb = None
        if look is not None:
            emb = unit(look) + noise * np.random.default_rng(len(self.dets)).normal(size=32)
        det = NightDetection(len(self.dets) + 1, self.images[t].image_id,
                             (x - size / 2, y - size / 2, x + size / 2, y + size / 2), score,
                             labels or {}, emb, sharpness)
        self.dets.append(det)
        return det.detection_id

    def track(self, params=None, pinned=()):
        return track_night(self.images, self.dets, params or TrackingParams(), pinned)


def occ_of(result, det_id):
    return result.occurrences[result.occurrence_of[det_id]]


def same(result, *det_ids):
    return len({result.occurrence_of[d] for d in det_ids}) == 1


# ---- assignment ---------------------------------------------------------------------------

def test_matching_is_the_dense_optimum_on_random_sparse_problems():
    rng = np.random.default_rng(0)
    for _ in range(200):
        nr, nc = int(rng.integers(1, 9)), int(rng.integers(1, 9))
        dense = np.where(rng.random((nr, nc)) < 0.35, rng.uniform(0.1, 2.0, (nr, nc)), 0.0)
        rows, cols = np.nonzero(dense)
        mr, mc = max_weight_matching(rows + 100, cols * 3, dense[rows, cols])  # any id range
        mr, mc = mr - 100, mc // 3
        assert len(set(mr)) == len(mr) and len(set(mc)) == len(mc)
        assert all(dense[r, c] > 0 for r, c in zip(mr, mc))
        ar, ac = linear_sum_assignment(dense, maximize=True)
        assert dense[mr, mc].sum() == pytest.approx(dense[ar, ac].sum(), abs=1e-9)


def test_matching_prefers_two_links_to_one_greedy_best():
    # greedy would take (0, 0) = 1.0 and leave row 1 without a partner
    mr, mc = max_weight_matching(np.array([0, 0, 1]), np.array([0, 1, 0]), np.array([1.0, 0.8, 0.9]))
    assert list(zip(mr, mc)) == [(0, 1), (1, 0)]


def test_look_alike_neighbours_that_shift_together_are_not_swapped():
    # B's old place is nearer A's new box than A's is, and they look alike: linking the best
    # pair first (greedy) would swap them; the one-to-one assignment keeps both right
    night = Night(2)
    a0, b0 = night.add(0, 1000, 500, 100, look=1), night.add(0, 1100, 500, 100, look=1)
    a1, b1 = night.add(1, 1060, 500, 100, look=1), night.add(1, 1160, 500, 100, look=1)
    r = night.track()
    assert same(r, a0, a1) and same(r, b0, b1) and not same(r, a0, b0)


# ---- gates and gaps -----------------------------------------------------------------------

def test_gates_keep_implausible_pairs_apart():
    p = TrackingParams()
    night = Night(4)
    far = [night.add(0, 500, 500, 50), night.add(1, 500 + 50 * (p.max_move + 0.5), 500, 50)]
    sized = [night.add(2, 1500, 500, 50), night.add(3, 1500, 500, 50 * (p.max_size_ratio + 0.3))]
    r = night.track()
    assert not same(r, *far) and not same(r, *sized)
    near = Night(2)
    ok = [near.add(0, 500, 500, 50), near.add(1, 500 + 50 * (p.max_move - 0.8), 500, 50)]
    assert same(near.track(), *ok)


def test_appearance_gate_separates_a_different_insect_on_the_same_spot():
    night = Night(3)
    first = [night.add(0, 800, 800, 60, look=1), night.add(1, 800, 800, 60, look=1)]
    other = night.add(2, 802, 801, 60, look=2)  # landed where the first one sat
    # as different from the first as different insects of this night typically are, or more
    first_look = unit(1)
    unlike = unit(2) - (unit(2) @ first_look + 0.3) * first_look
    night.dets[-1] = NightDetection(other, night.images[2].image_id, night.dets[-1].box, 0.9,
                                    embedding=unlike)
    r = night.track()
    assert same(r, *first) and not same(r, first[1], other)


def test_max_missed_images_and_max_gap_end_a_track():
    p = TrackingParams(relink=False)
    night = Night(8)
    a = night.add(0, 600, 600)
    b = night.add(1 + p.max_missed_images, 600, 600)  # missed max_missed_images: still linked
    c = night.add(1 + p.max_missed_images + 1 + p.max_missed_images + 1, 600, 600)  # one more: not
    r = night.track(p)
    assert same(r, a, b) and not same(r, b, c)
    slow = Night(2, minutes=p.max_gap_s / 60 + 1)  # consecutive images, but too long apart
    x, y = slow.add(0, 600, 600), slow.add(1, 600, 600)
    assert not same(slow.track(p), x, y)


def test_relink_joins_a_return_to_the_same_spot_but_not_a_look_alike_elsewhere():
    night = Night(14)
    stay = [night.add(t, 700, 700, look=5, noise=0.02) for t in range(4)]
    back = [night.add(t, 712, 695, look=5, noise=0.02) for t in range(9, 14)]  # 5 images away
    elsewhere = night.add(12, 2000, 900, look=5)
    other = [night.add(t, 1300, 700, look=6) for t in range(3)]
    replaced = [night.add(t, 1302, 702, look=7) for t in range(8, 11)]  # someone else, later
    r = night.track()
    assert same(r, *stay, *back)
    assert not same(r, stay[0], elsewhere)
    assert not same(r, other[0], replaced[0])
    assert r.stats.relinks >= 1
    no_embeddings = Night(14, background=0)
    s = [no_embeddings.add(t, 700, 700, look=None) for t in (0, 1, 9, 10)]
    rr = no_embeddings.track()
    assert same(rr, s[0], s[1]) and not same(rr, s[1], s[2])  # cannot tell who came back


# ---- fixtures -----------------------------------------------------------------------------

def _night_with(label_day, n_images, stain_at, moth_at, stain_every=1, start_id=1, first_det=1,
                moth_look=None):
    start = T0 + dt.timedelta(days=label_day)
    ims = images(n_images, 5.0, start_id, start)
    dets = []

    def add(t, x, y, size, look):
        dets.append(NightDetection(first_det + len(dets), ims[t].image_id,
                                   (x - size / 2, y - size / 2, x + size / 2, y + size / 2), 0.8,
                                   {}, unit(look) + 0.01 * unit(len(dets) + 77)))

    for t in range(n_images):
        if stain_at and t % stain_every == 0:
            add(t, *stain_at, 30, look=50)
        add(t, *moth_at, 80, look=60 + label_day if moth_look is None else moth_look)  # rests all night
        for k in range(5):  # other insects resting all night, elsewhere each night
            add(t, 300 + 250 * k + 120 * label_day, 1800 - 100 * label_day, 40, look=200 + k + 10 * label_day)
    return NightInput(label_day, start.date().isoformat(), ims, dets)


def test_fixtures_need_the_same_place_on_other_nights():
    nights = [_night_with(0, 12, (1000, 400), (2500, 1200), start_id=1, first_det=1),
              _night_with(1, 10, (1003, 402), (1500, 600), start_id=100, first_det=1000)]
    results = track_nights(nights)
    for night in nights:
        r = results[night.key]
        stain = occ_of(r, night.detections[0].detection_id)
        moth = occ_of(r, night.detections[1].detection_id)
        assert stain.fixture and "other night" in stain.fixture_reason
        assert stain.n_detections == len(night.images)
        assert not moth.fixture  # resting all night, but elsewhere on the other night
        assert {c.key for c in r.fixture_candidates} >= {stain.key, moth.key}
        assert stain not in r.counted() and moth in r.counted()
    alone = track_nights(nights[:1])[0]
    assert not any(o.fixture for o in alone.occurrences)  # one night cannot tell


def test_a_flickering_fixture_is_still_one_place_and_a_rare_one_is_not():
    p = TrackingParams(relink=False, max_missed_images=0)
    nights = [_night_with(0, 12, (1000, 400), (2500, 1200), stain_every=1),
              _night_with(1, 12, (1000, 400), (1500, 600), stain_every=1, start_id=100, first_det=1000)]
    # night 0: the stain is missed in 2 of 12 images; with no missed image allowed and no
    # re-linking, it falls apart into three tracks at one place (present in 83 % of images)
    stain_box = nights[0].detections[0].box
    missed = {nights[0].images[3].image_id, nights[0].images[7].image_id}
    nights[0] = NightInput(0, "d0", nights[0].images,
                           [d for d in nights[0].detections
                            if not (d.box == stain_box and d.image_id in missed)])
    results = track_nights(nights, p)
    stains = [o for o in results[0].occurrences
              if any(d.box == stain_box for d in nights[0].detections if d.detection_id == o.key)]
    assert len(stains) == 3 and all(o.fixture for o in stains)  # images 0-2, 4-6, 8-11
    rare = [_night_with(0, 12, (1000, 400), (2500, 1200), stain_every=3),
            _night_with(1, 12, (1000, 400), (1500, 600), stain_every=3, start_id=100, first_det=1000)]
    assert not any(o.fixture for r in track_nights(rare).values() for o in r.occurrences)


def test_flag_fixtures_over_stored_candidates_and_settings():
    nights = [_night_with(d, 8, (1000, 400), (2500 - 300 * d, 1200), start_id=100 * d + 1,
                          first_det=1000 * d + 1) for d in range(3)]
    results = {n.key: track_night(n.images, n.detections) for n in nights}
    candidates = {k: r.fixture_candidates for k, r in results.items()}
    flags = flag_fixtures(candidates, TrackingParams(), {n.key: n.label for n in nights})
    assert all(len(f) == 1 for f in flags.values())
    reason = next(iter(flags[0].values()))
    assert "2 other nights (2023-06-02, 2023-06-03)" in reason
    strict = flag_fixtures(candidates, TrackingParams(fixture_min_nights=4))
    assert not any(strict.values())
    assert flag_fixtures({}) == {}


def test_a_coincidence_on_two_of_many_nights_is_no_fixture():
    # ten nights with a stain at one place; on two of them a moth of the same species (alike)
    # rests all night on the same spot: 2 of 10 nights is below fixture_min_night_fraction
    nights = [_night_with(d, 6, (1000, 400), (2500, 1200) if d in (2, 7) else (400 + 300 * d, 900),
                          start_id=100 * d + 1, first_det=1000 * d + 1,
                          moth_look=99 if d in (2, 7) else None) for d in range(10)]
    results = track_nights(nights)
    for night in nights:
        r = results[night.key]
        assert occ_of(r, night.detections[0].detection_id).fixture
        assert not occ_of(r, night.detections[1].detection_id).fixture
    two = track_nights([nights[2], nights[7]])  # only those two nights: it looks like a fixture
    assert occ_of(two[2], nights[2].detections[1].detection_id).fixture


# ---- label vote, best crop ----------------------------------------------------------------

def test_vote_is_score_weighted_per_rank():
    def det(i, labels):
        return NightDetection(i, 1, (0, 0, 10, 10), 0.9, labels)

    dets = [det(1, {"binary": [("moth", 0.9)], "species": [("A", 0.4), ("B", 0.35)]}),
            det(2, {"binary": [("moth", 0.8)], "species": [("B", 0.9), ("A", 0.05)]}),
            det(3, {"binary": [("moth", 0.7)], "species": [("A", 0.45)]}),
            det(4, {"binary": [("nonmoth", 0.6)]})]
    votes = vote(dets)
    assert votes["species"].label == "B"  # 1.25 against 0.90, although A is top-1 twice
    assert votes["species"].score == pytest.approx(1.25 / 3)
    assert votes["species"].support == pytest.approx(0.75) and votes["species"].n == 3
    assert votes["binary"].label == "moth" and votes["binary"].score == pytest.approx(2.4 / 4)
    assert choose_label(votes, 0.5).rank == "species"
    assert choose_label(votes, 0.8).rank == "binary"
    tie = vote([det(1, {"order": [("Lepidoptera", 0.5)]}), det(2, {"order": [("Diptera", 0.5)]})])
    assert tie["order"].label == "Diptera"  # ties: alphabetical, so re-runs agree
    assert choose_label({}, 0.5) is None


def test_occurrence_label_and_best_crop_avoid_the_image_edge():
    night = Night(4)
    labels = {"binary": [("moth", 0.9)], "species": [("Noctua pronuba", 0.8)]}
    cut = night.add(0, 60, 1000, 130, look=3, score=0.99, labels=labels)  # cut by the left edge
    night.add(1, 110, 1000, 90, look=3, score=0.9, labels=labels)
    blurry = night.add(2, 111, 1000, 100, look=3, score=0.9, labels=labels, sharpness=1.0)
    sharp = night.add(3, 111, 1000, 100, look=3, score=0.9, labels=labels, sharpness=4.0)
    r = night.track()
    occ = occ_of(r, cut)
    assert occ.detection_ids == (cut, cut + 1, blurry, sharp)
    # the largest crop not cut by the edge; sharpness counts only when every crop has one
    assert occ.best_detection_id == blurry
    assert (occ.label, occ.label_rank) == ("Noctua pronuba", "species")
    assert occ.label_score == pytest.approx(0.8)
    assert (occ.first_seen, occ.last_seen) == (night.images[0].captured, night.images[3].captured)
    night2 = Night(2)
    x = night2.add(0, 500, 500, 60, sharpness=1.0)
    y = night2.add(1, 500, 500, 60, sharpness=3.0)
    assert occ_of(night2.track(), x).best_detection_id == y


# ---- pinned occurrences -------------------------------------------------------------------

def test_pinned_occurrences_stay_as_a_person_made_them():
    night = Night(6)
    a = [night.add(t, 500, 500, look=1) for t in range(3)]
    b = [night.add(t, 900, 500, look=2) for t in range(3)]
    later_a = [night.add(t, 501, 500, look=1) for t in range(3, 6)]
    # a person joined a[0], a[1] and b[2] (say they know better); the machine must keep it
    pinned = PinnedOccurrence(77, (a[0], a[1], b[2]))
    r = night.track(pinned=[pinned])
    occ = occ_of(r, a[0])
    assert occ.pinned_key == 77 and occ.pinned and occ.key == a[0]
    assert set(occ.detection_ids) >= {a[0], a[1], b[2]}
    assert not same(r, a[0], a[2])  # a[2] is inside the pinned span: never added
    assert same(r, a[2], *later_a) and not occ_of(r, a[2]).pinned  # the machine goes on around it
    assert occ_of(r, b[0]).pinned_key is None


def test_new_images_extend_a_pinned_occurrence_only_at_its_ends():
    night = Night(6)
    a = [night.add(t, 500, 500, look=1, noise=0.01) for t in range(6)]
    pinned = [PinnedOccurrence(5, tuple(a[:3]))]
    r = night.track(pinned=pinned)
    occ = occ_of(r, a[0])
    assert occ.detection_ids == tuple(a) and occ.added_detection_ids == tuple(a[3:])
    assert r.stats.pinned_extended == 1
    kept = night.track(TrackingParams(extend_pinned=False), pinned)
    assert occ_of(kept, a[0]).detection_ids == tuple(a[:3]) and same(kept, *a[3:])


def test_two_pinned_occurrences_are_never_joined():
    night = Night(9)
    a = [night.add(t, 500, 500, look=1, noise=0.01) for t in range(9)]
    r = night.track(pinned=[PinnedOccurrence(1, tuple(a[:3])), PinnedOccurrence(2, tuple(a[6:]))])
    assert occ_of(r, a[0]).pinned_key == 1 and occ_of(r, a[8]).pinned_key == 2
    assert same(r, *a[3:6]) and sum(o.pinned for o in r.occurrences) == 2
    assert len({r.occurrence_of[d] for d in a}) == 2  # the machine part joined one of them


def test_pinned_input_errors():
    night = Night(2)
    d = night.add(0, 500, 500)
    with pytest.raises(UserInputError, match="not among"):
        night.track(pinned=[PinnedOccurrence(1, (99999,))])
    with pytest.raises(UserInputError, match="two pinned"):
        night.track(pinned=[PinnedOccurrence(1, (d,)), PinnedOccurrence(2, (d,))])


# ---- determinism, incremental, input checks -----------------------------------------------

def _scene(seed, n_images=12, insects=30):
    rng = np.random.default_rng(seed)
    night = Night(n_images)
    pos = rng.uniform(200, 1800, (insects, 2))
    for t in range(n_images):
        pos += rng.normal(0, 3, pos.shape)
        for k in range(insects):
            if rng.random() > 0.1:
                night.add(t, pos[k, 0], pos[k, 1], 60, look=k, noise=0.05)
    return night


def test_same_night_same_result_whatever_the_input_order():
    night = _scene(3)
    ref = night.track()
    shuffled = list(night.dets)
    random.Random(1).shuffle(shuffled)
    other = track_night(list(reversed(night.images)), shuffled)
    assert [o.detection_ids for o in ref.occurrences] == [o.detection_ids for o in other.occurrences]
    assert ref.occurrences == other.occurrences


def test_re_tracking_with_more_images_keeps_earlier_occurrence_keys():
    night = _scene(4)
    half_images = night.images[:6]
    half = track_night(half_images, [d for d in night.dets if d.image_id <= half_images[-1].image_id])
    full = night.track()
    keys_half = {o.key for o in half.occurrences}
    keys_full = {o.key for o in full.occurrences}
    assert len(keys_half - keys_full) <= 1  # an occurrence key is its first detection


def test_bad_input_gets_a_sentence():
    ims = images(2)
    ok = NightDetection(1, 1, (0, 0, 10, 10), 0.9)
    cases = [
        (ims, [ok, ok], "listed twice"),
        (ims, [NightDetection(2, 9, (0, 0, 10, 10), 0.9)], "not among the night's images"),
        (ims, [NightDetection(2, 1, (10, 0, 5, 10), 0.9)], "invalid box"),
        (ims, [NightDetection(2, 1, (0, 0, float("nan"), 10), 0.9)], "invalid box"),
        ([NightImage(1, None, W, H)], [], "no capture time"),
        (ims + ims[:1], [], "listed twice"),
        (ims, [NightDetection(2, 1, (0, 0, 10, 10), 0.9, embedding=np.ones(4)),
               NightDetection(3, 2, (0, 0, 10, 10), 0.9, embedding=np.ones(8))], "different lengths"),
    ]
    for ims_, dets, message in cases:
        with pytest.raises(UserInputError, match=message):
            track_night(ims_, dets)
    with pytest.raises(UserInputError, match="max_move must be above 0"):
        TrackingParams(max_move=0)
    with pytest.raises(UserInputError, match="between 0 and 1"):
        TrackingParams(fixture_min_presence=1.5)


def test_empty_night_and_zero_embeddings():
    assert track_night(images(3), []).occurrences == ()
    night = Night(2, background=0)
    a = night.add(0, 500, 500, look=None)
    night.dets[-1] = NightDetection(a, night.images[0].image_id, night.dets[-1].box, 0.9,
                                    embedding=np.zeros(32))  # no information: treated as missing
    b = night.add(1, 500, 500, look=3)
    assert same(night.track(), a, b)


def test_params_round_trip_through_settings():
    p = TrackingParams(max_move=2.5, relink=False)
    assert TrackingParams.from_dict(p.to_dict()) == p
    assert TrackingParams.from_dict({"max_move": 2.5, "from_a_newer_version": 1}).max_move == 2.5
    assert TrackingParams.from_dict(None) == TrackingParams()


def test_embedding_bytes_are_float16_little_endian():
    v = np.array([0.5, -0.25, 1.0, 0.1], dtype=np.float32)
    data = encode_embedding(v)
    assert data == np.array(v, dtype="<f2").tobytes() and len(data) == 8
    np.testing.assert_allclose(decode_embedding(data), v, atol=1e-3)
    assert decode_embedding(None) is None and decode_embedding(b"") is None
    with pytest.raises(UserInputError, match="damaged"):
        decode_embedding(b"\x00\x01\x02")
    with pytest.raises(UserInputError):
        encode_embedding([float("inf")])


def test_max_n_counts_individuals_seen_together():
    rows = [(1, 10, "A"), (1, 11, "A"), (1, 12, "B"), (2, 10, "A"), (2, 11, "A"), (2, 13, "A"),
            (2, 13, "A"), (3, 14, None)]
    out = max_n(rows)
    assert (out["A"].count, out["A"].image_id) == (3, 2)
    assert (out["B"].count, out[None].count) == (1, 1)
    night = _scene(5, n_images=4, insects=6)
    tracks = night.track()
    best = night_max_n(tracks)
    assert best[None].count == max(sum(1 for d in night.dets if d.image_id == im.image_id)
                                   for im in night.images)


def test_track_nights_is_a_job():
    nights = [_night_with(d, 4, (1000, 400), (2000, 900), start_id=10 * d + 1, first_det=100 * d + 1)
              for d in range(2)]
    events = []
    track_nights(nights, emit=events.append)
    assert [e.done for e in events] == [1, 2] and events[-1].unit == "nights"
    control = JobControl()
    control.cancel()
    with pytest.raises(Cancelled):
        track_nights(nights, control=control)


# ---- goals on synthetic nights (benchmarks/tracking_eval.py, fixed seed) -----------------

@pytest.mark.slow
def test_synthetic_nights_meet_the_goals(small_trap_images):
    import torch

    from benchmarks.tracking_eval import combine, synthetic_scores
    from benchmarks.tracking_nights import SceneConfig
    from benchmarks.tracking_scenes import harvest_sprites

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        sprites = harvest_sprites(small_trap_images, max_side=1024)
        assert len(sprites) >= 60
        cfg = SceneConfig(width=1024, height=540, nights=2, frames=40)
        parts = synthetic_scores(sprites, cfg, seed=0, params=TrackingParams())
    finally:
        torch.set_num_threads(previous)
    total = combine("synthetic", parts)
    assert abs(total.count_error) <= 0.10, total.line()
    assert total.link_precision >= 0.95 and total.link_recall >= 0.95, total.line()
    assert total.fixture_flagged >= 0.9 and total.insects_flagged <= 0.01, total.line()
    assert total.label_accuracy >= 0.85, total.line()


def test_hand_labels_cover_every_box():
    import json
    from pathlib import Path

    data = json.loads((Path(__file__).parent / "data" / "tracking" / "sequential-identities.json").read_text())
    objects = data["objects"]
    assert {o["kind"] for o in objects.values()} <= {"insect", "fragment", "unsure", "mark"}
    used = set()
    for frame in data["frames"]:
        assert frame["file"].startswith("sequential/") and len(frame["size"]) == 2
        in_frame = [b["object"] for b in frame["boxes"]]
        assert len(in_frame) == len(set(in_frame))  # one box per object and frame
        used |= set(in_frame)
    assert used == set(objects)
    for name, obj in objects.items():
        if obj["kind"] == "fragment":
            assert objects[obj["part_of"]]["kind"] == "insect", name
    assert len(data["frames"]) == 5


@pytest.mark.slow
def test_hand_labels_match_what_the_detector_finds(shared_images):
    """The labelled boxes are the built-in detector's (default settings, full resolution), so
    the real-frame evaluation can be reproduced; checked on the first frame.

    They were drawn on the boxes of the detector before issue 17 (commit aec510d). Its
    successor returns the same boxes for every insect, fragment and unsure speck, and no
    longer returns some of the ones labelled "mark" (sheet texture, a dark dot: rejected by
    its rules or scored below min_score): those may be missing, but where one is found its box is
    the labelled one."""
    import json
    from pathlib import Path

    import torch
    from PIL import Image

    from trapgui.ml.builtin_detector import BuiltinDetector

    data = json.loads((Path(__file__).parent / "data" / "tracking" / "sequential-identities.json").read_text())
    frame = data["frames"][0]
    with Image.open(shared_images / frame["file"]) as im:
        pixels = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        out = BuiltinDetector().detect([pixels])[0]
    finally:
        torch.set_num_threads(previous)
    found = out.boxes.numpy()
    kinds = {name: obj["kind"] for name, obj in data["objects"].items()}
    # every labelled box but the marks is found again (a pixel of float noise allowed)
    for b in frame["boxes"]:
        x1, y1, x2, y2 = b["box"]
        iw = np.clip(np.minimum(found[:, 2], x2) - np.maximum(found[:, 0], x1), 0, None)
        ih = np.clip(np.minimum(found[:, 3], y2) - np.maximum(found[:, 1], y1), 0, None)
        inter = iw * ih
        union = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1]) + (x2 - x1) * (y2 - y1) - inter
        iou = inter / union
        if kinds[b["object"]] == "mark" and not (iou > 0).any():
            continue  # removed by the artefact rules
        assert iou.max() > 0.9, b
