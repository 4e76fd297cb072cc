"""MegaDetector batch-output JSON (format 1.6), checked by the format's published field rules.

The rules below are those of the format description, https://lila.science/megadetector-output-
format (agentmorris/MegaDetector, megadetector-output-format.md), and of the checks its
validator (megadetector/postprocessing/validate_batch_results.py) makes; written here from
that text (the validator itself is not a dependency). Stricter than the validator where the
description is explicit (boxes inside the image, classifications sorted, no blank names).
"""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update

from tests import export_fixtures as ef
from trapgui.core.types import ImageResult
from trapgui.db import jobqueue
from trapgui.db.export_queries import ExportScope, Thresholds
from trapgui.db.tables import Image, Job
from trapgui.export.common import ExportRun
from trapgui.export.megadetector import export_megadetector

TOP_LEVEL = {"info", "detection_categories", "classification_categories",
             "classification_category_descriptions", "images"}


def _category_table(table, what: str) -> list[str]:
    problems = []
    if not isinstance(table, dict):
        return [f"{what} must be an object"]
    for key, name in table.items():
        # "category IDs must be non-negative string-formatted ints"
        if not isinstance(key, str) or not key.isdigit():
            problems.append(f"{what}: id {key!r} is not a non-negative string-formatted int")
        # "names don't have to be unique, but they can't be blank"
        if not isinstance(name, str) or not name.strip():
            problems.append(f"{what}: id {key!r} has a blank name")
    return problems


def md_format_problems(doc) -> list[str]:
    """Every violation of the MegaDetector output format in ``doc`` (a parsed JSON file)."""
    if not isinstance(doc, dict):
        return ["the file must hold a JSON object"]
    problems = [f"non-standard top-level key {k!r}" for k in doc if k not in TOP_LEVEL]
    info = doc.get("info")
    # info is required; "format_version" is required, "must be a string-formatted float"
    if not isinstance(info, dict):
        problems.append("info is required and must be an object")
    else:
        version = info.get("format_version")
        try:
            if not isinstance(version, str) or float(version) < 1.3:
                problems.append(f"format_version {version!r} is not a string float >= 1.3")
        except ValueError:
            problems.append(f"format_version {version!r} is not a string-formatted float")
    # detection_categories is required
    if "detection_categories" not in doc:
        problems.append("detection_categories is required")
    det_cats = doc.get("detection_categories") or {}
    problems += _category_table(det_cats, "detection_categories")
    cls_cats = doc.get("classification_categories")
    if cls_cats is not None:
        problems += _category_table(cls_cats, "classification_categories")
    descriptions = doc.get("classification_category_descriptions")
    if descriptions is not None and set(descriptions) != set(cls_cats or {}):
        problems.append("classification_category_descriptions must use the same ids as "
                        "classification_categories")
    images = doc.get("images")
    # "The images array is required, but can be empty."
    if not isinstance(images, list):
        return problems + ["images is required and must be a list"]
    for i, im in enumerate(images):
        where = f"images[{i}]"
        if not isinstance(im, dict) or not isinstance(im.get("file"), str) or not im["file"]:
            problems.append(f"{where} has no file name")
            continue
        failure = im.get("failure")
        dets = im.get("detections")
        if failure is not None:
            # a failed image: failure is a string; detections null or omitted, "should *not*
            # be an empty list"
            if not isinstance(failure, str):
                problems.append(f"{where}: failure must be a string")
            if dets is not None:
                problems.append(f"{where}: an image with a failure must have null detections")
            continue
        # "detections should be present for any image that was successfully processed"
        if not isinstance(dets, list):
            problems.append(f"{where}: a processed image needs a detections list")
            continue
        for j, det in enumerate(dets):
            d = f"{where}.detections[{j}]"
            if det.get("category") not in det_cats:
                problems.append(f"{d}: category {det.get('category')!r} is not mapped")
            conf = det.get("conf")
            if not isinstance(conf, float) or not 0.0 <= conf <= 1.0:
                problems.append(f"{d}: conf must be a float in [0, 1]")
            box = det.get("bbox")
            # [x_min, y_min, width_of_box, height_of_box], relative to the image size
            if (not isinstance(box, list) or len(box) != 4
                    or not all(isinstance(v, (int, float)) for v in box)):
                problems.append(f"{d}: bbox must be four numbers")
            else:
                x, y, w, h = box
                if not (0 <= x <= 1 and 0 <= y <= 1 and 0 <= w <= 1 and 0 <= h <= 1
                        and x + w <= 1 + 1e-9 and y + h <= 1 + 1e-9):
                    problems.append(f"{d}: bbox {box} is not normalised inside the image")
            classes = det.get("classifications")
            if classes is not None:
                scores = []
                for c in classes:
                    if (not isinstance(c, list) or len(c) != 2 or not isinstance(c[0], str)
                            or c[0] not in (cls_cats or {})
                            or not isinstance(c[1], (int, float))):
                        problems.append(f"{d}: classification {c!r} is not [mapped id, score]")
                    else:
                        scores.append(c[1])
                # "They must be listed in descending order by confidence."
                if scores != sorted(scores, reverse=True):
                    problems.append(f"{d}: classifications are not in descending order")
    return problems


