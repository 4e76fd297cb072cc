"""What every export states about itself: thresholds, models, processing runs, app version.

CSV and JSON exports get a sidecar ``<name>-about.json`` next to them (``detections.csv`` ->
``detections-about.json``); folder exports (crops) an ``about.json`` inside; Camtrap DP carries
the same object in ``datapackage.json`` (property ``trapgui``) and the Darwin Core archive in
its EML methods and a sidecar. The keys are documented in docs/exports.md.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from trapgui.db.database import Database
from trapgui.db import unclassified
from trapgui.db.export_queries import ExportScope, Thresholds, provenance, scope_images
from trapgui.db.trap_metadata import list_traps
from trapgui.export.atomic import atomic_file
from trapgui.version import __version__

ABOUT_VERSION = 1
COUNTING_RULES = (
    "Individuals are occurrences (one insect tracked across the images of a night), not "
    "detections. Fixtures (objects flagged as part of the trap: screws, stains, labels) are left "
    "out. An individual counts when at least one of its detections reaches the detection "
    "threshold; its taxon is its final label when that label reaches the classification "
    "threshold (a reviewer's label always counts), otherwise it counts as not identified.")


def build_about(db: Database, fmt: str, scope: ExportScope, pipeline_id: int | None,
                thresholds: Thresholds | None, *, counts_individuals: bool) -> dict:
    traps = list_traps(db, scope.deployment_ids)
    about = {
        "about_version": ABOUT_VERSION,
        "format": fmt,
        "written_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "app": {"name": "trapgui", "version": __version__},
        "catalogue": str(db.path),
        "scope": scope.with_pipeline(pipeline_id).as_dict(),
        "thresholds": thresholds.as_dict() if thresholds else None,
        "counting": COUNTING_RULES if counts_individuals else None,
        "traps": [{
            "id": t.id, "uid": t.uid, "name": t.name, "folder": t.path,
            "site": t.values.site_name, "latitude": t.values.latitude,
            "longitude": t.values.longitude,
            "coordinate_uncertainty_m": t.values.coordinate_uncertainty_m,
            "camera_clock": t.clock.text() or None,
            "trap": t.values.trap_description, "light": t.values.light_description,
            "deployment_start": _local(t.start), "deployment_end": _local(t.end),
        } for t in traps],
        **provenance(db, scope, pipeline_id),
        "rows": {},
        "notes": [],
    }
    about["floors"] = floors_about(db, scope, pipeline_id, about.get("floors"), thresholds)
    return about


def floors_about(db: Database, scope: ExportScope, pipeline_id: int | None, floors: dict | None,
                 thresholds: Thresholds | None) -> dict | None:
    """The configuration's two floors and what they mean at the export's detection threshold:
    boxes below the storage floor were never stored; stored boxes below the classification
    floor have no labels until they are classified on demand."""
    if floors is None:
        return None
    out = dict(floors)
    out["meaning"] = (f"Boxes scoring below {floors['storage_floor']:g} were not stored; boxes "
                      f"scoring {floors['classification_floor']:g} or more were classified "
                      "when processed, the others only if classified later on demand.")
    if thresholds is not None:
        cover = unclassified.coverage(db, pipeline_id, thresholds.detection,
                                      scope_images(scope))
        out["detection_threshold"] = thresholds.detection
        out["unclassified_detections"] = cover.unclassified
        if cover.unclassified:
            out["meaning"] += (f" {cover.unclassified} detections at or above the detection "
                               f"threshold ({thresholds.detection:g}) are not classified yet: "
                               "they count as not identified.")
        if cover.below_storage_floor:
            out["meaning"] += (f" The detection threshold is below the storage floor: boxes "
                               f"scoring under {floors['storage_floor']:g} are not in the "
                               "catalogue at all.")
    return out


def _local(when: dt.datetime | None) -> str | None:
    return when.isoformat(timespec="seconds") if when else None


def sidecar_path(out: Path) -> Path:
    """``detections.csv`` -> ``detections-about.json`` (same folder)."""
    return out.with_name(f"{out.stem}-about.json")


def write_about(path: Path, about: dict) -> Path:
    with atomic_file(path) as fh:
        json.dump(about, fh, indent=2, ensure_ascii=False, default=str)
        fh.write("\n")
    return path
