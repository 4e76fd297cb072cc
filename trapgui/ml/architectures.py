"""The network architectures of the published AMI models, built exactly as their publishers
built them so that the published state dicts load with ``strict=True``.

Nothing here ever downloads anything: every torchvision/timm constructor is called with
``weights=None`` / ``pretrained=False`` and no pretrained backbone (the published files carry
every parameter).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from trapgui.core.errors import ModelError
from trapgui.ml.torchvision_import import import_torchvision

import_torchvision()  # its constructors import torchvision lazily: see torchvision_import

# Faster R-CNN keeps at most this many boxes per image (the publishers' setting; the default
# of 100 loses insects on a busy night).
BOX_DETECTIONS_PER_IMG = 500
DETECTOR_MIN_SIZE = 800
DETECTOR_MAX_SIZE = 1333


def _frcnn_resnet50_backbone():
    """ResNet-50 FPN exactly as ``fasterrcnn_resnet50_fpn`` builds it when a pretrained backbone
    was used for training (FrozenBatchNorm2d, 3 trainable layers), without downloading it.
    FrozenBatchNorm2d drops ``num_batches_tracked`` when loading, so files saved with plain
    BatchNorm2d load too; in eval mode both compute the same thing."""
    from torchvision.models import resnet50
    from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor
    from torchvision.ops import misc as misc_nn_ops

    body = resnet50(weights=None, norm_layer=misc_nn_ops.FrozenBatchNorm2d)
    return _resnet_fpn_extractor(body, 3)


def build_fasterrcnn_resnet50_fpn(num_classes: int = 2) -> nn.Module:
    """2023: ``torchvision.models.get_model("fasterrcnn_resnet50_fpn", num_classes=2)``."""
    from torchvision.models.detection import FasterRCNN

    return FasterRCNN(_frcnn_resnet50_backbone(), num_classes=num_classes,
                      min_size=DETECTOR_MIN_SIZE, max_size=DETECTOR_MAX_SIZE,
                      box_detections_per_img=BOX_DETECTIONS_PER_IMG)


def build_fasterrcnn_resnet50_fpn_replaced_predictor(num_classes: int = 2) -> nn.Module:
    """2021: the 91-class COCO model whose box predictor was replaced by a 2-class one."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor

    model = FasterRCNN(_frcnn_resnet50_backbone(), num_classes=91,
                       min_size=DETECTOR_MIN_SIZE, max_size=DETECTOR_MAX_SIZE,
                       box_detections_per_img=BOX_DETECTIONS_PER_IMG)
    in_features = model.roi_heads.box_predictor.cls_score.in_features
    model.roi_heads.box_predictor = FastRCNNPredictor(in_features, num_classes)
    return model


def build_fasterrcnn_mobilenet_v3_large_fpn_ami(num_classes: int = 2) -> nn.Module:
    """2023 MobileNet: MobileNetV3-Large FPN trained from scratch (all 6 layers trainable,
    plain BatchNorm2d), larger anchors than torchvision's own mobilenet detector."""
    from torchvision.models.detection import FasterRCNN
    from torchvision.models.detection.anchor_utils import AnchorGenerator
    from torchvision.models.detection.backbone_utils import _mobilenet_extractor
    from torchvision.models.mobilenetv3 import mobilenet_v3_large

    body = mobilenet_v3_large(weights=None, norm_layer=nn.BatchNorm2d)
    backbone = _mobilenet_extractor(body, True, 6)
    anchor_sizes = ((64, 128, 256, 512),) * 3
    aspect_ratios = ((0.5, 1.0, 2.0),) * len(anchor_sizes)
    return FasterRCNN(backbone, num_classes,
                      rpn_anchor_generator=AnchorGenerator(anchor_sizes, aspect_ratios),
                      rpn_score_thresh=0.05,
                      min_size=DETECTOR_MIN_SIZE, max_size=DETECTOR_MAX_SIZE,
                      box_detections_per_img=BOX_DETECTIONS_PER_IMG)


def build_torchvision_resnet50(num_classes: int) -> nn.Module:
    from torchvision.models import resnet50

    model = resnet50(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_classes)
    return model


