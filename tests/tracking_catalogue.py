"""A real catalogue (SQLite file) holding synthetic nights of one trap, written through the
engine's own result writer (``jobqueue.record_results``), for the tracking-job tests.

Each night: frames 5 minutes apart; insects resting at known places (a little jitter, an
embedding of their own); a fixture (a screw of the frame) at the same place in every frame of
every night. Identities are known: ``truth[detection_id] -> name``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
from sqlalchemy import insert, select

from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Deployment, Detection, Image, Night
from trapgui.tracking import encode_embedding

W, H = 2000, 1000
FIXTURE = (100.0, 100.0, 140.0, 140.0)  # a screw, every frame of every night


@dataclass
class Catalogue:
    db: object
    pipeline_id: int
    deployment_id: int
    nights: dict = field(default_factory=dict)  # date -> night id
    truth: dict = field(default_factory=dict)  # detection id -> identity
    frames: dict = field(default_factory=dict)  # night id -> frames written so far
    rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(7))
    looks: dict = field(default_factory=dict)  # identity -> unit vector


def make_catalogue(db, name: str = "trap") -> Catalogue:
    pid = jobqueue.get_or_create_pipeline(db, "k" * 64, "builtin", {"detector": "builtin"})
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path=f"/traps/{name}", name=name)
                        .returning(Deployment.id)).scalar_one()
    return Catalogue(db, pid, dep)


def _look(cat: Catalogue, identity: str) -> np.ndarray:
    if identity not in cat.looks:
        v = cat.rng.normal(size=128)
        cat.looks[identity] = v / np.linalg.norm(v)
    return cat.looks[identity]


def insect_box(k: int) -> tuple[float, float, float, float]:
    x, y = 400 + 300 * k, 300 + 120 * (k % 3)
    return (x, y, x + 80.0, y + 60.0)


def add_frames(cat: Catalogue, date: dt.date, n: int, insects: dict[str, int],
               fixture: bool = True, start_hour: int = 22) -> list[int]:
    """``n`` more frames of the night of ``date``; ``insects``: identity -> place number.
    Returns the new image ids."""
    with cat.db.write_session() as s:
        night_id = cat.nights.get(date)
        if night_id is None:
            night_id = s.execute(insert(Night).values(deployment_id=cat.deployment_id, date=date)
                                 .returning(Night.id)).scalar_one()
            cat.nights[date] = night_id
        first = cat.frames.get(night_id, 0)
        image_ids = []
        for f in range(first, first + n):
            when = dt.datetime.combine(date, dt.time(start_hour)) + dt.timedelta(minutes=5 * f)
            image_ids.append(s.execute(insert(Image).values(
                deployment_id=cat.deployment_id, night_id=night_id,
                rel_path=f"{date.isoformat()}/{f:03d}.jpg", size=1, mtime=0.0, width=W, height=H,
                captured_at=when, time_source="filename", state="ok").returning(Image.id)).scalar_one())
        cat.frames[night_id] = first + n
        results, names = [], []
        for image_id in image_ids:
            dets = []
            placed = [(name, insect_box(k)) for name, k in insects.items()]
            if fixture:
                placed.append(("fixture", FIXTURE))
            for name, box in placed:
                jitter = cat.rng.normal(0, 1.5, 4) if name != "fixture" else cat.rng.normal(0, 0.3, 4)
                b = Box(*(np.array(box) + jitter).tolist())
                emb = _look(cat, name) + cat.rng.normal(0, 0.08, 128)
                label = "nonmoth" if name == "fixture" else "moth"
                dets.append(DetectionResult(
                    b, 0.9, "builtin",
                    [ClassificationResult("bin", Rank.BINARY, label, 0.9, [label], [0.9])],
                    encode_embedding(emb / np.linalg.norm(emb)), 1.0))
                names.append(name)
            results.append(ImageResult(image_id, dets))
        jobqueue.record_results(s, cat.pipeline_id, None, results)
        new = s.execute(select(Detection.id).where(Detection.image_id.in_(image_ids))
                        .order_by(Detection.image_id, Detection.id)).scalars().all()
    cat.truth.update(zip(new, names))
    return image_ids
