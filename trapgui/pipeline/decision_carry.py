"""Carry a person's decisions from the night's other model configurations into one that was
just tracked (``pipeline.tracking_job`` calls it in the night's write transaction, after the
occurrences are written). Reads and writes: ``db.review_carry``; the matching:
``tracking.decision_match``; the rules: docs/review.md, "Decisions follow the insect"."""

from __future__ import annotations

from trapgui.db import review_carry
from trapgui.tracking.decision_match import (DecidedOccurrence, SourceFrame, TargetDetection,
                                             plan_carries)


def carry_into_night(session, pipeline_id: int, night_id: int) -> review_carry.CarryStats:
    """Every decision of another configuration of the night not carried yet: carried where it
    is one-to-one, recorded as needing a look where not."""
    inputs = review_carry.read_inputs(session, pipeline_id, night_id)
    if inputs is None:
        # nothing waits: only stale "needs a look" rows of this night may go
        return review_carry.write_plans(session, pipeline_id, night_id, (), ())
    decided = [DecidedOccurrence(
        src.occurrence_id, src.pipeline_id,
        tuple(SourceFrame(d, img, box, human) for d, img, box, human in src.frames),
        src.grouping, src.decided_at) for src in inputs.sources]
    targets = [TargetDetection(d, img, box, occ) for d, img, box, occ in inputs.targets]
    plans = plan_carries(decided, targets, inputs.target_images, inputs.source_images,
                         inputs.pinned_targets)
    return review_carry.write_plans(session, pipeline_id, night_id, inputs.sources, plans)
