"""Small real parts for the engine tests: tiny copies of the trap images and small real torch
classifiers (not mocks: they run real forward passes; some fail or count on purpose)."""

from __future__ import annotations

import threading
from pathlib import Path

import torch
from torch import nn

from trapgui.core.types import Rank
from trapgui.ml.base import IMAGENET_MEAN, IMAGENET_STD, ClassifierInfo
from trapgui.ml.registry import TorchClassifier

SHARED_IMAGES = Path(__file__).resolve().parent.parent.parent / "shared" / "trap-images"


def make_tiny_trap(dst: Path, side: int = 320, limit: int | None = None,
                   folders: tuple[str, ...] = ("vermont", "sequential", "panama", "DSLR")) -> Path:
    """Copies of the shared images, longest side ``side`` (fast DCT-scaled decode), with EXIF."""
    from tests.image_files import save_downscaled

    dst.mkdir(parents=True, exist_ok=True)
    files = [f for folder in folders for f in sorted((SHARED_IMAGES / folder).glob("*.jpg"))]
    for src in files[:limit]:
        save_downscaled(src, dst / src.name, side, keep_mtime=True)
    return dst


def tiny_net(num_classes: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(8, num_classes))


def info(key: str, rank: Rank, labels: list[str], size: int = 32, positive=()) -> ClassifierInfo:
    return ClassifierInfo(key, key, rank, size, IMAGENET_MEAN, IMAGENET_STD, labels,
                          positive_labels=set(positive))


class CountingClassifier(TorchClassifier):
    """Counts forward calls and crops seen."""

    def __init__(self, info: ClassifierInfo, model: nn.Module, device="cpu"):
        super().__init__(info, model, torch.device(device))
        self.calls = 0
        self.crops_seen = 0
        self.largest_call = 0
        self._lock = threading.Lock()

    def predict_logits(self, crops):
        with self._lock:
            self.calls += 1
            self.crops_seen += int(crops.shape[0])
            self.largest_call = max(self.largest_call, int(crops.shape[0]))
        return super().predict_logits(crops)


class DarknessNet(nn.Module):
    """moth/nonmoth by mean brightness of the (normalised) crop: darker than ``cut`` = moth.
    Lets tests know which crops pass the binary filter."""

    def __init__(self, cut: float = 0.0):
        super().__init__()
        self.cut = cut

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        return torch.stack([(self.cut - m) * 20, (m - self.cut) * 20], dim=1)


def binary_classifier(cut: float = 0.0, size: int = 32) -> CountingClassifier:
    return CountingClassifier(info("darkness_binary", Rank.BINARY, ["moth", "nonmoth"], size,
                                   positive=("moth",)), DarknessNet(cut))


def species_classifier(n: int = 7, size: int = 32, key: str = "tiny_species") -> CountingClassifier:
    return CountingClassifier(info(key, Rank.SPECIES, [f"species {i}" for i in range(n)], size),
                              tiny_net(n))


class FailOnCallClassifier(CountingClassifier):
    """Raises on chosen forward calls (1-based), like a driver error in one batch."""

    def __init__(self, *args, fail_calls=(2,), **kwargs):
        super().__init__(*args, **kwargs)
        self.fail_calls = set(fail_calls)

    def predict_logits(self, crops):
        out = super().predict_logits(crops)
        if self.calls in self.fail_calls:
            raise RuntimeError("simulated device failure in this batch")
        return out


class OutOfMemoryOverClassifier(CountingClassifier):
    """Raises torch.OutOfMemoryError for more than ``limit`` crops at once."""

    def __init__(self, *args, limit: int = 4, **kwargs):
        super().__init__(*args, **kwargs)
        self.limit = limit

    def predict_logits(self, crops):
        if crops.shape[0] > self.limit:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return super().predict_logits(crops)
