"""Stacked crops (one roi_align over every box of a batch) against the per-crop reference."""

from __future__ import annotations

import math

import pytest
import torch

from trapgui.ml.base import IMAGENET_MEAN, IMAGENET_STD
from trapgui.ml.crops import clean_boxes, crop_one, stack_crops


def _images():
    g = torch.Generator().manual_seed(3)
    # two sizes in one batch; smooth-ish content so resampling differences would show
    a = torch.rand((3, 120, 200), generator=g)
    b = torch.rand((3, 90, 70), generator=g)
    return [torch.nn.functional.avg_pool2d(a[None], 3, 1, 1)[0],
            torch.nn.functional.avg_pool2d(b[None], 3, 1, 1)[0]]


def _boxes():
    return [torch.tensor([[10., 10., 60., 40.], [150., 80., 230., 130.], [0., 0., 200., 120.],
                          [33.3, 20.7, 41.9, 95.2]]),
            torch.tensor([[5., 5., 65., 85.], [60., 1., 75., 30.]])]


def test_pixel_aligned_box_at_its_own_size_is_copied_exactly():
    img = torch.rand((3, 50, 60))
    crop = crop_one(img, [10, 20, 26, 36], 16)
    assert torch.allclose(crop, img[:, 20:36, 10:26], atol=1e-6)


@pytest.mark.parametrize("mode", ["stretch", "pad"])
def test_stacked_equals_per_crop_for_mixed_sizes(mode):
    images, boxes = _images(), _boxes()
    batch = stack_crops(images, boxes, 24, mode, IMAGENET_MEAN, IMAGENET_STD, fill=0.3)
    assert batch.crops.shape == (6, 3, 24, 24)
    assert batch.owner.tolist() == [[0, 0], [0, 1], [0, 2], [0, 3], [1, 0], [1, 1]]
    for row, (i, j) in enumerate(batch.owner.tolist()):
        ref = crop_one(images[i], boxes[i][j], 24, mode, IMAGENET_MEAN, IMAGENET_STD, fill=0.3)
        assert torch.allclose(batch.crops[row], ref, atol=1e-5), (mode, i, j)


def test_pad_mode_fills_outside_the_image_and_keeps_aspect():
    img = torch.full((3, 40, 100), 0.8)
    # a wide box touching the top edge: the square grows above the image
    crop = crop_one(img, [20, 0, 60, 10], 20, "pad", fill=0.0)
    assert crop.shape == (3, 20, 20)
    assert torch.all(crop[:, :7, :] == 0.0)  # above the image: fill
    assert torch.allclose(crop[:, 10:13, :], torch.full((3, 3, 20), 0.8))
    stretched = crop_one(img, [20, 0, 60, 10], 20, "stretch")
    assert torch.allclose(stretched, torch.full((3, 20, 20), 0.8))


def test_degenerate_boxes_are_skipped_and_reported():
    img = torch.rand((3, 50, 60))
    boxes = torch.tensor([[10., 10., 20., 20.],  # fine
                          [30., 10., 20., 20.],  # x1 >= x2
                          [5., 30., 15., 30.],  # y1 >= y2
                          [70., 60., 90., 80.],  # outside
                          [math.nan, 0., 5., 5.],  # not finite
                          [-10., -10., 5., 8.],  # partly outside: clipped, kept
                          [59.5, 10., 80., 20.]])  # half a pixel inside: too small
    batch = stack_crops([img], [boxes], 8)
    assert batch.owner[:, 1].tolist() == [0, 5]
    reasons = {j: r for _, j, r in batch.skipped}
    assert set(reasons) == {1, 2, 3, 4, 6}
    assert "x1 >= x2" in reasons[1] and "outside" in reasons[3] and "finite" in reasons[4]
    clipped, keep, _ = clean_boxes(boxes, 60, 50)
    assert clipped[5].tolist() == [0.0, 0.0, 5.0, 8.0] and bool(keep[5])


def test_no_boxes_gives_an_empty_batch():
    batch = stack_crops([torch.rand((3, 10, 10))], [torch.zeros((0, 4))], 8)
    assert len(batch) == 0 and batch.crops.shape == (0, 3, 8, 8)


def test_stacked_classification_matches_per_crop_with_a_real_architecture():
    """Published moth/non-moth architecture (torchvision ResNet-50, random weights): the
    stacked path (one roi_align, one batched forward) gives the same top-1 labels and scores
    within 1e-3 of classifying each crop on its own."""
    from trapgui.ml.architectures import build_architecture
    from trapgui.ml.model_catalogue import load_model_catalogue

    spec = load_model_catalogue().get("moth_binary_resnet50_2024")
    torch.manual_seed(0)
    model = build_architecture(spec.architecture, 11).eval()
    images, boxes = _images(), _boxes()
    size = 64  # smaller than the published 128 to keep the test quick on a shared CPU
    with torch.inference_mode():
        batch = stack_crops(images, boxes, size, "stretch", spec.mean, spec.std)
        stacked = model(batch.crops).softmax(1)
        single = torch.cat([model(crop_one(images[i], boxes[i][j], size, "stretch", spec.mean,
                                           spec.std)[None]).softmax(1)
                            for i, j in batch.owner.tolist()])
    assert stacked.argmax(1).tolist() == single.argmax(1).tolist()
    assert (stacked - single).abs().max().item() < 1e-3


