"""Validation of posted JSON against ../shared/antenna-api.md, written from the contract text
(independently of trapgui.remote.schemas, so the two can disagree and a test can fail).
Each function returns None when valid, else a sentence naming the first problem."""

from __future__ import annotations

import datetime as dt
import math

NUM = (int, float)


def _is_num(v) -> bool:
    return isinstance(v, NUM) and not isinstance(v, bool) and math.isfinite(v)


def _opt_num(v) -> bool:
    return v is None or _is_num(v)


def _algorithm_ref(a, where: str) -> str | None:
    if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not isinstance(a.get("key"), str):
        return f"{where}.algorithm must be {{name: str, key: str}}"
    return None


def _timestamp(v, where: str) -> str | None:
    if not isinstance(v, str):
        return f"{where}.timestamp must be an ISO 8601 string"
    try:
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return f"{where}.timestamp {v!r} is not ISO 8601"
    return None


def validate_classification(c, where: str) -> str | None:
    if not isinstance(c, dict):
        return f"{where} must be an object"
    if not isinstance(c.get("classification"), str):
        return f"{where}.classification must be a string"
    if "labels" in c and c["labels"] is not None and not (
            isinstance(c["labels"], list) and all(isinstance(x, str) for x in c["labels"])):
        return f"{where}.labels must be a list of strings or null"
    for name in ("scores", "logits"):
        v = c.get(name)
        if not isinstance(v, list) or not v or not all(_is_num(x) for x in v):
            return f"{where}.{name} must be a non-empty list of numbers"
    if len(c["scores"]) != len(c["logits"]):
        return f"{where}: scores and logits differ in length"
    if c.get("labels") and len(c["labels"]) != len(c["scores"]):
        return f"{where}: labels and scores differ in length"
    total = sum(c["scores"])
    if abs(total - 1.0) > 1e-3 or min(c["scores"]) < 0:
        return f"{where}.scores is not a softmax over all classes (sums to {total:.4f})"
    if not _opt_num(c.get("inference_time")):
        return f"{where}.inference_time must be a number or null"
    if not isinstance(c.get("terminal"), bool):
        return f"{where}.terminal must be a boolean"
    return _algorithm_ref(c.get("algorithm"), where) or _timestamp(c.get("timestamp"), where)


def validate_detection(d, where: str, image_ids: set[str]) -> str | None:
    if not isinstance(d, dict):
        return f"{where} must be an object"
    if d.get("source_image_id") not in image_ids:
        return f"{where}.source_image_id is not one of source_images"
    b = d.get("bbox")
    if not isinstance(b, dict) or not all(_is_num(b.get(k)) for k in ("x1", "y1", "x2", "y2")):
        return f"{where}.bbox must have numeric x1 y1 x2 y2"
    if not (b["x2"] > b["x1"] and b["y2"] > b["y1"]):
        return f"{where}.bbox is empty or inverted"
    if not _opt_num(d.get("inference_time")):
        return f"{where}.inference_time must be a number or null"
    if d.get("crop_image_url") is not None and not isinstance(d["crop_image_url"], str):
        return f"{where}.crop_image_url must be a string or null"
    problem = _algorithm_ref(d.get("algorithm"), where) or _timestamp(d.get("timestamp"), where)
    if problem:
        return problem
    cls = d.get("classifications")
    if not isinstance(cls, list):
        return f"{where}.classifications must be a list"
    for i, c in enumerate(cls):
        problem = validate_classification(c, f"{where}.classifications[{i}]")
        if problem:
            return problem
    if sum(1 for c in cls if c["terminal"]) > 1:
        return f"{where} has more than one terminal classification"
    return None


def validate_pipeline_results(r, pipeline_slug: str) -> str | None:
    if not isinstance(r, dict):
        return "result must be an object"
    if r.get("pipeline") != pipeline_slug:
        return f"result.pipeline {r.get('pipeline')!r} is not the job's pipeline {pipeline_slug!r}"
    if not isinstance(r.get("algorithms"), dict):
        return "result.algorithms must be an object"
    if not _is_num(r.get("total_time")):
        return "result.total_time must be a number"
    src = r.get("source_images")
    if not isinstance(src, list) or not src or not all(
            isinstance(s, dict) and isinstance(s.get("id"), str) and isinstance(s.get("url"), str)
            for s in src):
        return "result.source_images must be a non-empty list of {id: str, url: str}"
    cfg = r.get("config")
    if not isinstance(cfg, dict) or not _opt_num(cfg.get("example_config_param")) \
            or isinstance(cfg.get("example_config_param"), float):
        return "result.config must be {example_config_param: int or null}"
    dets = r.get("detections")
    if not isinstance(dets, list):
        return "result.detections must be a list"
    ids = {s["id"] for s in src}
    for i, d in enumerate(dets):
        problem = validate_detection(d, f"detections[{i}]", ids)
        if problem:
            return problem
    return None


def validate_result(item, pipeline_slug: str) -> str | None:
    """One element of the posted ``results`` list."""
    if not isinstance(item, dict) or "reply_subject" not in item or "result" not in item:
        return "each result needs reply_subject and result"
    if item["reply_subject"] is not None and not isinstance(item["reply_subject"], str):
        return "reply_subject must be a string or null"
    r = item["result"]
    if isinstance(r, dict) and "error" in r:
        if not isinstance(r["error"], str) or not r["error"]:
            return "error result: error must be a non-empty string"
        if r.get("image_id") is not None and not isinstance(r["image_id"], str):
            return "error result: image_id must be a string or null"
        return None
    return validate_pipeline_results(r, pipeline_slug)


def validate_pipeline_config(p) -> str | None:
    if not isinstance(p, dict):
        return "pipeline must be an object"
    for name in ("name", "slug", "description"):
        if not isinstance(p.get(name), str):
            return f"pipeline.{name} must be a string"
    if not isinstance(p.get("version"), int) or isinstance(p.get("version"), bool):
        return "pipeline.version must be an int"
    if not isinstance(p.get("stages"), list):
        return "pipeline.stages must be a list"
    algos = p.get("algorithms")
    if not isinstance(algos, list) or not algos:
        return "pipeline.algorithms must be a non-empty list"
    for a in algos:
        if not isinstance(a, dict):
            return "algorithm must be an object"
        for name in ("name", "key", "description"):
            if not isinstance(a.get(name), str):
                return f"algorithm.{name} must be a string"
        if a.get("task_type") not in ("localization", "classification"):
            return "algorithm.task_type must be localization or classification"
        if not isinstance(a.get("version"), int):
            return "algorithm.version must be an int"
        cm = a.get("category_map")
        if a["task_type"] == "classification":
            if not isinstance(cm, dict):
                return f"algorithm {a['key']}: a classifier needs a category_map"
            data, labels = cm.get("data"), cm.get("labels")
            if not isinstance(data, list) or not isinstance(labels, list) or len(data) != len(labels):
                return f"algorithm {a['key']}: category_map data and labels must be lists of one length"
            for i, row in enumerate(data):
                if row.get("index") != i or row.get("label") != labels[i] \
                        or not isinstance(row.get("taxon_rank"), str):
                    return f"algorithm {a['key']}: category_map.data[{i}] is inconsistent"
            for name in ("version", "description", "uri"):
                if not isinstance(cm.get(name), str):
                    return f"algorithm {a['key']}: category_map.{name} must be a string"
    return None
