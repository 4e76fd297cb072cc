"""Catalogue rows for the results-view tests and benchmarks, bulk-inserted into a real SQLite
file (``session.execute(insert(Model), rows)``: a 100k-detection catalogue takes ~1 s).

The rows are what the engine writes: a deployment, nights, images, one pipeline config,
detections with their denormalised best labels and the matching classifications.
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import insert

from trapgui.db.tables import (
    Classification,
    Deployment,
    Detection,
    Image,
    Night,
    PipelineConfig,
)

SPECIES = [
    "Noctua pronuba", "Agrotis exclamationis", "Xestia c-nigrum", "Ochropleura plecta",
    "Hoplodrina octogenaria", "Mythimna impura", "Idaea aversata", "Camptogramma bilineata",
    "Lymantria dispar", "Spilosoma lubricipeda", "Cabera pusaria", "Opisthograptis luteolata",
]


@dataclass
class Catalogue:
    deployment_id: int
    pipeline_id: int
    night_ids: list[int]
    image_ids: list[int]  # in capture order
    images_by_night: dict[int, list[int]] = field(default_factory=dict)
    n_detections: int = 0


def populate(
    db,
    folder: Path,
    *,
    n_detections: int,
    n_nights: int = 3,
    images_per_night: int = 50,
    image_names: list[str] | None = None,
    image_size: tuple[int, int] = (4096, 2160),
    seed: int = 1,
    with_classifications: bool = False,
    chunk: int = 50_000,
) -> Catalogue:
    """Fill ``db`` with one trap of ``n_nights`` nights and ``n_detections`` detections spread
    over its images. ``image_names`` (relative paths under ``folder``) are reused cyclically so
    the viewer can open real files."""
    rng = random.Random(seed)
    w, h = image_size
    with db.write_session() as s:
        dep_id = s.execute(insert(Deployment).returning(Deployment.id),
                           [{"path": str(folder), "name": folder.name}]).scalar_one()
        pipe_id = s.execute(insert(PipelineConfig).returning(PipelineConfig.id), [
            {"key": f"test-{seed}", "name": "builtin + moth/non-moth", "config": {}}
        ]).scalar_one()
        first = dt.date(2022, 6, 20)
        nights = [{"deployment_id": dep_id, "date": first + dt.timedelta(days=i)}
                  for i in range(n_nights)]
        night_ids = list(s.execute(insert(Night).returning(Night.id), nights).scalars())
        images = []
        for n_i, night_id in enumerate(night_ids):
            start = dt.datetime.combine(first + dt.timedelta(days=n_i), dt.time(21, 0))
            for k in range(images_per_night):
                idx = n_i * images_per_night + k
                name = (image_names[idx % len(image_names)] if image_names
                        else f"night{n_i}/img{k:05d}.jpg")
                images.append({
                    "deployment_id": dep_id, "night_id": night_id,
                    "rel_path": name if not image_names or idx < len(image_names)
                    else f"{name}#{idx}",  # unique per (deployment, rel_path)
                    "size": 1, "mtime": 0.0, "width": w, "height": h,
                    "captured_at": start + dt.timedelta(minutes=5 * k),
                    "time_source": "exif_datetime_original", "state": "ok",
                })
        image_ids = list(s.execute(insert(Image).returning(Image.id), images).scalars())
    by_night = {nid: image_ids[i * images_per_night:(i + 1) * images_per_night]
                for i, nid in enumerate(night_ids)}

    next_id = 1
    for start in range(0, n_detections, chunk):
        dets, classes = [], []
        for _ in range(min(chunk, n_detections - start)):
            image_id = image_ids[rng.randrange(len(image_ids))]
            bw, bh = rng.uniform(60, 300), rng.uniform(60, 300)
            x1, y1 = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
            moth = rng.random() < 0.7
            unclassified = rng.random() < 0.05
            species = rng.choice(SPECIES)
            top_label = None if unclassified else (species if moth else "nonmoth")
            det = {
                "id": next_id, "image_id": image_id, "pipeline_id": pipe_id,
                "x1": x1, "y1": y1, "x2": x1 + bw, "y2": y1 + bh,
                "score": round(rng.random(), 4), "detector": "builtin",
                "binary_label": None if unclassified else ("moth" if moth else "nonmoth"),
                "binary_score": None if unclassified else round(rng.uniform(0.5, 1), 4),
                "top_label": top_label,
                "top_score": None if unclassified else round(rng.random(), 4),
                "top_rank": None if unclassified else ("species" if moth else "binary"),
            }
            dets.append(det)
            if with_classifications and not unclassified:
                classes.append({
                    "detection_id": next_id, "model": "moth_binary", "rank": "binary",
                    "label": det["binary_label"], "score": det["binary_score"],
                    "top_labels": [det["binary_label"]], "top_scores": [det["binary_score"]],
                })
                if moth:
                    others = rng.sample([x for x in SPECIES if x != species], 2)
                    classes.append({
                        "detection_id": next_id, "model": "uk_denmark", "rank": "species",
                        "label": species, "score": det["top_score"],
                        "top_labels": [species, *others],
                        "top_scores": [det["top_score"], 0.05, 0.01],
                    })
            next_id += 1
        with db.write_session() as s:
            s.execute(insert(Detection), dets)
            if classes:
                s.execute(insert(Classification), classes)
    return Catalogue(dep_id, pipe_id, night_ids, image_ids, by_night, n_detections)
