"""Turning a catalogue key into a ready model on a device (the ``Detector`` / ``Classifier``
protocols of ``trapgui.ml.base``), plus random-initialised weights in the published format for
tests and benchmarks (the real weights cannot be downloaded everywhere)."""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

import torch
from torch import nn
from trapgui.ml.torchvision_import import import_torchvision

import_torchvision()  # before any torchvision module: see torchvision_import
from torchvision.models.detection.image_list import ImageList  # noqa: E402

from trapgui.core.errors import ModelError
from trapgui.ml.architectures import DETECTOR_MAX_SIZE, build_architecture
from trapgui.ml.architectures_weights import build_with_weights, write_label_map
from trapgui.ml.base import ClassifierInfo, DetectorOutput
from trapgui.ml.detector_input import detector_input, reference_input
from trapgui.ml.model_catalogue import BUILTIN_KEY, RESIZE_MODES, ModelSpec, load_model_catalogue
from trapgui.ml.store import ModelStore

DEFAULT_RANDOM_CLASSES = 100  # for "as many as the label map" models without a label map


class FasterRCNNDetector:
    """A torchvision Faster R-CNN behind the Detector protocol, fed exactly as its publisher's
    app and training feed it: the full-resolution image, normalised and resized by the
    model's own ``GeneralizedRCNNTransform`` (shorter side 800, longer at most 1333, bilinear
    without antialiasing). Reducing the image first (Pillow draft, an antialiased reduction)
    shows the model a different picture and gives different boxes, so this detector asks for
    full-resolution input (``full_resolution_input``) and takes uint8 tensors as decoded.
    Boxes come back in the pixels of the tensors passed in."""

    full_resolution_input = True  # the decoder must not reduce the image (see above)
    accepts_uint8 = True  # converted here one image at a time (a 4K float image is 106 MB)

    def __init__(self, spec: ModelSpec, model: nn.Module, device: torch.device, *,
                 exact_transform: bool = False):
        """``exact_transform``: torchvision's own transform steps on a full-resolution float
        image; otherwise ``ml.detector_input`` computes the same input from the uint8 image
        (same sample positions and weights, float rounding aside) at a fraction of the cost
        and memory."""
        self.key = spec.key
        self.name = spec.name
        self.device = device
        self.score_threshold = float(spec.score_threshold if spec.score_threshold is not None else 0.5)
        # torchvision never looks at more than 1333 px on the longer side (its own resize)
        self.working_max_side: int | None = DETECTOR_MAX_SIZE
        self.exact_transform = exact_transform
        self.model = model.to(device).eval()

    def detect(self, images: list[torch.Tensor]) -> list[DetectorOutput]:
        """``GeneralizedRCNN.forward`` in eval mode, with the same transform steps in the same
        order, one image at a time so that at most one full-resolution float image exists at
        once (torchvision's own forward holds every image of the batch as float, twice).
        Images are batched only with images of the same resized size: torchvision pads a
        batch to its largest image, which changes the detections of the smaller ones (an
        image's boxes must not depend on its batch-mates)."""
        if not images:
            return []
        transform = self.model.transform
        prepare = reference_input if self.exact_transform else detector_input
        originals, inputs = [], []
        with torch.inference_mode():
            for img in images:
                img = img.to(self.device, non_blocking=True)
                originals.append((int(img.shape[-2]), int(img.shape[-1])))
                inputs.append(prepare(img, transform))
            groups: dict[tuple[int, int], list[int]] = {}
            for i, x in enumerate(inputs):
                groups.setdefault((int(x.shape[-2]), int(x.shape[-1])), []).append(i)
            outputs: list[DetectorOutput | None] = [None] * len(images)
            for positions in groups.values():
                found = self._forward([inputs[i] for i in positions],
                                      [originals[i] for i in positions])
                for i, out in zip(positions, found):
                    outputs[i] = out
        return outputs  # type: ignore[return-value]

    def _forward(self, inputs: list[torch.Tensor], originals: list[tuple[int, int]]):
        model, transform = self.model, self.model.transform
        sizes = [(int(x.shape[-2]), int(x.shape[-1])) for x in inputs]
        batch = ImageList(transform.batch_images(inputs, size_divisible=transform.size_divisible),
                          sizes)
        features = model.backbone(batch.tensors)
        if isinstance(features, torch.Tensor):
            features = OrderedDict([("0", features)])
        proposals, _ = model.rpn(batch, features)
        detections, _ = model.roi_heads(features, proposals, batch.image_sizes)
        outputs = transform.postprocess(detections, batch.image_sizes, originals)
        return [DetectorOutput(boxes=out["boxes"].float(), scores=out["scores"].float())
                for out in outputs]


