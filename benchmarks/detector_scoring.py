"""Point-in-box scoring of a detector against hand-labelled insect points.

Labels are small JSON files (tests/data/detector-labels/*.json): one point per insect and
"unsure" points for specks nobody can call. Scoring, at a score threshold:

- boxes are taken in descending score order; a box that contains an insect point not yet
  claimed claims the unclaimed point nearest its centre and is a true positive;
- a box that contains no unclaimed insect point but an "unsure" point, and no insect point at
  all, is ignored (don't-care);
- every other box is a false positive (empty sheet, a fixture, a duplicate or a part-box whose
  insect was already claimed by a better box);
- every insect point that no box claimed is a miss.

Shared by benchmarks/eval_builtin_detector.py, benchmarks/fit_detector_score.py and the tests.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LABELS = REPO / "tests" / "data" / "detector-labels"

# Which labelled photos the detector may be tuned on, and which are kept for reporting. Every
# trap contributes to both; the held-out side also keeps the photos with the hardest
# cases (the Vermont scale bar, stain and merged luna moth, the sequential sheet grain).
TUNE_PHOTOS = (
    "panama/01-20231110214539-snapshot.jpg",
    "panama/01-20231111015309-snapshot.jpg",
    "sequential/20220728232239-00-69.jpg",
    "sequential/20220728232445-00-71.jpg",
    "vermont/20220622000459-108-snapshot.jpg",
)
HELD_OUT_PHOTOS = (
    "panama/01-20231110224529-snapshot.jpg",
    "panama/01-20231111032659-snapshot.jpg",
    "sequential/20220728232322-00-70.jpg",
    "sequential/20220728232552-00-72.jpg",
    "sequential/20220728232652-00-74.jpg",
    "vermont/20220622200400-01-snapshot.jpg",
    "vermont/20220623043000-215-snapshot.jpg",
)
NOT_SHEETS = ("DSLR/DSC_0390.JPG", "DSLR/DSC_0391.JPG")
# Insects at least this long (pixels of a 4096 px wide photo, ~5 mm on these sheets) are
# reported apart too: below it are the gnats of 8-19 px that the 1536 px working resolution
# barely resolves.
BIG_INSECT = 20


@dataclass
class Labels:
    image: str  # path relative to the trap-images folder (or a synthetic name)
    width: int
    height: int
    sheet: bool
    insects: np.ndarray  # (N, 2) float64 x, y in original pixels
    unsure: np.ndarray  # (M, 2)
    # (N,) longest side in pixels of the foreground region each insect lay in when labelled
    # (0 = not measured); used to report recall for insects of at least BIG_INSECT pixels.
    sizes: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.sizes is None:
            self.sizes = np.zeros(len(self.insects))

    @staticmethod
    def from_dict(doc: dict) -> Labels:
        insects = np.asarray(doc.get("insects", []), dtype=np.float64).reshape(-1, 2)
        sizes = np.asarray(doc.get("insect_sizes", [0] * len(insects)), dtype=np.float64)
        return Labels(
            image=doc["image"],
            width=int(doc["width"]),
            height=int(doc["height"]),
            sheet=bool(doc.get("sheet", True)),
            insects=insects,
            unsure=np.asarray(doc.get("unsure", []), dtype=np.float64).reshape(-1, 2),
            sizes=sizes,
        )


def load_labels(folder: Path = LABELS) -> dict[str, Labels]:
    out = {}
    for path in sorted(folder.glob("*.json")):
        labels = Labels.from_dict(json.loads(path.read_text()))
        out[labels.image] = labels
    return out


@dataclass
class ImageScore:
    tp: int = 0
    fp: int = 0
    ignored: int = 0
    missed: int = 0
    insects: int = 0
    big: int = 0  # insects of at least BIG_INSECT pixels ...
    big_found: int = 0  # ... and how many of them a box claimed
    # Per box (in the order given): 1 = true positive, 0 = false positive, -1 = ignored,
    # -2 = below the threshold (not scored).
    outcome: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # Per labelled insect (in the labels' order): whether a box claimed it.
    claimed: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __iadd__(self, other: ImageScore) -> ImageScore:
        self.tp += other.tp
        self.fp += other.fp
        self.ignored += other.ignored
        self.missed += other.missed
        self.insects += other.insects
        self.big += other.big
        self.big_found += other.big_found
        return self

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return (self.insects - self.missed) / self.insects if self.insects else 1.0

    @property
    def big_recall(self) -> float:
        return self.big_found / self.big if self.big else 1.0


def _inside(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    return (
        (points[:, 0] >= box[0])
        & (points[:, 0] <= box[2])
        & (points[:, 1] >= box[1])
        & (points[:, 1] <= box[3])
    )


def score_image(
    boxes: np.ndarray, scores: np.ndarray, labels: Labels, threshold: float
) -> ImageScore:
    """Greedy point-in-box matching of one image's boxes (N, 4 xyxy, original pixels)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    outcome = np.full(len(boxes), -2, dtype=np.int64)
    claimed = np.zeros(len(labels.insects), dtype=bool)
    result = ImageScore(insects=len(labels.insects))
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < threshold:
            continue
        box = boxes[i]
        inside = _inside(labels.insects, box) if len(labels.insects) else np.zeros(0, bool)
        free = inside & ~claimed
        if free.any():
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            candidates = np.flatnonzero(free)
            d = np.linalg.norm(labels.insects[candidates] - centre, axis=1)
            claimed[candidates[int(np.argmin(d))]] = True
            outcome[i] = 1
            result.tp += 1
        elif not inside.any() and len(labels.unsure) and _inside(labels.unsure, box).any():
            outcome[i] = -1
            result.ignored += 1
        else:
            outcome[i] = 0
            result.fp += 1
    result.missed = int((~claimed).sum())
    big = labels.sizes >= BIG_INSECT
    result.big = int(big.sum())
    result.big_found = int((big & claimed).sum())
    result.outcome = outcome
    result.claimed = claimed
    return result


