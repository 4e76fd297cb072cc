"""Which occurrence of a model configuration is the same insect as an occurrence a person
decided in another configuration of the night (pure: plain rows in, a plan out; the catalogue
side is ``db.review_carry``, the job ``pipeline.decision_carry``). Documented in
docs/review.md, "Decisions follow the insect".

Frames are compared image by image: a decided occurrence's box on an image *matches* the
target configuration's box on the same image with the largest IoU, when that IoU is at least
``MIN_IOU`` (0.5; the rule is ``core.box_match``'s, also used when an image is processed
again with the same configuration). Only images the target configuration has processed count
("its frames").

- **One-to-one** (a decision on a machine-made track: confirm, relabel, reject, fixture): the
  decision goes to occurrence T when more than half of its frames match boxes of T, no box of
  another occurrence matches any of its frames, no other decided occurrence of the same
  configuration goes to T, and more than half of T's boxes on the images the source
  configuration processed match its boxes (T is not the insect joined with something else).
- **Frame sets** (the person's own grouping: merged, split, moved or drawn boxes, a deleted
  false box): the target boxes matching its frames become one occurrence, whatever the target
  configuration's tracker did; a box the person drew is the person's in every configuration, so
  where the target has no matching box it is copied. More than half of its frames must be
  matched (drawn boxes count as matched).
- Anything else is **not guessed**: a plan of kind ``check`` with the reason (split into
  several, joined with another decided one or with other detections, too few frames matched).
- A target occurrence a person already decided in the target configuration keeps that
  decision (kind ``skip``): a later decision there wins.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass

from trapgui.core.box_match import MIN_IOU, Box, best_match, iou


@dataclass(frozen=True, slots=True)
class SourceFrame:
    detection_id: int
    image_id: int
    box: Box
    human: bool = False  # drawn by a person (detector "human")


@dataclass(frozen=True, slots=True)
class DecidedOccurrence:
    occurrence_id: int
    pipeline_id: int
    frames: tuple[SourceFrame, ...]
    frame_set: bool  # its grouping is a person's (carried as frames, not by occurrence)
    decided_at: float = 0.0  # when; the latest of several configurations' decisions wins


@dataclass(frozen=True, slots=True)
class TargetDetection:
    detection_id: int
    image_id: int
    box: Box
    occurrence_id: int | None


@dataclass(frozen=True, slots=True)
class CarryPlan:
    source_id: int
    kind: str  # "occurrence" | "frames" | "check" | "skip"
    target_id: int | None = None  # occurrence: T; frames: an occurrence that is exactly the set
    detection_ids: tuple[int, ...] = ()  # frames: target boxes of the person's frame set
    copies: tuple[int, ...] = ()  # frames: source boxes a person drew, to copy
    look_at: tuple[int, ...] = ()  # check: target occurrences a person should look at
    reason: str | None = None  # check: why it was not carried (a clause)


def plan_carries(sources: Sequence[DecidedOccurrence], targets: Sequence[TargetDetection],
                 target_images: Set[int], source_images: Mapping[int, Set[int]],
                 decided_targets: Set[int], min_iou: float = MIN_IOU) -> list[CarryPlan]:
    """One plan per source (in the order given). ``target_images``: images the target
    configuration processed; ``source_images``: pipeline -> images it processed;
    ``decided_targets``: target occurrences a person decided in the target configuration."""
    by_image: dict[int, list[TargetDetection]] = {}
    for t in targets:
        by_image.setdefault(t.image_id, []).append(t)
    members: dict[int, set[int]] = {}
    for t in targets:
        if t.occurrence_id is not None:
            members.setdefault(t.occurrence_id, set()).add(t.detection_id)
    plans: dict[int, CarryPlan] = {}
    used: set[int] = set()  # target boxes a frame set took

    def best(frame: SourceFrame, exclude: Set[int]) -> TargetDetection | None:
        here = {t.detection_id: t for t in by_image.get(frame.image_id, ())}
        hit = best_match(frame.box, ((d, t.box) for d, t in here.items()), exclude, min_iou)
        return here.get(hit) if hit is not None else None

    ordered = sorted(sources, key=lambda s: (not s.frame_set, s.occurrence_id))
    label_only: list[tuple[DecidedOccurrence, list[SourceFrame], dict[int, TargetDetection]]] = []
    for src in ordered:
        frames = [f for f in src.frames if f.image_id in target_images]
        if not frames:  # none of its images processed by this configuration: not its insect
            plans[src.occurrence_id] = CarryPlan(src.occurrence_id, "skip")
            continue
        n = len(frames)
        if src.frame_set:
            plans[src.occurrence_id] = _frame_set(src, frames, best, used, members,
                                                  decided_targets)
            continue
        matched = {}
        for f in frames:
            t = best(f, used)
            if t is not None and t.occurrence_id is not None:
                matched[f.detection_id] = t
        occs = Counter(t.occurrence_id for t in matched.values())
        if not occs:
            plans[src.occurrence_id] = _check(src, (), f"none of its {n} frames has a box of "
                                              "this configuration")
        elif len(occs) > 1:
            parts = ", ".join(f"{o} ({k} of its {n} frames)" for o, k in occs.most_common())
            plans[src.occurrence_id] = _check(src, tuple(sorted(occs)),
                                              f"this configuration splits it into occurrences "
                                              f"{parts}")
        else:
            (target, k), = occs.items()
            if 2 * k <= n:
                plans[src.occurrence_id] = _check(src, (target,), f"only {k} of its {n} frames "
                                                  f"match occurrence {target}")
            else:
                label_only.append((src, frames, matched))
    image_of = {t.detection_id: t.image_id for t in targets}
    _one_to_one(label_only, plans, members, image_of, source_images, used, decided_targets)
    return [plans[s.occurrence_id] for s in sources]


def _frame_set(src, frames, best, used, members, decided_targets) -> CarryPlan:
    n = len(frames)
    taken, copies = [], []
    for f in frames:
        t = best(f, used)
        if t is not None:
            taken.append(t)
            used.add(t.detection_id)
        elif f.human:
            copies.append(f.detection_id)
    if 2 * (len(taken) + len(copies)) <= n:
        occs = tuple(sorted({t.occurrence_id for t in taken if t.occurrence_id is not None}))
        return _check(src, occs, f"only {len(taken) + len(copies)} of its {n} frames have a "
                      "box of this configuration")
    owners = {t.occurrence_id for t in taken}
    if owners & decided_targets:
        return CarryPlan(src.occurrence_id, "skip")
    ids = tuple(sorted(t.detection_id for t in taken))
    exact = None
    if not copies and len(owners) == 1:
        (only,) = owners
        if only is not None and members.get(only, set()) == set(ids):
            exact = only
    return CarryPlan(src.occurrence_id, "frames", exact, ids, tuple(copies))


def _one_to_one(label_only, plans, members, image_of, source_images, used, decided_targets):
    to_target: dict[int, list] = {}
    for src, frames, matched in label_only:
        target = next(iter(matched.values())).occurrence_id
        to_target.setdefault(target, []).append((src, frames, matched))
    for target, group in to_target.items():
        # several configurations' own decisions about one insect: the latest one is carried
        latest_per_pipeline: dict[int, list] = {}
        for entry in group:
            latest_per_pipeline.setdefault(entry[0].pipeline_id, []).append(entry)
        newest = max(latest_per_pipeline.values(), key=lambda es: max(e[0].decided_at for e in es))
        for entries in latest_per_pipeline.values():
            if entries is not newest:
                for src, _, _ in entries:
                    plans[src.occurrence_id] = CarryPlan(src.occurrence_id, "skip")
        if len(newest) > 1:
            ids = sorted(e[0].occurrence_id for e in newest)
            for src, _, _ in newest:
                others = ", ".join(str(i) for i in ids if i != src.occurrence_id)
                plans[src.occurrence_id] = _check(src, (target,), "this configuration joins it "
                                                  f"with decided occurrence {others} into "
                                                  f"occurrence {target}")
            continue
        (src, frames, matched), = newest
        own = {t.detection_id for t in matched.values()}
        seen = source_images.get(src.pipeline_id, set())
        theirs = [d for d in members.get(target, set()) - used if image_of[d] in seen]
        extra = len([d for d in theirs if d not in own])
        if 2 * (len(theirs) - extra) <= len(theirs):
            plans[src.occurrence_id] = _check(src, (target,), f"occurrence {target} of this "
                                              f"configuration also holds {extra} boxes that are "
                                              "not this occurrence's")
        elif target in decided_targets:
            plans[src.occurrence_id] = CarryPlan(src.occurrence_id, "skip")
        else:
            plans[src.occurrence_id] = CarryPlan(src.occurrence_id, "occurrence", target)


def _check(src: DecidedOccurrence, look_at: tuple[int, ...], reason: str) -> CarryPlan:
    return CarryPlan(src.occurrence_id, "check", look_at=tuple(look_at), reason=reason)


__all__ = ["CarryPlan", "DecidedOccurrence", "MIN_IOU", "SourceFrame", "TargetDetection",
           "iou", "plan_carries"]