class TuringResNet50(nn.Module):
    """The custom ResNet-50 of the Turing models and the Jan 2023 Panama model: torchvision's
    ResNet-50 without avgpool/fc as ``backbone``, then ``avgpool`` and a bias-free
    ``classifier``. The attribute names are the state-dict keys, so they must not change."""

    def __init__(self, num_classes: int):
        super().__init__()
        from torchvision.models import resnet50

        body = resnet50(weights=None)
        out_dim = body.fc.in_features
        self.backbone = nn.Sequential(*list(body.children())[:-2])
        self.avgpool = nn.AdaptiveAvgPool2d(output_size=(1, 1))
        self.classifier = nn.Linear(out_dim, num_classes, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.avgpool(self.backbone(x))
        return self.classifier(torch.flatten(x, 1))


def build_turing_resnet50(num_classes: int) -> nn.Module:
    return TuringResNet50(num_classes)


def _timm_model(names: tuple[str, ...], num_classes: int) -> nn.Module:
    try:
        import timm
    except ImportError:
        raise ModelError(
            "This model needs the optional package 'timm', which is not installed.",
            hint="Install it with: pip install 'timm>=1.0'",
        ) from None
    last_exc: Exception | None = None
    for name in names:  # current timm name first, the publisher's (deprecated) name second
        try:
            return timm.create_model(name, pretrained=False, num_classes=num_classes)
        except RuntimeError as exc:  # "Unknown model" in this timm version
            last_exc = exc
    raise ModelError(f"The installed timm ({timm.__version__}) cannot build {names[-1]}: {last_exc}")


def build_timm_resnet50(num_classes: int) -> nn.Module:
    """timm's ``resnet50`` is torchvision's ResNet-50 layer for layer, under the same
    state-dict names (tests/test_architectures.py holds the two equal in float64 when timm is
    installed): built without importing timm, which costs a second at every start."""
    return build_torchvision_resnet50(num_classes)


def build_timm_tf_efficientnetv2_b3(num_classes: int) -> nn.Module:
    return _timm_model(("tf_efficientnetv2_b3",), num_classes)


def build_timm_convnext_tiny_in22k(num_classes: int) -> nn.Module:
    # "convnext_tiny_in22k" was renamed "convnext_tiny.fb_in22k" in timm 0.9: same network.
    return _timm_model(("convnext_tiny.fb_in22k", "convnext_tiny_in22k"), num_classes)


BUILDERS: dict[str, Callable[[int], nn.Module]] = {
    "fasterrcnn_resnet50_fpn_replaced_predictor": build_fasterrcnn_resnet50_fpn_replaced_predictor,
    "fasterrcnn_resnet50_fpn": build_fasterrcnn_resnet50_fpn,
    "fasterrcnn_mobilenet_v3_large_fpn_ami": build_fasterrcnn_mobilenet_v3_large_fpn_ami,
    "torchvision_resnet50": build_torchvision_resnet50,
    "turing_resnet50": build_turing_resnet50,
    "timm_resnet50": build_timm_resnet50,
    "timm_tf_efficientnetv2_b3": build_timm_tf_efficientnetv2_b3,
    "timm_convnext_tiny_in22k": build_timm_convnext_tiny_in22k,
}

# The state-dict entry whose first dimension is the number of classes, per architecture: lets
# us say "this file has 10 classes, the label map 2" instead of a raw shape mismatch.
HEAD_WEIGHT_KEYS: dict[str, str] = {
    "fasterrcnn_resnet50_fpn_replaced_predictor": "roi_heads.box_predictor.cls_score.weight",
    "fasterrcnn_resnet50_fpn": "roi_heads.box_predictor.cls_score.weight",
    "fasterrcnn_mobilenet_v3_large_fpn_ami": "roi_heads.box_predictor.cls_score.weight",
    "torchvision_resnet50": "fc.weight",
    "turing_resnet50": "classifier.weight",
    "timm_resnet50": "fc.weight",
    "timm_tf_efficientnetv2_b3": "classifier.weight",
    "timm_convnext_tiny_in22k": "head.fc.weight",
}


def build_architecture(architecture: str, num_classes: int,
                       device: str | torch.device | None = None) -> nn.Module:
    """A randomly initialised network of the given catalogue architecture id, in eval mode.

    ``device="meta"`` builds the structure only (no memory, no random initialisation: ~100x
    faster), for loading weights into with ``load_state_dict(..., assign=True)``."""
    try:
        builder = BUILDERS[architecture]
    except KeyError:
        raise ModelError(f"trapgui does not know how to build the architecture '{architecture}'; "
                         "a newer version of trapgui may be needed.") from None
    if num_classes < 1:
        raise ModelError(f"Cannot build {architecture} with {num_classes} classes.")
    if device is None:
        return builder(num_classes).eval()
    if torch.device(device).type == "meta":
        with torch.device("meta"), _MetaSkipsRandomFills():
            return builder(num_classes).eval()
    with torch.device(device):
        return builder(num_classes).eval()


class _MetaSkipsRandomFills(TorchFunctionMode):
    """Random initialisation of a meta tensor does nothing (it has no values), but some fills
    (``normal_``: torchvision's kaiming_normal_ and normal_ inits) run as Python references
    on meta tensors, and the first one imports torch._dynamo, sympy and triton (~150 MB and
    seconds): they return the tensor unchanged instead. Torch function modes are per thread,
    so a model built for real on another thread at the same time is untouched. (Inside a
    mode's handler the mode is off, so the ``nn.init`` functions themselves are listed.)"""

    FILLS = frozenset({
        torch.Tensor.normal_, torch.Tensor.uniform_, torch.Tensor.erfinv_,
        torch.Tensor.exponential_, torch.Tensor.log_normal_, torch.Tensor.cauchy_,
        torch.Tensor.geometric_, torch.Tensor.random_, torch.Tensor.bernoulli_,
        nn.init.normal_, nn.init.uniform_, nn.init.trunc_normal_, nn.init.kaiming_normal_,
        nn.init.kaiming_uniform_, nn.init.xavier_normal_, nn.init.xavier_uniform_,
        nn.init.orthogonal_, nn.init.sparse_})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        if func in self.FILLS and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def classes_in_state_dict(architecture: str, state_dict: dict) -> int | None:
    """How many classes the weights in a state dict were trained for, if we can tell."""
    key = HEAD_WEIGHT_KEYS.get(architecture)
    tensor = state_dict.get(key) if key else None
    if isinstance(tensor, torch.Tensor) and tensor.dim() >= 1:
        return int(tensor.shape[0])
    return None
