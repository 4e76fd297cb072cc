"""A real catalogue's images and a pipeline's queue of them, for the queue and source tests."""

from __future__ import annotations

from sqlalchemy import insert, select

from trapgui.db import jobqueue
from trapgui.db.tables import Deployment, Image


def add_images(db, n: int) -> list[int]:
    """``n`` 400x300 images of a new trap at /traps/<n>, in id order."""
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path=f"/traps/{n}", name="t").returning(
            Deployment.id)).scalar_one()
        s.execute(insert(Image), [{"deployment_id": dep, "rel_path": f"{i:04d}.jpg", "size": 1,
                                   "mtime": 1.0, "width": 400, "height": 300,
                                   "time_source": "none"} for i in range(n)])
        return list(s.scalars(select(Image.id).where(Image.deployment_id == dep)
                              .order_by(Image.id)))


def queue_images(db, n: int) -> tuple[int, list[int]]:
    """(pipeline id, image ids): ``n`` new images, each with a pending job of one pipeline."""
    ids = add_images(db, n)
    pid = jobqueue.get_or_create_pipeline(db, jobqueue.pipeline_key({"d": 1}), "p", {"d": 1})
    jobqueue.enqueue(db, pid, ids)
    return pid, ids
