"""A catalogue whose nights hold images in every state a night can count: processed, failed
(a photo refused as not a trap sheet among them), unreadable (one of them done before it
became unreadable), queued, never queued and deleted since. ``EXPECTED`` is what every view
and export must count per night (``core.night_counts``: images = processed + failed +
unreadable + waiting, deleted files apart)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import insert, update

from tests.tracking_catalogue import Catalogue, add_frames, make_catalogue
from trapgui.db import jobqueue
from trapgui.db.tables import Image, Job
from trapgui.pipeline.tracking_job import track_catalogue_nights

N1, N2 = dt.date(2022, 6, 21), dt.date(2022, 6, 22)
FIELDS = ("images", "processed", "failed", "unreadable", "waiting")
# what each night must show: (images, processed, failed, unreadable, waiting), missing apart
EXPECTED = {N1.isoformat(): (12, 6, 2, 2, 2), N2.isoformat(): (6, 5, 1, 0, 0)}
MISSING = {N1.isoformat(): 1, N2.isoformat(): 0}


def _extra_images(cat, date, states: list[str]) -> list[int]:
    night_id = cat.nights[date]
    first = cat.frames.setdefault(("extra", date), 0)
    cat.frames[("extra", date)] = first + len(states)
    with cat.db.write_session() as s:
        return [s.execute(insert(Image).values(
            deployment_id=cat.deployment_id, night_id=night_id,
            rel_path=f"{date.isoformat()}/extra-{first + i}.jpg", size=1, mtime=0.0, width=10,
            height=10, captured_at=dt.datetime.combine(date, dt.time(23, first + i)),
            time_source="filename", state=state,
            error="empty file (0 bytes)" if state == "unreadable" else None)
            .returning(Image.id)).scalar_one() for i, state in enumerate(states)]


def _fail(cat, image_ids: list[int], reason: str) -> None:
    jobqueue.enqueue(cat.db, cat.pipeline_id, image_ids)
    with cat.db.write_session() as s:
        s.execute(update(Job).where(Job.image_id.in_(image_ids)).values(state="failed",
                                                                      error=reason))


def build_mixed(db) -> Catalogue:
    """Two tracked nights of one trap, with the extra images described above."""
    cat = make_catalogue(db)
    add_frames(cat, N1, 6, {"moth-a": 0, "moth-b": 1})
    add_frames(cat, N2, 5, {"moth-c": 2})
    track_catalogue_nights(db, cat.pipeline_id, [cat.nights[N1], cat.nights[N2]])
    # night 1: 2 unreadable, 2 failed (one refused as not a trap sheet), 1 queued, 1 never
    # queued, 1 deleted since; night 2: 1 failed
    unread = _extra_images(cat, N1, ["unreadable", "unreadable"])
    failed = _extra_images(cat, N1, ["ok", "ok"])
    queued, never, gone = _extra_images(cat, N1, ["ok", "ok", "missing"])
    _fail(cat, failed[:1], "Not a trap sheet: no lit sheet was found in the photo.")
    _fail(cat, failed[1:], "The image could not be decoded.")
    jobqueue.enqueue(cat.db, cat.pipeline_id, [queued, gone])
    _fail(cat, _extra_images(cat, N2, ["ok"]), "The image could not be decoded.")
    # an unreadable file whose job was done before it became unreadable is unreadable only
    jobqueue.enqueue(cat.db, cat.pipeline_id, unread[:1])
    with cat.db.write_session() as s:
        s.execute(update(Job).where(Job.image_id == unread[0]).values(state="done"))
    assert never not in (queued, gone)
    return cat
