"""A processed catalogue with known individuals, for the export tests.

Real trap images (vermont: 3 images over 2 nights; panama: 4 images, 1 night) scanned into a
real catalogue, "processed" through the real queue with known detections, and tracked by hand
(tracking is another issue's work: occurrences are written here as the tracker would). Each
image has:

- insect A at (100, 50)-(300, 150), detector 0.95, species "Noctua pronuba" 0.8: one
  individual per night, identified;
- insect B at (400, 200)-(460, 260), detector 0.6, species "Xestia c-nigrum" 0.3 (below a 0.5
  classification threshold): one individual per night, not identified;
- a fixture at (10, 10)-(20, 30), detector 0.7, "nonmoth": flagged fixture, never counted;
- a faint box at (600, 300)-(640, 340), detector 0.2: its own individual, below a 0.5
  detection threshold.

except panama's last image, which is empty (a blank). So at thresholds (0.5, 0.5) each night has
1 Noctua pronuba and 1 unidentified individual.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from sqlalchemy import insert, select, update

from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank
from trapgui.db import jobqueue
from trapgui.db.tables import Deployment, Detection, Image, Occurrence
from trapgui.db.trap_metadata import update_trap
from trapgui.scan.indexer import scan_folder

MODELS = {"builtin": {"name": "Built-in detector", "version": "1.0"},
          "bin": {"name": "Moth / non-moth", "version": "2024"},
          "sp": {"name": "Quebec & Vermont species", "version": "v2"}}
CONFIG = {"format": 1, "detector": "builtin", "binary": "bin", "species": "sp", "order": None}
BOXES = {"A": (Box(100, 50, 300, 150), 0.95, "Noctua pronuba", 0.8),
         "B": (Box(400, 200, 460, 260), 0.6, "Xestia c-nigrum", 0.3),
         "F": (Box(10, 10, 20, 30), 0.7, None, None),
         "L": (Box(600, 300, 640, 340), 0.2, None, None)}
BLANK = "01-20231111032659-snapshot.jpg"  # panama's last image: nothing on the sheet


@dataclass
class Catalogue:
    db: object
    pipeline_id: int
    run_id: int
    images: dict[str, int]  # rel_path -> image id
    traps: dict[str, int]  # folder name -> deployment id
    occurrences: dict[tuple[int, str], int]  # (night id, A/B/F/L) -> occurrence id


def _detections(rel: str) -> list[DetectionResult]:
    if rel == BLANK:
        return []
    out = []
    for key, (box, score, species, sp_score) in BOXES.items():
        classes = [ClassificationResult("bin", Rank.BINARY, "nonmoth" if key == "F" else "moth",
                                        0.7 if key == "F" else 0.9)]
        if species:
            others = "Agrotis ipsilon"
            classes.append(ClassificationResult("sp", Rank.SPECIES, species, sp_score,
                                                [species, others], [sp_score, 0.1]))
        out.append(DetectionResult(box, score, "builtin", classes))
    return out


def build(db, trap_root, *, folders=("vermont", "panama"), metadata=True) -> Catalogue:
    traps = {}
    for folder in folders:
        traps[folder] = scan_folder(db, trap_root / folder).deployment_id
    pid = jobqueue.get_or_create_pipeline(db, "p1", "builtin + bin + sp", CONFIG)
    run = jobqueue.start_run(db, pid, models=MODELS, devices=["cpu"],
                             settings={"top_k": 2}, app_version="test")
    with db.session() as s:
        images = {rel: i for i, rel in s.execute(select(Image.id, Image.rel_path))}
    jobqueue.enqueue(db, pid, images.values())
    claimed = jobqueue.claim(db, pid, "w", 1000, 60)
    by_id = {v: k for k, v in images.items()}
    jobqueue.complete(db, pid, run, "w", [ImageResult(c.image_id, _detections(by_id[c.image_id]))
                                          for c in claimed])
    jobqueue.finish_run(db, run, status="finished", images_done=len(claimed), images_failed=0)
    occurrences = _track(db, pid)
    if metadata:
        set_metadata(db, traps)
    return Catalogue(db, pid, run, images, traps, occurrences)


def set_metadata(db, traps: dict[str, int]) -> None:
    if "vermont" in traps:
        update_trap(db, traps["vermont"], {
            "latitude": "44.4759", "longitude": "-73.2121", "coordinate_uncertainty_m": "12.5",
            "clock": "America/New_York", "site_name": "Burlington garden",
            "light_description": "LepiLED 15 W, dusk to dawn",
            "trap_description": "AMI trap, white sheet"})
    if "panama" in traps:
        update_trap(db, traps["panama"], {
            "latitude": "9.1521", "longitude": "-79.8467", "clock": "-05:00",
            "site_name": "Barro Colorado Island"})


def _key(box_row) -> str:
    for key, (box, *_rest) in BOXES.items():
        if (box_row.x1, box_row.y1) == (box.x1, box.y1):
            return key
    raise AssertionError(box_row)


def _track(db, pid: int) -> dict[tuple[int, str], int]:
    """One occurrence per box position per night, labelled and flagged as a tracker would."""
    with db.session() as s:
        dets = s.execute(select(Detection.id, Detection.x1, Detection.y1, Detection.score,
                                Detection.image_id, Image.night_id, Image.deployment_id,
                                Image.captured_at)
                         .join(Image, Image.id == Detection.image_id)
                         .order_by(Image.captured_at, Detection.id)).all()
    groups: dict[tuple[int, str], list] = {}
    for d in dets:
        groups.setdefault((d.night_id, _key(d)), []).append(d)
    labels = {"A": ("Noctua pronuba", "species", 0.8), "B": ("Xestia c-nigrum", "species", 0.3),
              "F": ("nonmoth", "binary", 0.7), "L": ("moth", "binary", 0.9)}
    out = {}
    with db.write_session() as s:
        for (night, key), members in groups.items():
            label, rank, score = labels[key]
            best = max(members, key=lambda m: m.score)
            occ = s.execute(insert(Occurrence).values(
                pipeline_id=pid, deployment_id=members[0].deployment_id, night_id=night,
                first_image_id=members[0].image_id, last_image_id=members[-1].image_id,
                first_seen=members[0].captured_at, last_seen=members[-1].captured_at,
                n_detections=len(members), best_detection_id=best.id, label=label,
                label_rank=rank, label_score=score, fixture=key == "F",
                fixture_reason="same place every night" if key == "F" else None,
                updated_at=dt.datetime(2024, 5, 1, 12, tzinfo=dt.timezone.utc).timestamp(),
            ).returning(Occurrence.id)).scalar_one()
            s.execute(update(Detection).where(Detection.id.in_([m.id for m in members]))
                      .values(occurrence_id=occ))
            out[(night, key)] = occ
    return out


def trap_uid(db, dep_id: int) -> str:
    with db.session() as s:
        return s.execute(select(Deployment.uid).where(Deployment.id == dep_id)).scalar_one()