def test_uint8_images_give_the_same_crops_as_float():
    g = torch.Generator().manual_seed(5)
    u8 = [torch.randint(0, 256, (3, 60, 80), generator=g, dtype=torch.uint8),
          torch.randint(0, 256, (3, 40, 50), generator=g, dtype=torch.uint8)]
    boxes = [torch.tensor([[1., 2., 79., 59.]]), torch.tensor([[10., 10., 50., 40.]])]
    a = stack_crops(u8, boxes, 16, "pad", IMAGENET_MEAN, IMAGENET_STD)
    b = stack_crops([im.float() / 255 for im in u8], boxes, 16, "pad", IMAGENET_MEAN, IMAGENET_STD)
    assert torch.allclose(a.crops, b.crops, atol=1e-5)


@pytest.mark.parametrize("mode", ["stretch", "pad"])
def test_regions_of_a_large_image_give_the_whole_image_crops(mode):
    """On a CPU only each box's region becomes float; against the whole image as float
    (crop_one), at 4K coordinates and at every edge where roi_align clamps or a pad square
    leaves the image. Tolerance from the arithmetic: the two paths place samples from
    coordinates up to 4096, whose float32 spacing is 2**-11; a few such errors in a bilinear
    weight, times a pixel step of at most 1, over the smallest std."""
    g = torch.Generator().manual_seed(11)
    h, w = 1100, 4096
    image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
    boxes = torch.tensor([[4000.3, 1000.6, 4096.0, 1100.0],  # bottom-right corner
                          [0.0, 0.0, 37.5, 81.25],  # top-left corner
                          [2047.7, 500.2, 2311.9, 540.8],  # wide: pad square leaves nothing
                          [10.0, 1050.0, 200.0, 1099.0],  # bottom edge, pad reaches below
                          [3900.0, 3.0, 4095.0, 30.0],  # top and right edges
                          [1234.5, 678.9, 1250.1, 701.3]])  # small, inside
    batch = stack_crops([image], [boxes], 48, mode, IMAGENET_MEAN, IMAGENET_STD, fill=0.3)
    assert batch.owner[:, 1].tolist() == list(range(len(boxes)))
    atol = 4 * 2.0 ** -11 / min(IMAGENET_STD)
    for row in range(len(boxes)):
        ref = crop_one(image, boxes[row], 48, mode, IMAGENET_MEAN, IMAGENET_STD, fill=0.3)
        err = (batch.crops[row] - ref).abs().max().item()
        assert err <= atol, (mode, row, err)


def test_boxes_covering_most_of_the_image_convert_it_once():
    img = torch.rand((3, 60, 80))
    boxes = torch.tensor([[0., 0., 80., 60.], [5., 5., 70., 50.]])
    batch = stack_crops([img], [boxes], 16)
    for row in range(2):
        assert torch.allclose(batch.crops[row], crop_one(img, boxes[row], 16), atol=1e-6)


def test_boxes_covering_most_of_the_image_split_across_threads_give_the_same_crops():
    """Boxes covering most of the image (cut by roi_align): the whole image is converted to
    float and the boxes are shared among threads; each crop is exactly what one roi_align on
    the image as float gives (each box is computed on its own either way), and a second image
    of the same size and a third of another size are not served stale pixels."""
    from trapgui.ml import crop_cpu

    g = torch.Generator().manual_seed(8)
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for shape in ((3, 300, 400), (3, 300, 400), (3, 200, 250)):
            image = torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
            h, w = shape[1:]
            xy = torch.rand((12, 2), generator=g) * torch.tensor([w / 3, h / 3])
            boxes = torch.cat([xy, xy + torch.tensor([w / 1.5, h / 1.5])], 1)
            rois = torch.cat([torch.zeros((12, 1)), boxes], 1)
            got = crop_cpu._cut_by_roi_align(image, rois, 32)
            want = crop_cpu.resize(image.float() / 255, rois, 32)
            assert torch.equal(got, want), shape
    finally:
        torch.set_num_threads(previous)


def test_small_boxes_on_a_cpu_split_across_threads_give_the_same_crops_as_one_thread():
    """The region path (boxes covering little of the image) shares the boxes among the torch
    threads by pixel area; each crop is computed exactly as on one thread."""
    from trapgui.ml import crop_cpu

    g = torch.Generator().manual_seed(12)
    image = torch.randint(0, 256, (3, 600, 900), generator=g, dtype=torch.uint8)
    wh = torch.randint(4, 120, (17, 2), generator=g).float()
    xy = torch.rand((17, 2), generator=g) * torch.tensor([900 - 120, 600 - 120])
    rois = torch.cat([torch.zeros((17, 1)), xy, xy + wh], 1)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = crop_cpu.cut_on_cpu(image, rois, 24)
        torch.set_num_threads(2)
        assert len(crop_cpu._shares([1] * 17)) == 2
        two = crop_cpu.cut_on_cpu(image, rois, 24)
    finally:
        torch.set_num_threads(previous)
    assert torch.equal(one, two)


