"""The night's detections as arrays in capture order, checked once (bad input -> a sentence)."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from trapgui.core.errors import UserInputError
from trapgui.tracking.costs import box_centres, box_sizes
from trapgui.tracking.types import NightDetection, NightImage

EPOCH = dt.datetime(1970, 1, 1)


def _seconds(when: dt.datetime) -> float:
    if when.tzinfo is not None:  # aware: compare in UTC; naive: camera local time as is
        when = when.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return (when - EPOCH).total_seconds()


@dataclass
class NightArrays:
    images: list[NightImage]  # capture order
    times: np.ndarray  # (T,) seconds
    detections: list[NightDetection]  # capture order, then detection id
    ids: np.ndarray  # (N,) detection ids
    image_index: np.ndarray  # (N,) index into images
    image_starts: np.ndarray  # (T + 1,) detections of image t: image_starts[t]:image_starts[t+1]
    boxes: np.ndarray  # (N, 4) float64
    scores: np.ndarray  # (N,)
    sharpness: np.ndarray  # (N,), NaN where not known
    sizes: np.ndarray
    centres: np.ndarray
    embeddings: np.ndarray | None  # (N, D) float32, L2-normalised rows (zeros where missing)
    has_embedding: np.ndarray  # (N,) bool

    @property
    def n(self) -> int:
        return len(self.ids)

    def image_slice(self, t: int) -> slice:
        return slice(int(self.image_starts[t]), int(self.image_starts[t + 1]))


def build_arrays(images: Sequence[NightImage], detections: Sequence[NightDetection]) -> NightArrays:
    seen_images: set[int] = set()
    for im in images:
        if im.image_id in seen_images:
            raise UserInputError(f"Image {im.image_id} is listed twice for tracking.")
        seen_images.add(im.image_id)
        if not isinstance(im.captured, dt.datetime):
            raise UserInputError(f"Image {im.image_id} has no capture time, so it cannot be "
                                 "tracked (undated images are not tracked).")
    ordered = sorted(images, key=lambda im: (_seconds(im.captured), im.image_id))
    position = {im.image_id: t for t, im in enumerate(ordered)}
    times = np.array([_seconds(im.captured) for im in ordered], dtype=np.float64)

    seen_dets: set[int] = set()
    dims: set[int] = set()
    for det in detections:
        if det.detection_id in seen_dets:
            raise UserInputError(f"Detection {det.detection_id} is listed twice for tracking.")
        seen_dets.add(det.detection_id)
        if det.image_id not in position:
            raise UserInputError(f"Detection {det.detection_id} belongs to image {det.image_id}, "
                                 "which is not among the night's images.")
        x1, y1, x2, y2 = det.box
        if not all(math.isfinite(v) for v in det.box) or x2 <= x1 or y2 <= y1:
            raise UserInputError(f"Detection {det.detection_id} has an empty or invalid box "
                                 f"{tuple(det.box)}.")
        if det.embedding is not None:
            dims.add(int(np.asarray(det.embedding).size))
    if len(dims) > 1:
        raise UserInputError("The detections of this night have embeddings of different lengths "
                             f"({', '.join(map(str, sorted(dims)))}); they were made by different "
                             "models and cannot be compared. Process the night again with one pipeline.")
    dets = sorted(detections, key=lambda d: (position[d.image_id], d.detection_id))
    n = len(dets)
    image_index = np.fromiter((position[d.image_id] for d in dets), dtype=np.int64, count=n)
    boxes = np.array([d.box for d in dets], dtype=np.float64).reshape(n, 4)
    has = np.fromiter((d.embedding is not None for d in dets), dtype=bool, count=n)
    embeddings = None
    if dims:
        dim = dims.pop()
        embeddings = np.zeros((n, dim), dtype=np.float32)
        rows = np.flatnonzero(has)
        if len(rows):
            embeddings[rows] = np.stack([np.asarray(dets[i].embedding, dtype=np.float32).reshape(-1)
                                         for i in rows])
        norms = np.linalg.norm(embeddings, axis=1)
        bad = has & ~(np.isfinite(norms) & (norms > 0))
        has &= ~bad  # an all-zero or NaN embedding carries no information: treated as missing
        embeddings[~has] = 0.0
        embeddings[has] /= norms[has, None]
    return NightArrays(
        images=ordered, times=times, detections=dets,
        ids=np.fromiter((d.detection_id for d in dets), dtype=np.int64, count=n),
        image_index=image_index,
        image_starts=np.searchsorted(image_index, np.arange(len(ordered) + 1)),
        boxes=boxes,
        scores=np.fromiter((d.score for d in dets), dtype=np.float64, count=n),
        sharpness=np.fromiter((np.nan if d.sharpness is None else d.sharpness for d in dets),
                              dtype=np.float64, count=n),
        sizes=box_sizes(boxes), centres=box_centres(boxes),
        embeddings=embeddings, has_embedding=has)
