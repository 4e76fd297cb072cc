"""The matching rules of ``tracking.decision_match`` on hand-made frames (pure: no catalogue)."""

from __future__ import annotations

from trapgui.tracking.decision_match import (DecidedOccurrence, SourceFrame, TargetDetection,
                                             iou, plan_carries)

BOX = (100.0, 100.0, 180.0, 160.0)


def _shift(box, dx):
    return (box[0] + dx, box[1], box[2] + dx, box[3])


def _source(occ, images, frame_set=False, pipeline=1, human=()):
    return DecidedOccurrence(occ, pipeline, tuple(
        SourceFrame(1000 * occ + i, i, BOX, i in human) for i in images), frame_set)


def _targets(spec):
    """spec: image -> occurrence (None: no box there); boxes at BOX."""
    return [TargetDetection(5000 + i, i, BOX, occ) for i, occ in spec.items() if occ is not None]


def test_iou():
    assert iou(BOX, BOX) == 1.0
    assert iou(BOX, _shift(BOX, 200)) == 0.0
    # 80 px wide, shifted 27 px: 53 / 107 just under one half
    assert 0.49 < iou(BOX, _shift(BOX, 27)) < 0.5


def test_majority_and_one_to_one():
    images = set(range(6))
    src = _source(1, range(6))
    (plan,) = plan_carries([src], _targets({i: 7 for i in range(4)}), images, {1: images}, set())
    assert (plan.kind, plan.target_id) == ("occurrence", 7)
    # 3 of 6 frames is not a majority
    (plan,) = plan_carries([src], _targets({i: 7 for i in range(3)}), images, {1: images}, set())
    assert plan.kind == "check" and plan.reason == "only 3 of its 6 frames match occurrence 7"
    # boxes that do not overlap enough match nothing
    far = [TargetDetection(5000 + i, i, _shift(BOX, 27), 7) for i in range(6)]
    (plan,) = plan_carries([src], far, images, {1: images}, set())
    assert plan.reason == "none of its 6 frames has a box of this configuration"
    # only the images the new configuration processed count
    (plan,) = plan_carries([src], _targets({0: 7, 1: 7}), {0, 1}, {1: images}, set())
    assert plan.kind == "occurrence"
    (plan,) = plan_carries([src], [], {9}, {1: images}, set())
    assert plan.kind == "skip"
    # a target a person decided in the new configuration keeps that decision
    (plan,) = plan_carries([src], _targets({i: 7 for i in range(6)}), images, {1: images}, {7})
    assert plan.kind == "skip"


def test_split_merge_and_joined_are_checks():
    images = set(range(6))
    src = _source(1, range(6))
    (plan,) = plan_carries([src], _targets({0: 7, 1: 7, 2: 7, 3: 7, 4: 8, 5: 8}), images,
                           {1: images}, set())
    assert plan.kind == "check" and plan.look_at == (7, 8)
    assert plan.reason.startswith("this configuration splits it into occurrences 7 (4 of its")
    two = [_source(1, range(3)), _source(2, range(3, 6))]
    plans = plan_carries(two, _targets({i: 7 for i in range(6)}), images, {1: images}, set())
    assert [p.kind for p in plans] == ["check", "check"]
    assert plans[0].reason == "this configuration joins it with decided occurrence 2 into occurrence 7"
    # joined with boxes nobody decided: T holds 4 boxes, 2 of them the decided one's
    short = _source(1, range(2))
    (plan,) = plan_carries([short], _targets({i: 7 for i in range(4)}), images, {1: images},
                           set())
    assert plan.reason == "occurrence 7 of this configuration also holds 2 boxes that are not this occurrence's"
    # but boxes on images the source configuration never processed do not count against it
    (plan,) = plan_carries([short], _targets({i: 7 for i in range(4)}), images, {1: {0, 1}},
                           set())
    assert (plan.kind, plan.target_id) == ("occurrence", 7)


def test_a_persons_frame_set_takes_its_boxes_and_copies_drawn_ones():
    images = set(range(6))
    grouped = _source(1, range(6), frame_set=True, human={4, 5})
    plans = plan_carries([grouped], _targets({0: 7, 1: 7, 2: 8, 3: 8}), images, {1: images},
                         set())
    (plan,) = plans
    assert plan.kind == "frames" and plan.target_id is None
    assert plan.detection_ids == (5000, 5001, 5002, 5003) and plan.copies == (1004, 1005)
    # exactly one existing occurrence: it is reused
    exact = _source(1, range(4), frame_set=True)
    (plan,) = plan_carries([exact], _targets({i: 7 for i in range(4)}), images, {1: images}, set())
    assert (plan.kind, plan.target_id) == ("frames", 7)
