"""MegaDetector batch-output JSON, format 1.6 (https://lila.science/megadetector-output-format),
so Timelapse, AddaxAI and the MegaDetector tools read trapgui's results.

- one entry per processed image: ``detections`` (possibly empty) with ``category`` "1"
  (``animal``: Timelapse keys on that name), ``conf`` (the detector score) and ``bbox`` =
  ``[x_min, y_min, width, height]`` relative to the image; ``classifications`` = the top-k of
  the classifier that made the detection's final label, ``[category id, score]``, highest
  first, ids into ``classification_categories``;
- images that could not be read or processed: ``failure`` (the reason) and ``detections`` null;
- images not processed yet are left out (the sidecar says how many), and so are detections of
  fixtures (screws, stains: what MegaDetector's repeat-detection elimination removes);
- ``file`` is relative to the traps' common parent folder (``info.image_base``), forward
  slashes; traps without a common folder (two drives) get absolute paths;
- ``info.detector_metadata.typical_detection_threshold`` and
  ``classifier_metadata.typical_classification_threshold`` carry the export's thresholds;
  every stored detection is written (tools threshold on ``conf`` themselves) unless a minimum
  detection score is given.

The JSON is streamed (one image at a time); the category tables, which are only known at the
end, follow the images (key order carries no meaning in JSON).
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path, PurePosixPath

from sqlalchemy import select

from trapgui.core.errors import UserInputError
from trapgui.db import export_queries as q
from trapgui.db.final_labels import HUMAN, LabelResolver
from trapgui.db.tables import Classification
from trapgui.export.about import build_about, sidecar_path, write_about
from trapgui.export.atomic import atomic_file, check_file_target
from trapgui.export.common import ExportResult, ExportRun
from trapgui.version import __version__

FORMAT_VERSION = "1.6"
ANIMAL = "1"


def export_megadetector(run: ExportRun, out: str | Path,
                        min_detection_score: float | None = None) -> ExportResult:
    out = check_file_target(out, (".json",), "megadetector")
    run.require_results()
    traps = run.traps
    base = _common_base([t.path for t in traps.values()])
    prov = q.provenance(run.db, run.scope, run.pipeline_id)
    categories: dict[str, str] = {}  # label -> id
    rows = {"images": 0, "detections": 0, "failures": 0}
    unprocessed = 0
    total = q.count_images(run.db, run.scope)
    done = 0
    with atomic_file(out) as fh, run.db.session() as s:
        resolver = LabelResolver(s)
        fh.write('{\n"info": ' + json.dumps(_info(prov, run, base), ensure_ascii=False)
                 + ',\n"detection_categories": {"' + ANIMAL + '": "animal"},\n"images": [')
        first = True
        for image, dets in _images_with_detections(s, run, min_detection_score):
            done += 1
            if done % q.PARTITION == 0:
                run.progress(done, total, "images", "Writing the MegaDetector file")
                run.check_cancel()
            entry = _entry(image, dets, traps, base, resolver, categories)
            if entry is None:
                unprocessed += 1
                continue
            fh.write(("\n" if first else ",\n") + json.dumps(entry, ensure_ascii=False))
            first = False
            rows["images"] += 1
            rows["detections"] += len(entry.get("detections") or ())
            rows["failures"] += "failure" in entry
        ids = {v: k for k, v in categories.items()}
        fh.write('\n],\n"classification_categories": '
                 + json.dumps({i: ids[i] for i in sorted(ids, key=int)}, ensure_ascii=False)
                 + "\n}\n")
    run.progress(done, total, "images", "Writing the MegaDetector file")
    if unprocessed:
        run.note(f"{unprocessed:,} images not processed yet were left out of the file.")
    about = build_about(run.db, "megadetector", run.scope, run.pipeline_id, run.thresholds,
                        counts_individuals=False)
    about["min_detection_score"] = min_detection_score
    about["image_base"] = base
    about["rows"] = dict(rows)
    about["notes"] = list(run.notes)
    about_path = write_about(sidecar_path(out), about)
    return ExportResult("megadetector", out, rows, about_path, tuple(run.notes))


def _common_base(paths: list[str]) -> str | None:
    if not paths:
        return None
    try:
        base = os.path.commonpath([str(Path(p).parent) for p in paths])
    except ValueError:  # different drives
        return None
    return base


def _info(prov: dict, run: ExportRun, base: str | None) -> dict:
    pipeline = prov["pipeline"] or {}
    config = pipeline.get("config") or {}
    runs = prov["processing_runs"]
    last = runs[-1] if runs else {}
    models = last.get("models") or {}

    def model(key):
        info = models.get(key) if key else None
        if isinstance(info, dict):
            return " ".join(str(x) for x in (info.get("name") or key, info.get("version")) if x)
        return key

    classifier_key = config.get("species") or config.get("order") or config.get("binary")
    completed = _md_time(last.get("ended_at") or last.get("started_at"))
    info = {
        "format_version": FORMAT_VERSION,
        "detector": model(config.get("detector")) or "unknown",
        "detection_completion_time": completed,
        "detector_metadata": {
            "typical_detection_threshold": run.thresholds.detection,
            "conservative_detection_threshold": round(run.thresholds.detection / 2, 4),
        },
        "trapgui_version": __version__,
        "pipeline": pipeline.get("name"),
        "image_base": base,
        "exported_at": _md_time(dt.datetime.now(dt.timezone.utc).isoformat()),
    }
    if classifier_key:
        info["classifier"] = model(classifier_key)
        info["classification_completion_time"] = completed
        info["classifier_metadata"] = {
            "typical_classification_threshold": run.thresholds.label}
    return {k: v for k, v in info.items() if v is not None}


def _md_time(text: str | None) -> str | None:
    """The format's ``YYYY-MM-DD HH:MM:SS`` (UTC) from an ISO time."""
    if not text:
        return None
    when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is not None:
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return when.strftime("%Y-%m-%d %H:%M:%S")


