"""The cost of linking two detections (or two track ends), vectorised over candidate pairs.

    cost = w_overlap * (1 - IoU)
         + w_move    * d / max_move              d = centre distance / sqrt(s_a * s_b)
         + w_size    * |ln(s_a / s_b)| / ln(max_size_ratio)        s = sqrt(w * h)
         + w_app     * a / max_appearance        a = (1 - cos) / reference distance
         + w_time    * gap / max_gap

A pair is never linked when d > max_move, s_a/s_b > max_size_ratio (or its inverse),
a > max_appearance or gap > max_gap (the gates); otherwise it may be linked when
cost < max_cost. docs/tracking.md explains the choice of terms and values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trapgui.tracking.params import TrackingParams

MIN_SIZE = 1e-6


@dataclass(frozen=True, slots=True)
class Gates:
    """The limits of one linking stage (consecutive images, or re-linking)."""

    max_move: float
    max_size_ratio: float
    max_appearance: float
    max_gap_s: float
    max_cost: float
    require_appearance: bool  # no embedding on either side: never linked

    @classmethod
    def consecutive(cls, p: TrackingParams) -> "Gates":
        return cls(p.max_move, p.max_size_ratio, p.max_appearance, p.max_gap_s, p.max_cost,
                   require_appearance=False)

    @classmethod
    def relink(cls, p: TrackingParams) -> "Gates":
        return cls(p.relink_max_move, p.relink_max_size_ratio, p.relink_max_appearance,
                   p.relink_max_gap_s, p.relink_max_cost, require_appearance=True)

    def search_radius(self, sizes: np.ndarray) -> np.ndarray:
        """An upper bound of the centre distance (pixels) a partner of a box of this size can
        have: d <= max_move * sqrt(s_a * s_b) and s_b <= max_size_ratio * s_a."""
        return self.max_move * sizes * math.sqrt(self.max_size_ratio)


def box_sizes(boxes: np.ndarray) -> np.ndarray:
    w = np.maximum(boxes[:, 2] - boxes[:, 0], 0.0)
    h = np.maximum(boxes[:, 3] - boxes[:, 1], 0.0)
    return np.maximum(np.sqrt(w * h), MIN_SIZE)


def box_centres(boxes: np.ndarray) -> np.ndarray:
    return np.stack([(boxes[:, 0] + boxes[:, 2]) * 0.5, (boxes[:, 1] + boxes[:, 3]) * 0.5], axis=1)


def pair_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of a[k] and b[k] for every k (both (K, 4))."""
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0, None)
    inter = iw * ih
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    union = area_a + area_b - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


def appearance_distance(emb_a: np.ndarray, emb_b: np.ndarray, reference: float) -> np.ndarray:
    """(1 - cosine similarity) / reference for L2-normalised rows a[k], b[k]."""
    cos = np.einsum("kd,kd->k", emb_a, emb_b).astype(np.float64)
    return np.clip(1.0 - cos, 0.0, 2.0) / reference


def link_costs(p: TrackingParams, gates: Gates, box_a: np.ndarray, box_b: np.ndarray,
               app: np.ndarray | None, gap_s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cost and allowed mask for K candidate pairs. ``app``: appearance distances (in
    reference units) with NaN where either side has no embedding; None = no embeddings."""
    sa, sb = box_sizes(box_a), box_sizes(box_b)
    scale = np.sqrt(sa * sb)
    d = np.hypot(*(box_centres(box_a) - box_centres(box_b)).T) / scale
    log_ratio = np.abs(np.log(sa / sb))
    ok = (d <= gates.max_move) & (log_ratio <= math.log(gates.max_size_ratio))
    ok &= gap_s <= gates.max_gap_s
    if app is None:
        app_term = np.full(len(d), p.missing_appearance)
        if gates.require_appearance:
            ok &= False
    else:
        missing = np.isnan(app)
        if gates.require_appearance:
            ok &= ~missing
        ok &= missing | (app <= gates.max_appearance)
        app_term = np.where(missing, p.missing_appearance, np.nan_to_num(app) / gates.max_appearance)
    cost = (p.weight_overlap * (1.0 - pair_iou(box_a, box_b))
            + p.weight_move * d / gates.max_move
            + p.weight_size * log_ratio / math.log(gates.max_size_ratio)
            + p.weight_appearance * app_term
            + p.weight_time * np.minimum(gap_s / gates.max_gap_s, 1.0))
    ok &= cost < gates.max_cost
    return cost, ok
