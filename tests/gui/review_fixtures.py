"""A real night to review: the five shared sequential frames (real photographs, read in place),
their hand-labelled boxes written as a pipeline's results with machine labels, and tracked
with the real tracking job. Also a synthetic night of any size for the benchmark."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy import insert, select, update

from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Deployment, Detection, Image, Job, Night, Occurrence
from trapgui.pipeline.tracking_job import track_catalogue_nights
from trapgui.scan.indexer import scan_folder

REPO = Path(__file__).resolve().parents[2]
SEQUENTIAL = REPO.parent / "shared" / "trap-images" / "sequential"
IDENTITIES = REPO / "tests" / "data" / "tracking" / "sequential-identities.json"
SPECIES = ("Noctua pronuba", "Xestia c-nigrum", "Agrotis ipsilon", "Ochropleura plecta",
           "Hypena scabra")


def machine_label(name: str, k: int) -> tuple[str, str, float]:
    if name.startswith("lacewing"):
        return "Neuroptera", "order", 0.81
    if name.startswith("moth"):
        return SPECIES[k % len(SPECIES)], "species", round(0.55 + 0.09 * (k % 5), 2)
    return "nonmoth", "binary", 0.62


def build_sequential(db) -> tuple[int, int]:
    """(pipeline id, night id) of the tracked sequential night."""
    dep_id = scan_folder(db, SEQUENTIAL).deployment_id
    pid = jobqueue.get_or_create_pipeline(db, "r" * 64, "builtin + species",
                                          {"detector": "builtin", "species": "sp"})
    data = json.loads(IDENTITIES.read_text())
    names = sorted(data["objects"])
    with db.session() as s:
        images = {rel: i for rel, i in s.execute(select(Image.rel_path, Image.id)
                                                 .where(Image.deployment_id == dep_id))}
    results = []
    for frame in data["frames"]:
        image_id = images[Path(frame["file"]).name]
        dets = []
        for b in frame["boxes"]:
            label, rank, score = machine_label(b["object"], names.index(b["object"]))
            classes = [ClassificationResult("bin", Rank.BINARY,
                                            "nonmoth" if rank == "binary" else "moth", 0.9,
                                            ["moth"], [0.9])]
            if rank != "binary":
                classes.append(ClassificationResult("sp", Rank(rank), label, score, [label],
                                                    [score]))
            dets.append(DetectionResult(Box(*b["box"]), b["score"], "builtin", classes))
        results.append(ImageResult(image_id, dets))
    with db.write_session() as s:
        jobqueue.record_results(s, pid, None, results)
        night = s.execute(select(Image.night_id).where(Image.deployment_id == dep_id)).scalar()
    track_catalogue_nights(db, pid, [night])
    return pid, night


def build_synthetic(db, occurrences: int, *, image_path: str = "/nowhere/frame.jpg") -> tuple[int, int]:
    """A night with ``occurrences`` occurrences of one detection each, written directly (the
    benchmark measures review, not tracking); crops point at a missing file."""
    pid = jobqueue.get_or_create_pipeline(db, "s" * 64, "synthetic", {"detector": "builtin"})
    with db.write_session() as s:
        dep = s.execute(insert(Deployment).values(path="/nowhere", name="synthetic")
                        .returning(Deployment.id)).scalar_one()
        night = s.execute(insert(Night).values(deployment_id=dep, date=dt.date(2022, 7, 1))
                          .returning(Night.id)).scalar_one()
        image = s.execute(insert(Image).values(
            deployment_id=dep, night_id=night, rel_path=Path(image_path).name, size=1, mtime=0.0,
            width=4096, height=2160, captured_at=dt.datetime(2022, 7, 1, 22), time_source="exif",
            state="ok").returning(Image.id)).scalar_one()
        start = dt.datetime(2022, 7, 1, 22)
        det_rows, occ_rows = [], []
        for k in range(occurrences):
            x, y = 20 + (k % 60) * 66, 20 + (k // 60 % 30) * 70
            det_rows.append(dict(id=k + 1, image_id=image, pipeline_id=pid, x1=x, y1=y,
                                 x2=x + 60, y2=y + 60, score=0.5 + (k % 50) / 100,
                                 detector="builtin", top_label=SPECIES[k % 5], top_rank="species",
                                 top_score=0.4 + (k % 60) / 100, occurrence_id=k + 1))
            occ_rows.append(dict(id=k + 1, pipeline_id=pid, deployment_id=dep, night_id=night,
                                 first_image_id=image, last_image_id=image,
                                 first_seen=start + dt.timedelta(seconds=k),
                                 last_seen=start + dt.timedelta(seconds=k), n_detections=1,
                                 best_detection_id=None, label=SPECIES[k % 5],
                                 label_rank="species", label_score=0.4 + (k % 60) / 100,
                                 fixture=False, fixture_reviewed=False, pinned=False,
                                 created_by="machine", updated_at=0.0))
        s.execute(insert(Occurrence), occ_rows)
        s.execute(insert(Detection), det_rows)
        s.execute(update(Occurrence).where(Occurrence.night_id == night)
                  .values(best_detection_id=Occurrence.id))
        s.execute(insert(Job).values(image_id=image, pipeline_id=pid, state="done", attempts=0,
                                     interruptions=0, updated_at=0.0))
    return pid, night