def training_targets(boxes: np.ndarray, labels: Labels) -> np.ndarray:
    """Per box, whether it is the insect's box, independently of any score: each insect point
    goes to the box containing it whose centre is nearest (relative to the box's size), so a
    part-box on a wing loses to the box of the whole insect and a merged box keeps one insect.
    Returns 1 (insect box), 0 (no insect), -1 (only unsure specks inside: don't care)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    target = np.zeros(len(boxes), dtype=np.int64)
    if len(boxes) == 0:
        return target
    centre = (boxes[:, :2] + boxes[:, 2:]) / 2
    size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0)
    any_insect = np.zeros(len(boxes), dtype=bool)
    for point in labels.insects:
        inside = (
            (point[0] >= boxes[:, 0])
            & (point[0] <= boxes[:, 2])
            & (point[1] >= boxes[:, 1])
            & (point[1] <= boxes[:, 3])
        )
        if not inside.any():
            continue
        any_insect |= inside
        d = np.linalg.norm((point - centre) / size, axis=1)
        d[~inside] = np.inf
        target[int(np.argmin(d))] = 1
    if len(labels.unsure):
        for i in np.flatnonzero((target == 0) & ~any_insect):
            if _inside(labels.unsure, boxes[i]).any():
                target[i] = -1
    return target


def pr_table(
    per_image: list[tuple[np.ndarray, np.ndarray, Labels]], thresholds: np.ndarray
) -> list[tuple[float, ImageScore]]:
    rows = []
    for t in thresholds:
        total = ImageScore()
        for boxes, scores, labels in per_image:
            total += score_image(boxes, scores, labels, float(t))
        rows.append((float(t), total))
    return rows


def operating_point(rows: list[tuple[float, ImageScore]], min_recall: float):
    """The threshold with the best precision among those reaching `min_recall` (None if none)."""
    ok = [(s.precision, t, s) for t, s in rows if s.recall >= min_recall]
    if not ok:
        return None
    precision, t, s = max(ok, key=lambda r: (r[0], r[1]))
    return t, s


def reliability(
    scores: np.ndarray, targets: np.ndarray, edges: np.ndarray
) -> tuple[list[tuple[float, float, int, float, float]], float]:
    """Reliability table over score bins (don't-care boxes excluded): (low, high, boxes, mean
    predicted score, observed fraction of insects), and the Brier score."""
    keep = targets >= 0
    s, y = scores[keep], targets[keep].astype(np.float64)
    rows = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        m = (s >= lo) & ((s < hi) | (hi >= edges[-1]))
        if m.any():
            rows.append((float(lo), float(hi), int(m.sum()), float(s[m].mean()), float(y[m].mean())))
        else:
            rows.append((float(lo), float(hi), 0, float("nan"), float("nan")))
    brier = float(np.mean((s - y) ** 2)) if len(s) else float("nan")
    return rows, brier