def test_box_shares_cover_every_box_once_with_near_equal_areas():
    from trapgui.ml import crop_cpu

    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(3)
        areas = [900, 10, 400, 400, 50, 300, 300, 200, 100, 90, 80, 70, 5]
        shares = crop_cpu._shares(areas)
        assert sorted(k for share in shares for k in share) == list(range(len(areas)))
        loads = [sum(areas[k] for k in share) for share in shares]
        assert len(shares) == 3 and max(loads) - min(loads) <= max(areas)
        assert crop_cpu._shares([5, 6, 7]) == [[0, 1, 2]]  # too few boxes to hand off
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("size, layout, strip_bytes", [(16, "chw", 16 << 20), (48, "hwc", 16 << 20),
                                                     (48, "hwc", 20_000)])
def test_large_boxes_cut_as_matrix_products_match_roi_align(size, layout, strip_bytes, monkeypatch):
    """crop_separable (boxes with many samples per output pixel) against one roi_align on the
    whole image as float: inside, along every edge where roi_align clamps, and squares reaching
    outside the image (samples dropped). Tolerance from the arithmetic: the sample coordinates
    are the same float32 values in both; roi_align sums 4 corners of gy * gx samples, the
    products sum at most H + W terms, all of them weights (summing to at most 1) times pixels
    in [0, 1], so each float32 sum is off by at most (terms) * 2**-24, whatever the order."""
    from trapgui.ml import crop_cpu, crop_separable

    monkeypatch.setattr(crop_separable, "STRIP_BYTES", strip_bytes)  # small: many strips
    g = torch.Generator().manual_seed(21)
    h, w = 700, 1300
    image = torch.randint(0, 256, (3, h, w), generator=g, dtype=torch.uint8)
    if layout == "hwc":  # as decoded: pixels interleaved in memory
        image = image.permute(1, 2, 0).contiguous().permute(2, 0, 1)
    boxes = torch.tensor([[0.0, 0.0, 1300.0, 700.0],  # the whole image
                          [12.3, 40.7, 611.9, 399.2],  # inside
                          [900.5, 300.25, 1300.0, 700.0],  # bottom-right corner
                          [-150.0, -220.5, 400.0, 329.5],  # a pad square above and left
                          [1000.0, 500.0, 1500.0, 1000.0],  # below and right
                          [-300.0, 10.0, -100.0, 600.0],  # entirely outside: all zero
                          [3.0, 650.0, 1297.0, 699.0]])  # wide and flat, at the bottom edge
    rois = torch.cat([torch.zeros((len(boxes), 1)), boxes], 1)
    assert crop_separable.wanted(rois[:5], size).all()
    want = crop_cpu.resize(image.float() / 255, rois, size)
    grids = crop_separable.sample_grids(rois, size)
    for k in range(len(boxes)):
        atol = (4 * int(grids[k].prod()) + h + w) * 2.0 ** -24
        got = crop_separable.cut(image, boxes[k].tolist(), size)
        assert (got - want[k]).abs().max().item() <= atol, k
        if k == len(boxes) - 2:
            assert not got.any()
    floats = image.float() / 255
    atol = (4 * int(grids[1].prod()) + h + w) * 2.0 ** -24
    assert (crop_separable.cut(floats, boxes[1].tolist(), size) - want[1]).abs().max() <= atol


def test_a_batch_mixing_large_and_small_boxes_keeps_each_box_in_its_place():
    """cut_on_cpu sends large boxes to crop_separable and the rest to roi_align on their
    regions; the crops come back in the boxes' order and match the whole-image reference.
    Tolerance: the regions' roi_align places samples from shifted coordinates up to 1600,
    whose float32 spacing is 2**-13; a few such errors in a bilinear weight, times a pixel
    step of at most 1 (the large boxes are far closer, see the test above)."""
    from trapgui.ml import crop_cpu, crop_separable

    g = torch.Generator().manual_seed(22)
    image = torch.randint(0, 256, (3, 900, 1600), generator=g, dtype=torch.uint8)
    small = torch.rand((9, 2), generator=g) * torch.tensor([1500.0, 800.0])
    boxes = torch.cat([torch.cat([small, small + 40], 1),
                       torch.tensor([[10.0, 10.0, 1590.0, 890.0], [200.0, 100.0, 900.0, 800.0]])])
    order = torch.randperm(len(boxes), generator=g)
    rois = torch.cat([torch.zeros((len(boxes), 1)), boxes[order]], 1)
    large = crop_separable.wanted(rois, 32)
    assert 0 < int(large.sum()) < len(rois)
    got = crop_cpu.cut_on_cpu(image, rois, 32)
    want = crop_cpu.resize(image.float() / 255, rois, 32)
    assert (got - want).abs().max().item() <= 4 * 2.0 ** -13
