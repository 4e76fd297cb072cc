"""What the engine expects of a detector and a classifier, whatever their architecture.

Every model wrapper lives on one device. Inputs are already on that device.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from trapgui.core.types import Rank

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
HALF_MEAN = (0.5, 0.5, 0.5)
HALF_STD = (0.5, 0.5, 0.5)


@dataclass
class DetectorOutput:
    """Boxes for one image, in pixels of the tensor that was passed in (the engine rescales
    to original-image pixels when it passed a reduced image)."""

    boxes: torch.Tensor  # (N, 4) float32, x1 y1 x2 y2
    scores: torch.Tensor  # (N,) float32 in [0, 1]
    # why the detector could not look at this image at all (the built-in detector on a photo
    # that is not of a lit sheet); the engine then records the image as not processed, with
    # this sentence, instead of as an image with no insects
    refused: str | None = None


class Detector(Protocol):
    key: str  # catalogue key, e.g. "builtin", "fasterrcnn_resnet50_2023"
    name: str
    device: torch.device
    # Longest image side the model works at (torchvision's transform resizes to ~1333 anyway);
    # the loader may decode JPEGs at reduced size (Pillow draft) down to this. None = full size.
    working_max_side: int | None
    score_threshold: float  # catalogue default for "keep"; all boxes >= storage floor are stored

    def detect(self, images: list[torch.Tensor]) -> list[DetectorOutput]:
        """images: float32 (3, H, W) in [0, 1], sizes may differ within the batch."""
        ...


@dataclass
class ClassifierInfo:
    key: str
    name: str
    rank: Rank
    input_size: int  # square side in pixels
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    labels: list[str]  # index -> label
    resize_mode: str = "stretch"  # "stretch" to a square, or "pad" to square first
    positive_labels: set[str] = field(default_factory=set)  # binary filter: labels that pass


class Classifier(Protocol):
    info: ClassifierInfo
    device: torch.device

    def predict(self, crops: torch.Tensor) -> torch.Tensor:
        """crops: (N, 3, S, S) float32 already normalised with info.mean/std.
        Returns softmax probabilities (N, len(info.labels)). Never called with N == 0."""
        ...