def test_the_checker_catches_what_the_format_forbids():
    good = {"info": {"format_version": "1.6"}, "detection_categories": {"1": "animal"},
            "classification_categories": {"0": "fox", "1": "elk"},
            "images": [{"file": "a.jpg", "detections": [
                {"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4],
                 "classifications": [["1", 0.7], ["0", 0.2]]}]},
                {"file": "b.jpg", "detections": []},
                {"file": "c.jpg", "failure": "Failure image access", "detections": None}]}
    assert md_format_problems(good) == []
    broken = [
        ({"detection_categories": {}, "images": []}, "info is required"),
        ({"info": {"format_version": 1.6}, "detection_categories": {}, "images": []},
         "string"),
        ({"info": {"format_version": "1.6"}, "detection_categories": {"a": "x"}, "images": []},
         "non-negative"),
        ({"info": {"format_version": "1.6"}, "detection_categories": {"1": " "}, "images": []},
         "blank"),
        ({**good, "images": [{"file": "c.jpg", "failure": "x", "detections": []}]},
         "null detections"),
        ({**good, "images": [{"file": "a.jpg"}]}, "detections list"),
        ({**good, "images": [{"file": "a.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.8, 0.2, 0.3, 0.4]}]}]}, "normalised"),
        ({**good, "images": [{"file": "a.jpg", "detections": [
            {"category": "2", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4]}]}]}, "not mapped"),
        ({**good, "images": [{"file": "a.jpg", "detections": [
            {"category": "1", "conf": 1, "bbox": [0.1, 0.2, 0.3, 0.4]}]}]}, "float"),
        ({**good, "images": [{"file": "a.jpg", "detections": [
            {"category": "1", "conf": 0.9, "bbox": [0.1, 0.2, 0.3, 0.4],
             "classifications": [["0", 0.2], ["1", 0.7]]}]}]}, "descending"),
        ({**good, "extra": 1}, "non-standard"),
    ]
    for doc, message in broken:
        problems = md_format_problems(doc)
        assert any(message in p for p in problems), (message, problems)


@pytest.fixture
def catalogue(db, trap_copy):
    return ef.build(db, trap_copy)


def export(cat, out, min_score=None, scope=ExportScope()):
    return export_megadetector(ExportRun.start(cat.db, scope, Thresholds()), out, min_score)


def test_export_follows_the_format(catalogue, tmp_path):
    out = tmp_path / "md.json"
    result = export(catalogue, out)
    doc = json.loads(out.read_text(encoding="utf-8"))
    assert md_format_problems(doc) == []
    assert doc["info"]["format_version"] == "1.6"
    assert doc["info"]["detector"] == "Built-in detector 1.0"
    assert doc["info"]["classifier"] == "Quebec & Vermont species v2"
    assert doc["info"]["detector_metadata"]["typical_detection_threshold"] == 0.5
    assert doc["detection_categories"] == {"1": "animal"}
    files = [im["file"] for im in doc["images"]]
    assert len(files) == 7 and files[0] == "panama/01-20231110214539-snapshot.jpg"
    assert doc["info"]["image_base"] == str(catalogue.db.path.parent / "trap")
    blank = next(im for im in doc["images"] if im["file"].endswith(ef.BLANK))
    assert blank["detections"] == []
    first = doc["images"][0]["detections"]
    assert len(first) == 3  # A, B and the faint box: every stored detection but the fixture
    a = first[0]
    assert a["conf"] == 0.95 and a["bbox"] == [0.097656, 0.092593, 0.195312, 0.185185]
    names = doc["classification_categories"]
    assert [names[c] for c, _ in a["classifications"]] == ["Noctua pronuba", "Agrotis ipsilon"]
    assert [s for _, s in a["classifications"]] == [0.8, 0.1]
    assert result.rows == {"images": 7, "detections": 18, "failures": 0}
    about = json.loads(result.about_path.read_text())
    assert result.about_path.name == "md-about.json" and about["format"] == "megadetector"


def test_failures_unprocessed_images_and_a_minimum(catalogue, tmp_path):
    db = catalogue.db
    broken = catalogue.images["20220622200400-01-snapshot.jpg"]
    failed = catalogue.images["01-20231110224529-snapshot.jpg"]
    pending = catalogue.images["20220623043000-215-snapshot.jpg"]
    with db.write_session() as s:
        s.execute(update(Image).where(Image.id == broken).values(
            state="unreadable", error="truncated file (2000 of 80000 bytes)"))
    jobqueue.enqueue(db, catalogue.pipeline_id, [failed], requeue=True)
    claimed = jobqueue.claim(db, catalogue.pipeline_id, "w9", 10, 60)
    jobqueue.complete(db, catalogue.pipeline_id, None, "w9",
                      [ImageResult(c.image_id, error="CUDA out of memory") for c in claimed])
    with db.write_session() as s:  # queued again, not processed yet
        s.execute(update(Job).where(Job.image_id == pending).values(state="pending"))
    out = tmp_path / "md.json"
    result = export(catalogue, out, min_score=0.5)
    doc = json.loads(out.read_text())
    assert md_format_problems(doc) == []
    by_file = {im["file"].rsplit("/", 1)[1]: im for im in doc["images"]}
    assert by_file["20220622200400-01-snapshot.jpg"] == {
        "file": "vermont/20220622200400-01-snapshot.jpg",
        "failure": "truncated file (2000 of 80000 bytes)", "detections": None}
    assert by_file["01-20231110224529-snapshot.jpg"]["failure"] == "CUDA out of memory"
    assert "20220623043000-215-snapshot.jpg" not in by_file
    assert any("not processed yet" in n for n in result.notes)
    kept = [d for im in doc["images"] for d in (im.get("detections") or [])]
    assert kept and all(d["conf"] >= 0.5 for d in kept)
    assert result.rows["failures"] == 2


def test_one_trap_gets_paths_relative_to_its_parent(catalogue, tmp_path):
    out = tmp_path / "md.json"
    export(catalogue, out, scope=ExportScope.of([catalogue.traps["vermont"]]))
    doc = json.loads(out.read_text())
    assert {im["file"].split("/")[0] for im in doc["images"]} == {"vermont"}
    assert md_format_problems(doc) == []