class TorchClassifier:
    """Any image classifier network behind the Classifier protocol: softmax over its labels."""

    def __init__(self, info: ClassifierInfo, model: nn.Module, device: torch.device):
        self.info = info
        self.device = device
        self.model = model.to(device).eval()

    def predict_logits(self, crops: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(crops.to(self.device, torch.float32, non_blocking=True)).float()

    def predict(self, crops: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.predict_logits(crops), dim=1)


def _store(store: ModelStore | None) -> ModelStore:
    if store is not None:
        return store
    from trapgui.config.paths import default_paths

    return ModelStore(default_paths().models_dir)


def _spec(key: str, store: ModelStore | None, task: str) -> ModelSpec:
    catalogue = store.model_catalogue if store is not None else load_model_catalogue()
    spec = catalogue.get(key)
    if spec.task != task:
        raise ModelError(f"'{spec.name}' ({key}) is a {spec.task} model, not a {task} model.")
    return spec


def load_detector(key: str, device: str | torch.device = "cpu", store: ModelStore | None = None):
    """A Detector on ``device``. Raises ModelNotInstalledError when the weights are missing,
    ModelError when they are damaged or do not fit the architecture."""
    device = torch.device(device)
    spec = _spec(key, store, "detection")
    if key == BUILTIN_KEY:
        from trapgui.ml.builtin_detector import BuiltinDetector

        return BuiltinDetector(device=device)
    store = _store(store)
    status = store.require_installed(key)
    model = build_with_weights(spec.architecture, spec.name, status.weights_path,
                               spec.num_classes or 2)
    return FasterRCNNDetector(spec, model, device)


def load_classifier(key: str, device: str | torch.device = "cpu",
                    store: ModelStore | None = None, *,
                    resize_mode: str | None = None) -> TorchClassifier:
    """A Classifier on ``device`` with its labels; errors as for ``load_detector``.
    ``resize_mode`` ("stretch" | "pad") overrides the catalogue's per-model setting."""
    device = torch.device(device)
    spec = _spec(key, store, "classification")
    store = _store(store)
    missing = spec.missing_requirements()
    if missing:
        raise ModelError(f"'{spec.name}' needs the Python package(s) {', '.join(missing)}.",
                         hint=f"Install with: pip install {' '.join(missing)}")
    status = store.require_installed(key)
    labels = store.labels(key)
    model = build_with_weights(spec.architecture, spec.name, status.weights_path, len(labels),
                               labels_count=len(labels))
    info = classifier_info(spec, labels)
    if resize_mode is not None:
        if resize_mode not in RESIZE_MODES:
            raise ModelError(f"Unknown crop resize mode '{resize_mode}': use "
                             f"{' or '.join(RESIZE_MODES)}.")
        info.resize_mode = resize_mode
    return TorchClassifier(info, model, device)


def classifier_info(spec: ModelSpec, labels: list[str]) -> ClassifierInfo:
    return ClassifierInfo(
        key=spec.key, name=spec.name, rank=spec.rank, input_size=int(spec.input_size),
        mean=tuple(spec.mean), std=tuple(spec.std), labels=list(labels),
        resize_mode=spec.resize_mode, positive_labels=set(spec.positive_labels),
    )


# ---- random weights in the published format ----------------------------------------------

def synthetic_labels(spec: ModelSpec, n: int) -> list[str]:
    """Labels for random weights: the binary filter's real ones, otherwise numbered species
    names (every other one a numeric GBIF-style id, as in the older label maps)."""
    if spec.positive_labels and n == 2:
        positive = sorted(spec.positive_labels)[0]
        return [positive, f"non{positive}"]
    return [f"{spec.rank.value if spec.rank else 'class'} {i:05d}" if i % 2 == 0
            else str(1_000_000 + i) for i in range(n)]


def make_random_weights(key: str, path: str | os.PathLike, seed: int = 0,
                        num_classes: int | None = None, *, fmt: str | None = None,
                        labels_path: str | os.PathLike | None = None,
                        catalogue=None) -> tuple[Path, Path | None]:
    """Save random-initialised weights for ``key`` at ``path`` as the publisher would (a plain
    state dict, or ``{"model_state_dict": ..., "epoch": ...}`` with ``fmt="checkpoint"``), and
    for classifiers a ``{label: index}`` label map beside it (``<stem>.labels.json`` unless
    ``labels_path``). Deterministic for a seed. Returns (weights path, label map path)."""
    spec = (catalogue or load_model_catalogue()).get(key)
    if not spec.needs_weights:
        raise ModelError(f"'{spec.name}' has no weights file.")
    n = num_classes or spec.num_classes or DEFAULT_RANDOM_CLASSES
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_architecture(spec.architecture, n)
        _make_bn_stats_nontrivial(model)
    state = model.state_dict()
    fmt = fmt or spec.checkpoint_format or "state_dict"
    payload = state if fmt == "state_dict" else {"model_state_dict": state, "epoch": 30,
                                                 "best_val_accuracy": 0.5}
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)
    labels_out = None
    if spec.is_classifier:
        labels_out = Path(labels_path) if labels_path else path.with_name(path.stem + ".labels.json")
        write_label_map(synthetic_labels(spec, n), labels_out)
    return path, labels_out


def _make_bn_stats_nontrivial(model: nn.Module) -> None:
    """Fresh BatchNorm layers have mean 0 / var 1; trained ones do not. Random statistics make
    the saved file exercise the running-stat buffers like a real one."""
    gen = torch.Generator().manual_seed(1234)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm) and module.running_mean is not None:
            module.running_mean.copy_(torch.randn(module.running_mean.shape, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(module.running_var.shape, generator=gen) + 0.5)


def install_random_weights(store: ModelStore, key: str, seed: int = 0,
                           num_classes: int | None = None) -> Path:
    """Put random weights (and a label map) straight into the store as if downloaded, without
    the import-time load check (they were just built from the architecture). For tests and
    benchmarks only."""
    weights, labels = store.weights_path(key), store.labels_path(key)
    make_random_weights(key, weights, seed, num_classes, labels_path=labels,
                        catalogue=store.model_catalogue)
    return weights
