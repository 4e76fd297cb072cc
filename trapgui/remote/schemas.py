"""Builders for the JSON objects of the Antenna contract (field names and types exact).

``PipelineResultsResponse`` / ``DetectionResponse`` / ``ClassificationResponse`` for results,
the error result, and ``PipelineConfigResponse`` for registration. Inputs are the engine's
results (``ImageResult``) plus the full score vectors the processor returns for remote jobs.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult, Rank

# Decimal places kept in posted vectors: probabilities below 1e-8 carry no information, and
# full float reprs would double the size of already large payloads (29k classes per crop).
SCORE_DECIMALS = 8
LOGIT_DECIMALS = 5


@dataclass(frozen=True)
class AlgorithmRef:
    """``{"name", "key"}`` as the contract names an algorithm in results."""

    key: str
    name: str

    def as_json(self) -> dict[str, str]:
        return {"name": self.name, "key": self.key}


def iso_now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat()


def error_result(error: str, image_id: str | None) -> dict[str, Any]:
    return {"error": str(error), "image_id": None if image_id is None else str(image_id)}


def result_item(reply_subject: str | None, result: Mapping[str, Any]) -> dict[str, Any]:
    """One element of the ``results`` list posted to ``/jobs/{id}/result/``."""
    return {"reply_subject": reply_subject, "result": dict(result)}


def _vector(values: Any, decimals: int) -> list[float]:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    return np.round(arr, decimals).tolist()


def classification_response(
    c: ClassificationResult,
    algorithm: AlgorithmRef,
    *,
    scores: Any,
    logits: Any | None,
    terminal: bool,
    timestamp: str,
    labels: Sequence[str] | None = None,
    inference_time: float | None = None,
) -> dict[str, Any]:
    scores_list = _vector(scores, SCORE_DECIMALS)
    if logits is None:
        # log-probabilities are logits up to a per-row constant (same softmax)
        logits = np.log(np.clip(np.asarray(scores, dtype=np.float64), 1e-45, None))
    out: dict[str, Any] = {
        "classification": c.label,
        "scores": scores_list,
        "logits": _vector(logits, LOGIT_DECIMALS),
        "inference_time": inference_time,
        "algorithm": algorithm.as_json(),
        "terminal": bool(terminal),
        "timestamp": timestamp,
    }
    if labels is not None:
        out["labels"] = list(labels)
    return out


def detection_response(
    det: DetectionResult,
    source_image_id: str,
    detector: AlgorithmRef,
    classifications: list[dict[str, Any]],
    *,
    timestamp: str,
    inference_time: float | None = None,
) -> dict[str, Any]:
    b = det.box
    return {
        "source_image_id": str(source_image_id),
        "bbox": {"x1": float(b.x1), "y1": float(b.y1), "x2": float(b.x2), "y2": float(b.y2)},
        "inference_time": inference_time,
        "algorithm": detector.as_json(),
        "timestamp": timestamp,
        "crop_image_url": None,
        "classifications": classifications,
    }


def pipeline_results_response(
    *,
    pipeline_slug: str,
    source_image_id: str,
    source_image_url: str,
    result: ImageResult,
    scores: Mapping[str, Sequence[Any]],
    logits: Mapping[str, Sequence[Any]] | None,
    algorithms: Mapping[str, AlgorithmRef],
    terminal_model: str | None,
    total_time: float,
    timestamp: str | None = None,
) -> dict[str, Any]:
    """One image's results. ``scores[model_key][i]`` is detection ``i``'s full softmax vector
    for that model (None when that model did not run on it); ``algorithms`` maps model keys to
    their ``{name, key}``; ``terminal_model`` is the pipeline's final classifier."""
    if result.error is not None:
        raise ValueError("a failed image is answered with error_result(), not results")
    stamp = timestamp or iso_now()
    detections = []
    for i, det in enumerate(result.detections):
        cls_json = []
        for c in det.classifications:
            model_scores = scores.get(c.model)
            vector = model_scores[i] if model_scores is not None and i < len(model_scores) else None
            if vector is None:
                raise ValueError(f"no score vector for model {c.model} on detection {i}")
            model_logits = (logits or {}).get(c.model)
            logit = model_logits[i] if model_logits is not None and i < len(model_logits) else None
            cls_json.append(classification_response(
                c, algorithms[c.model], scores=vector, logits=logit,
                terminal=(c.model == terminal_model), timestamp=stamp))
        detections.append(detection_response(det, source_image_id, algorithms[det.detector],
                                              cls_json, timestamp=stamp))
    return {
        "pipeline": pipeline_slug,
        "algorithms": {},
        "total_time": float(total_time),
        "source_images": [{"id": str(source_image_id), "url": source_image_url}],
        "detections": detections,
        "config": {"example_config_param": None},
    }


# --- registration --------------------------------------------------------------------------

TAXON_RANKS = {Rank.SPECIES: "SPECIES", Rank.ORDER: "ORDER", Rank.BINARY: "UNKNOWN"}


def category_map(labels: Sequence[str], rank: Rank, *, version: str, description: str,
                 uri: str | None) -> dict[str, Any]:
    taxon_rank = TAXON_RANKS.get(Rank(rank), "UNKNOWN")
    return {
        "data": [{"index": i, "label": label, "taxon_rank": taxon_rank}
                 for i, label in enumerate(labels)],
        "labels": list(labels),
        "version": version,
        "description": description,
        "uri": uri or "",
    }


def algorithm_config(*, key: str, name: str, description: str, task_type: str,
                     uri: str | None, category: dict[str, Any] | None,
                     version: int = 1, version_name: str | None = None) -> dict[str, Any]:
    if task_type not in ("localization", "classification"):
        raise ValueError(f"unknown task_type {task_type!r}")
    return {
        "name": name,
        "key": key,
        "description": description,
        "task_type": task_type,
        "version": int(version),
        "version_name": version_name,
        "uri": uri,
        "category_map": category,
    }


def pipeline_config_response(*, slug: str, name: str, description: str,
                             algorithms: list[dict[str, Any]], version: int = 1,
                             stages: list | None = None) -> dict[str, Any]:
    return {
        "name": name,
        "slug": slug,
        "version": int(version),
        "description": description,
        "algorithms": algorithms,
        "stages": list(stages or []),
    }
