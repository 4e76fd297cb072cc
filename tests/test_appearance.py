"""Appearance embeddings: the cheap descriptor on real insect crops, and features taken from
the classifier forward of every catalogue classifier architecture (random weights)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from trapgui.ml.appearance import (DESCRIPTOR_DIM, FeatureClassifier, RandomProjection,
                                   appearance_descriptors, classifier_head, crop_sharpness)
from trapgui.ml.architectures import build_architecture
from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.ml.crops import stack_crops
from trapgui.ml.registry import _make_bn_stats_nontrivial

F16_ULP = 2.0 ** -10  # float16 spacing in [0.5, 1): no component of a unit vector is larger


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def trap(shared_images):
    """A dense real trap photo (4096 x 2160) and the built-in detector's kept boxes, apart from
    boxes that touch another one (a crop of two insects is no use for this test) and boxes
    under 40 px: the detector also keeps gnats of ~20 px (in 32 px boxes), a dark dot each,
    which no appearance descriptor tells apart (and a 3 px shift is a tenth of such a box);
    tracking tells them apart by position."""
    with Image.open(shared_images / "panama" / "01-20231110224529-snapshot.jpg") as im:
        pixels = torch.from_numpy(np.array(im.convert("RGB"))).permute(2, 0, 1).float() / 255
    detector = BuiltinDetector()
    out = detector.detect([pixels])[0]
    boxes = out.boxes[out.scores >= detector.score_threshold]
    h, w = pixels.shape[1:]
    keep = []
    for i, b in enumerate(boxes.tolist()):
        others = [o for j, o in enumerate(boxes.tolist()) if j != i]
        apart = all(b[2] + 8 < o[0] or o[2] + 8 < b[0] or b[3] + 8 < o[1] or o[3] + 8 < b[1]
                    for o in others)
        inside = b[0] > 8 and b[1] > 8 and b[2] < w - 8 and b[3] < h - 8
        big = max(b[2] - b[0], b[3] - b[1]) >= 40
        if apart and inside and big:
            keep.append(b)
    assert len(keep) >= 15, f"only {len(keep)} separate insects found"
    return pixels, torch.tensor(keep)


def _crops(pixels, boxes, size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)):
    return stack_crops([pixels], [boxes], size, "stretch", mean, std).crops


def test_descriptor_format_and_same_crop_same_vector(trap):
    pixels, boxes = trap
    crops = _crops(pixels, boxes)
    a = appearance_descriptors(crops)
    assert a.dtype == torch.float16 and a.shape == (len(boxes), DESCRIPTOR_DIM)
    assert torch.isfinite(a.float()).all()
    torch.testing.assert_close(a.float().norm(dim=1), torch.ones(len(boxes)), atol=4e-3, rtol=0)
    assert torch.equal(appearance_descriptors(crops), a)  # the same call twice
    alone = torch.cat([appearance_descriptors(crops[i:i + 1]) for i in range(len(crops))])
    # per-crop arithmetic: only the float16 rounding of a value on a rounding edge may differ
    assert (alone.float() - a.float()).abs().max() <= F16_ULP


def test_different_insects_are_further_apart_than_the_same_one_shifted(trap):
    pixels, boxes = trap
    shifted = boxes + torch.tensor([3.0, -2.0, 3.0, -2.0])  # a few pixels
    a = appearance_descriptors(_crops(pixels, boxes)).float()
    b = appearance_descriptors(_crops(pixels, shifted)).float()
    same = (a * b).sum(dim=1)  # cosine similarity, shifted copy
    cross = a @ a.T
    cross.fill_diagonal_(-1.0)
    nearest_other = cross.max(dim=1).values
    assert float((same > nearest_other).float().mean()) >= 0.9  # found among ~40 insects
    assert float((1 - same).mean()) < 0.25 * float((1 - cross[cross > -1]).mean())


def test_input_forms_and_crop_sizes_agree(trap):
    pixels, boxes = trap
    unit = _crops(pixels, boxes)
    ref = appearance_descriptors(unit).float()
    as_uint8 = appearance_descriptors((unit * 255).round().to(torch.uint8)).float()
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normalised = appearance_descriptors(_crops(pixels, boxes, mean=mean, std=std), mean, std).float()
    bigger = appearance_descriptors(_crops(pixels, boxes, size=128)).float()
    for other in (as_uint8, normalised):
        assert float((ref * other).sum(dim=1).min()) > 0.995
    assert float((ref * bigger).sum(dim=1).median()) > 0.98  # resized to 64 inside


def test_exposure_change_barely_moves_the_descriptor(trap):
    pixels, boxes = trap
    crops = _crops(pixels, boxes)
    a = appearance_descriptors(crops).float()
    darker = appearance_descriptors(crops * 0.9).float()
    cross = a @ a.T
    cross.fill_diagonal_(-1.0)
    assert float(((a * darker).sum(dim=1) > cross.max(dim=1).values).float().mean()) >= 0.9


def test_sharpness_prefers_the_sharp_crop(trap):
    pixels, boxes = trap
    crops = _crops(pixels, boxes)
    blurred = torch.nn.functional.avg_pool2d(crops, 3, stride=1, padding=1, count_include_pad=False)
    sharp, soft = crop_sharpness(crops), crop_sharpness(blurred)
    assert sharp.shape == (len(crops),) and bool((sharp > soft).all())


def test_descriptor_edge_cases():
    assert appearance_descriptors(torch.zeros(0, 3, 64, 64)).shape == (0, DESCRIPTOR_DIM)
    flat = appearance_descriptors(torch.full((2, 3, 32, 32), 0.8))  # an empty piece of sheet
    assert torch.isfinite(flat.float()).all()
    with pytest.raises(ValueError, match="crops must be"):
        appearance_descriptors(torch.zeros(2, 64, 64))


# ---- classifier features -------------------------------------------------------------------

CLASSIFIERS = {
    "torchvision_resnet50": 2,
    "turing_resnet50": 7,
    "timm_resnet50": 11,
    "timm_tf_efficientnetv2_b3": 2,
    "timm_convnext_tiny_in22k": 16,
}


@pytest.mark.parametrize("arch", sorted(CLASSIFIERS))
def test_split_forward_gives_the_normal_logits_and_the_head_input(arch):
    if arch.startswith("timm"):
        pytest.importorskip("timm")
    torch.manual_seed(11)
    model = build_architecture(arch, CLASSIFIERS[arch])
    _make_bn_stats_nontrivial(model)
    crops = torch.randn(3, 3, 64, 64, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        expected = model(crops)
        split = FeatureClassifier(model, out_dim=128, seed=3)
        logits, features = split(crops)
    head = classifier_head(model)
    assert features.shape == (3, head.in_features) and split.feature_dim == head.in_features
    # Any two ways of evaluating W f + b differ by at most K * u * (|W| |f| + |b|) per output
    # (the dot-product rounding bound, K = in_features, u = 2**-24), whatever the summation
    # order a CPU's kernels choose.
    u = 2.0 ** -24
    k = head.in_features
    with torch.inference_mode():
        bound = k * u * (features.abs() @ head.weight.abs().T
                         + (head.bias.abs() if head.bias is not None else 0.0))
        assert bool(((logits - expected).abs() <= 2 * bound + 1e-30).all())
        recomputed = torch.nn.functional.linear(features, head.weight, head.bias)
        assert bool(((recomputed - logits).abs() <= 2 * bound + 1e-30).all())
        emb = split.embed(features)
    assert emb.dtype == torch.float16 and emb.shape == (3, 128)
    torch.testing.assert_close(emb.float().norm(dim=1), torch.ones(3), atol=4e-3, rtol=0)


def test_random_projection_is_fixed_and_keeps_cosines():
    a, b = RandomProjection(2048, 128, seed=0), RandomProjection(2048, 128, seed=0)
    assert torch.equal(a.matrix, b.matrix)
    assert not torch.equal(a.matrix, RandomProjection(2048, 128, seed=1).matrix)
    assert set(torch.unique(a.matrix.abs()).tolist()) == {float(torch.tensor(128 ** -0.5))}
    # NumPy keeps PCG64's raw stream fixed across versions and platforms: these signs pin the
    # stored-embedding format (if they change, stored embeddings are no longer comparable)
    first_row = "".join("1" if v > 0 else "0" for v in a.matrix[0, :32].tolist())
    assert first_row == "01011111100000101100001011011001"
    assert int((a.matrix > 0).sum()) == 130910
    gen = torch.Generator().manual_seed(2)
    x = torch.rand(200, 2048, generator=gen)
    y = x + 0.3 * torch.rand(200, 2048, generator=gen)
    before = torch.nn.functional.cosine_similarity(x - 0.5, y - 0.5)
    after = torch.nn.functional.cosine_similarity(a(x - 0.5).float(), a(y - 0.5).float())
    assert float((after - before).abs().max()) < 0.15