def _images_with_detections(session, run: ExportRun, min_score: float | None):
    """(image row, [detection rows with their top-k]) in file order, two merged streams."""
    images = q.image_rows(session, run.scope, run.pipeline_id)
    # fixtures (screws, stains) are left out, as MegaDetector's repeat-detection elimination
    # would remove them
    det_result = q.detection_rows(session, run.scope, run.pipeline_id, min_score)
    det_iter = _with_top_k(session, det_result)
    pending = next(det_iter, None)
    for image in images:
        dets = []
        # both streams are ordered by (trap, capture time, path, image id): merge on image id
        while pending is not None and pending[0].image_id == image.id:
            dets.append(pending)
            pending = next(det_iter, None)
        yield image, dets


def _with_top_k(session, result):
    for part in result.partitions():
        ids = [r.id for r in part]
        tops: dict[int, dict[str, tuple]] = {}
        for det_id, rank, labels, scores in session.execute(
                select(Classification.detection_id, Classification.rank,
                       Classification.top_labels, Classification.top_scores)
                .where(Classification.detection_id.in_(ids))):
            tops.setdefault(det_id, {})[rank] = (labels or [], scores or [])
        for r in part:
            yield r, tops.get(r.id, {})


def _entry(image, dets, traps, base, resolver: LabelResolver, categories: dict) -> dict | None:
    trap = traps.get(image.deployment_id)
    path = Path(trap.path, image.rel_path) if trap else Path(image.rel_path)
    file = PurePosixPath(Path(os.path.relpath(path, base))).as_posix() if base else \
        path.as_posix()
    if image.state == "unreadable":
        return {"file": file, "failure": image.error or "unreadable", "detections": None}
    if image.job_state == "failed":
        return {"file": file, "failure": image.job_error or "processing failed",
                "detections": None}
    if image.job_state != "done":
        return None
    if not image.width or not image.height:
        return {"file": file, "failure": "image size unknown", "detections": None}
    out = []
    for r, tops in dets:
        det = {"category": ANIMAL, "conf": round(float(r.score), 6),
               "bbox": _bbox(r, image.width, image.height)}
        classes = _classifications(r, tops, resolver, categories)
        if classes:
            det["classifications"] = classes
        out.append(det)
    return {"file": file, "detections": out}


def _bbox(r, width: int, height: int) -> list[float]:
    x = min(max(r.x1 / width, 0.0), 1.0)
    y = min(max(r.y1 / height, 0.0), 1.0)
    w = min(max((r.x2 - r.x1) / width, 0.0), 1.0 - x)
    h = min(max((r.y2 - r.y1) / height, 0.0), 1.0 - y)
    return [round(x, 6), round(y, 6), round(w, 6), round(h, 6)]


def _classifications(r, tops: dict, resolver: LabelResolver, categories: dict) -> list:
    label = resolver.resolve(r)
    if label.label is None:
        return []
    if label.method == HUMAN:
        return [[_category(label.label, categories), 1.0]]
    labels, scores = tops.get(label.rank, ([], []))
    pairs = [(lab, float(sc)) for lab, sc in zip(labels, scores) if lab]
    if not pairs:
        pairs = [(label.label, float(label.score or 0.0))]
    pairs.sort(key=lambda p: -p[1])
    return [[_category(lab, categories), round(sc, 6)] for lab, sc in pairs]


def _category(label: str, categories: dict) -> str:
    if label not in categories:
        if not label.strip():
            raise UserInputError("A classification label is blank; the MegaDetector format "
                                 "does not allow that.")
        categories[label] = str(len(categories) + 1)  # "0" is informally the empty category
    return categories[label]
