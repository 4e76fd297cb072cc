"""Trap folders for the night cut-off tests: real JPEG files named by their capture time, one
every 20 minutes, and detections stored as the engine stores them (``jobqueue.complete``),
one box per insect at a place of its own in the frames it is present in.

The frames of a trap run from an afternoon to the next morning, so a cut-off at noon puts them
in one night and one at 18:00 splits them at 18:00; a few frames of a later afternoon make a
night that a cut-off at 18:00 empties (its frames go to the evening before)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from sqlalchemy import select

from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Deployment, Detection, Image
from tests.image_files import make_jpeg

STEP = dt.timedelta(minutes=20)
PIPELINE_KEY = "r" * 64

# identity -> (first frame, last frame, place, label): "a" sits across 18:00, "d" is on the
# afternoon that a cut-off at 18:00 moves to the evening before
INSECTS = {
    "a": (dt.time(16, 40), dt.time(19, 0), 0, "Noctua pronuba"),
    "b": (dt.time(21, 0), dt.time(23, 0), 1, "Agrotis exclamationis"),
    "c": (dt.time(2, 0), dt.time(3, 20), 2, "Noctua pronuba"),
    "d": (dt.time(13, 0), dt.time(14, 0), 3, "Xestia c-nigrum"),
}


def frame_times(day: dt.date) -> list[dt.datetime]:
    """16:00 on ``day`` to 06:00 the next morning, then 13:00-14:40 two days later."""
    out, t = [], dt.datetime.combine(day, dt.time(16))
    while t <= dt.datetime.combine(day + dt.timedelta(days=1), dt.time(6)):
        out.append(t)
        t += STEP
    t = dt.datetime.combine(day + dt.timedelta(days=2), dt.time(13))
    while t <= dt.datetime.combine(day + dt.timedelta(days=2), dt.time(14, 40)):
        out.append(t)
        t += STEP
    return out


def make_trap(folder: Path, day: dt.date) -> Path:
    for when in frame_times(day):
        make_jpeg(folder / f"{when:%Y%m%d%H%M%S}.jpg")
    return folder


def present(identity: str, when: dt.datetime, day: dt.date) -> bool:
    first, last, _, _ = INSECTS[identity]
    if identity == "d":
        span_day = day + dt.timedelta(days=2)
        return when.date() == span_day and first <= when.time() <= last
    if identity == "c":
        return when.date() == day + dt.timedelta(days=1) and first <= when.time() <= last
    return when.date() == day and first <= when.time() <= last


def box(place: int) -> Box:
    x, y = 100 + 300 * place, 200 + 50 * place
    return Box(x, y, x + 40, y + 30)


def store_detections(db, days: dict[str, dt.date]) -> int:
    """Process every image of the traps (``days``: trap name -> its first day): one box per
    insect present. Returns the pipeline id."""
    pid = jobqueue.get_or_create_pipeline(db, PIPELINE_KEY, "stored boxes", {"detector": "builtin"})
    with db.session() as s:
        rows = s.execute(select(Image.id, Image.captured_at, Deployment.name)
                         .join(Deployment, Deployment.id == Image.deployment_id)).all()
    jobqueue.enqueue(db, pid, [r[0] for r in rows])
    claimed = {c.image_id for c in jobqueue.claim(db, pid, "w1", len(rows), 600)}
    results = []
    for image_id, when, trap in rows:
        if image_id not in claimed:
            continue
        dets = []
        for identity, (_, _, place, label) in INSECTS.items():
            if present(identity, when, days[trap]):
                dets.append(DetectionResult(box(place), 0.9, "builtin", [
                    ClassificationResult("bin", Rank.BINARY, "moth", 0.95, ["moth"], [0.95]),
                    ClassificationResult("species", Rank.SPECIES, label, 0.8, [label], [0.8])]))
        results.append(ImageResult(image_id, dets))
    assert jobqueue.complete(db, pid, None, "w1", results) == len(results)
    return pid


def detections_of(db, identity: str, trap: str, day: dt.date) -> set[int]:
    place = INSECTS[identity][2]
    x1 = box(place).x1
    with db.session() as s:
        rows = s.execute(select(Detection.id, Image.captured_at).join(
            Image, Image.id == Detection.image_id).join(
            Deployment, Deployment.id == Image.deployment_id).where(
            Deployment.name == trap, Detection.x1 == x1)).all()
    return {d for d, when in rows if present(identity, when, day)}
