"""Published detectors reproduce the reference: torchvision's own path (the publisher's app and
training: the full-resolution image into the model, its GeneralizedRCNNTransform resizing
inside) against trapgui's (decode, the engine's device step, boxes back in image pixels).

Fixed weights of the published MobileNet Faster R-CNN architecture: random (seed 0), BatchNorm
statistics re-estimated on a trap image so features depend on the image, box head re-drawn
(seed 1011) with its logits spread and shifted so that, as with a trained detector, a few
dozen boxes per 4K image score above 0.5 and many more below. The bar: at least 98 % of the
reference's boxes (all it returns at or above the storage floor) matched one to one at IoU
>= 0.9 with scores within 1e-3. (trapgui drops boxes under one pixel wide or high, counted in
``skipped_boxes``: the random head makes a few; they are left out of the reference too.)
"""

from __future__ import annotations

import pytest
import torch
from PIL import Image
from torchvision.transforms.functional import to_tensor

from trapgui.ml.architectures import build_architecture
from trapgui.ml.crops import clean_boxes
from trapgui.ml.registry import load_detector
from trapgui.ml.store import ModelStore
from trapgui.pipeline.loader import Decoder
from trapgui.pipeline.processor import BatchProcessor

KEY = "fasterrcnn_mobilenet_v3_2023"
IMAGES = ("vermont/20220622000459-108-snapshot.jpg", "panama/01-20231110214539-snapshot.jpg",
          "DSLR/DSC_0390.JPG")  # two 4096x2160 (reduced by the transform), one 1024x680 (enlarged)
FLOOR = 0.1  # the storage floor: every box the reference returns at or above it must match
LOGIT_GAIN, LOGIT_SHIFT = 20.0, -2.0


def _fixed_detector(calibration_image) -> torch.nn.Module:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = build_architecture("fasterrcnn_mobilenet_v3_large_fpn_ami", 2)
        for mod in model.backbone.modules():  # image-dependent features (a random net collapses)
            if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                mod.reset_running_stats()
                mod.momentum = None
                mod.train()
        with torch.no_grad():
            model.backbone(model.transform([calibration_image])[0].tensors)
        model.eval()
        heads = model.roi_heads
        torch.manual_seed(1011)
        for mod in (heads.box_head.fc6, heads.box_head.fc7, heads.box_predictor.cls_score,
                    heads.box_predictor.bbox_pred):
            mod.reset_parameters()
        with torch.no_grad():  # background / object logits: spread, then most boxes below 0.5
            heads.box_predictor.cls_score.weight.mul_(LOGIT_GAIN)
            heads.box_predictor.cls_score.bias.mul_(LOGIT_GAIN)
            heads.box_predictor.cls_score.bias[1] += LOGIT_SHIFT
    return model


@pytest.fixture(scope="module")
def reference_and_store(tmp_path_factory, shared_images):
    paths = [shared_images / name for name in IMAGES]
    model = _fixed_detector(to_tensor(Image.open(paths[0]).convert("RGB")))
    folder = tmp_path_factory.mktemp("reference-detector")
    torch.save(model.state_dict(), folder / "weights.pt")
    store = ModelStore(folder / "models")
    store.import_file(KEY, folder / "weights.pt")  # as a user installs a copied file
    with torch.inference_mode():  # the reference: torchvision's own path, image by image
        reference = [model([to_tensor(Image.open(p).convert("RGB"))])[0] for p in paths]
    return paths, reference, store


def _iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    from torchvision.ops import box_iou

    return box_iou(a.double(), b.double())


def matched_fraction(ref_boxes, ref_scores, boxes, scores, *, iou=0.9, tol=1e-3) -> float:
    """Reference boxes matched one to one (greedily, best reference score first) by a box at
    IoU >= ``iou`` whose score is within ``tol``."""
    if len(ref_boxes) == 0:
        return 1.0
    if len(boxes) == 0:
        return 0.0
    ious = _iou(ref_boxes, boxes)
    close = (ref_scores.double()[:, None] - scores.double()[None, :]).abs() <= tol
    ok = (ious >= iou) & close
    taken = torch.zeros(len(boxes), dtype=torch.bool)
    matched = 0
    for r in torch.argsort(ref_scores, descending=True).tolist():
        candidates = torch.nonzero(ok[r] & ~taken).flatten()
        if len(candidates):
            best = candidates[torch.argmax(ious[r, candidates])]
            taken[best] = True
            matched += 1
    return matched / len(ref_boxes)


def _run_engine_step(paths, store, *, exact: bool):
    detector = load_detector(KEY, "cpu", store)
    detector.exact_transform = exact
    processor = BatchProcessor(detector, score_floor=FLOOR)
    decoder = Decoder.for_processors(processor)  # what a run decodes with (no reduction)
    images = [decoder(i, str(p)) for i, p in enumerate(paths)]
    assert all(im.tensor is not None and im.scale == 1.0 for im in images)
    return processor.process(images)


@pytest.mark.parametrize("exact", [False, True], ids=["default", "exact-transform"])
def test_engine_reproduces_torchvisions_own_detections(reference_and_store, exact):
    paths, reference, store = reference_and_store
    results = _run_engine_step(paths, store, exact=exact)
    total_ref = total_matched = above_half = 0
    for ref, result in zip(reference, results):
        keep = ref["scores"] >= FLOOR
        _clipped, valid, _ = clean_boxes(ref["boxes"], *Image.open(paths[result.image_id]).size)
        keep &= valid
        ref_boxes, ref_scores = ref["boxes"][keep], ref["scores"][keep]
        boxes = torch.tensor([d.box.as_tuple() for d in result.detections]).reshape(-1, 4)
        scores = torch.tensor([d.score for d in result.detections])
        fraction = matched_fraction(ref_boxes, ref_scores, boxes, scores)
        total_ref += len(ref_boxes)
        total_matched += round(fraction * len(ref_boxes))
        above_half += int((ref_scores >= 0.5).sum())
        assert fraction >= 0.98, (result.image_id, fraction, len(ref_boxes), len(boxes))
    # a realistic workload: many boxes stored, a few dozen per image above 0.5
    assert total_ref >= 300 and 10 <= above_half <= total_ref / 2, (total_ref, above_half)
    assert total_matched / total_ref >= 0.98


def test_the_decoder_does_not_reduce_images_for_published_detectors(reference_and_store):
    paths, _reference, store = reference_and_store
    processor = BatchProcessor(load_detector(KEY, "cpu", store))
    assert processor.full_resolution_detection and processor.detection_max_side is None
    decoder = Decoder.for_processors(processor)
    image = decoder(0, str(paths[1]))  # detection only: still the full 4096x2160 pixels
    assert tuple(image.tensor.shape) == (3, 2160, 4096) and image.scale == 1.0
