"""Splitting of touching insects (trapgui.ml.insect_splitting) on drawn masks and sheets."""

from __future__ import annotations

import pytest
import torch

from trapgui.ml.builtin_detector import BuiltinDetector
from trapgui.ml.components import label_components
from trapgui.ml.insect_splitting import erosion_depth, split_touching

H, W = 400, 600


@pytest.fixture(scope="module", autouse=True)
def _one_torch_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _ellipse(cx: float, cy: float, rx: float, ry: float, angle: float = 0.0) -> torch.Tensor:
    ys = torch.arange(H).view(H, 1).float() - cy
    xs = torch.arange(W).view(1, W).float() - cx
    c, s = torch.cos(torch.tensor(angle)), torch.sin(torch.tensor(angle))
    u, v = c * xs + s * ys, -s * xs + c * ys
    return (u / rx) ** 2 + (v / ry) ** 2 <= 1.0


def _regions(mask: torch.Tensor) -> int:
    labels = split_touching(label_components(mask[None]), min_core_fraction=0.004)
    return int(torch.unique(labels[labels >= 0]).numel())


def _sheet(seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (0.9 + 0.012 * torch.randn((3, H, W), generator=g)).clamp(0, 1)


def _paint(image: torch.Tensor, region: torch.Tensor, factor: tuple[float, float, float]):
    image[:, region] = (image * torch.tensor(factor).view(3, 1, 1))[:, region]


def test_erosion_depth_of_a_disc_is_its_radius():
    depth = erosion_depth(_ellipse(300, 200, 30, 30)[None, None])
    # The octagonal distance lies between the chessboard (30) and city-block (21) radius.
    assert 21 <= float(depth.max()) <= 31


def test_two_touching_ellipses_are_two_regions_and_one_elongated_stays_one():
    # Two moths wing to wing: the ellipses overlap by 3 px, a neck far thinner than either.
    pair = _ellipse(240, 200, 45, 28, 0.3) | _ellipse(327, 215, 45, 28, -0.2)
    assert _regions(pair) == 2
    # One long insect (a crane fly's body, a rolled-wing moth) has no neck: one region.
    assert _regions(_ellipse(300, 200, 110, 22, 0.4)) == 1


def test_detector_boxes_two_touching_dark_ellipses_and_one_elongated_insect():
    detector = BuiltinDetector()
    image = _sheet(11)
    left, right = (240, 200, 45, 28), (327, 205, 45, 28)
    _paint(image, _ellipse(*left) | _ellipse(*right), (0.4, 0.34, 0.28))
    (two,) = detector.detect([image])
    kept = two.boxes[two.scores >= detector.score_threshold]
    assert len(kept) == 2, kept
    # Each box holds one ellipse's centre and not the other's.
    for (cx, cy, _, _), (ox, oy, _, _) in ((left, right), (right, left)):
        holds = (kept[:, 0] <= cx) & (kept[:, 2] >= cx) & (kept[:, 1] <= cy) & (kept[:, 3] >= cy)
        other = (kept[:, 0] <= ox) & (kept[:, 2] >= ox) & (kept[:, 1] <= oy) & (kept[:, 3] >= oy)
        assert int((holds & ~other).sum()) == 1, kept

    image = _sheet(12)
    _paint(image, _ellipse(300, 200, 110, 22, 0.4), (0.45, 0.38, 0.3))
    (one,) = detector.detect([image])
    assert int((one.scores >= detector.score_threshold).sum()) == 1, one
