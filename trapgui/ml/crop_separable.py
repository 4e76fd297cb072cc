"""roi_align of a large box as two small matrix products, on a CPU.

torchvision's CPU ``roi_align`` first builds a table of every bilinear sample of a box (32
bytes each: four pixel positions, four weights); with adaptive sampling a box n times the
output side has ~n² samples per output pixel, so a 1500-pixel box cut to 128 pixels needs a
75 MB table and the whole of a 4096x2160 image 285 MB, two at once on two threads. It was the
largest part of a run's peak memory, and 0.1-0.3 s per such box on one core.

A sample's weight is a product of a weight along y and a weight along x (bilinear, and a sample
outside the image is dropped along either axis), so the same average is
``Wy @ image @ Wx.T`` with ``Wy`` (size x H) and ``Wx`` (size x W) the summed sample weights of
each output row and column, divided by the samples per axis. The weights are computed as
roi_align computes them (float32 coordinates, its clamping at the edges), summed in float64
over the box's own pixels only; the products run in float32 on strips of the box's rows (at
most STRIP_BYTES as float, converted and put in (3, rows, width) order in one pass), so the
image is never converted whole. Against roi_align the crops agree to about 1e-6
(tests/test_crops.py); on 4K trap images with the benchmark detector's boxes (bench_stages.py)
the crops stage took 0.077 s per image instead of 0.223; for small boxes roi_align is faster, so only
boxes with many samples per output pixel come here.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

MIN_SAMPLES = 9  # per output pixel (grid y x grid x): below it roi_align is as fast or faster
STRIP_BYTES = 16 << 20  # at most, the float copy of the image rows one product reads


def sample_grids(rois: torch.Tensor, size: int) -> torch.Tensor:
    """(M, 2) roi_align's adaptive samples per output pixel along y and x (aligned=True)."""
    b = rois[:, 1:].to(torch.float32)
    h = (b[:, 3] - 0.5) - (b[:, 1] - 0.5)
    w = (b[:, 2] - 0.5) - (b[:, 0] - 0.5)
    return torch.stack([torch.ceil(h / size), torch.ceil(w / size)], 1).clamp(min=1).to(torch.int64)


def wanted(rois: torch.Tensor, size: int) -> torch.Tensor:
    """(M,) True for the boxes this module cuts faster, with less memory, than roi_align."""
    grids = sample_grids(rois, size)
    return grids[:, 0] * grids[:, 1] >= MIN_SAMPLES


class AxisWeights(NamedTuple):
    matrix: torch.Tensor  # (size, n) float32: weights on pixels offset .. offset + n - 1
    offset: int
    first: list[int]  # per output index, the first and last pixel it uses (first > last: none)
    last: list[int]

    def span(self, lo: int, hi: int) -> tuple[int, int] | None:
        """Pixels (start, stop) that output indices lo .. hi - 1 use, or None."""
        first, last = min(self.first[lo:hi]), max(self.last[lo:hi])
        return None if first > last else (first, last + 1)


def axis_weights(lo: float, hi: float, size: int, pixels: int, scale: float = 1.0) -> AxisWeights:
    """For each output index, the mean of its samples' bilinear weights on each pixel along
    one axis (times ``scale``), placed as roi_align places them."""
    f32 = torch.float32
    start = torch.tensor(lo, dtype=f32) - 0.5
    length = (torch.tensor(hi, dtype=f32) - 0.5) - start
    step = length / size
    grid = max(1, int(torch.ceil(length / size)))
    p = torch.arange(size, dtype=f32)[:, None]
    i = torch.arange(grid, dtype=f32)[None, :]
    y = start + p * step + (i + 0.5) * step / grid
    inside = (y >= -1.0) & (y <= pixels)
    y = y.clamp(min=0)
    low = y.to(torch.int64)
    at_end = low >= pixels - 1
    low = torch.where(at_end, torch.full_like(low, pixels - 1), low)
    high = torch.where(at_end, low, low + 1)
    frac = torch.where(at_end, torch.zeros_like(y), y - low.to(f32)).to(torch.float64)
    first = torch.where(inside, low, pixels).amin(1)
    final = torch.where(inside, high, -1).amax(1)
    if not bool(inside.any()):
        return AxisWeights(torch.zeros((size, 0), dtype=f32), 0, first.tolist(), final.tolist())
    offset = int(first.min())
    n = int(final.max()) + 1 - offset
    weights = torch.zeros((size, n), dtype=torch.float64)
    keep = inside.to(torch.float64) * (scale / grid)
    weights.scatter_add_(1, (low - offset).clamp(0, n - 1), (1 - frac) * keep)
    weights.scatter_add_(1, (high - offset).clamp(0, n - 1), frac * keep)
    return AxisWeights(weights.to(f32), offset, first.tolist(), final.tolist())


def cut(image: torch.Tensor, box: list[float], size: int) -> torch.Tensor:
    """(3, size, size): roi_align (aligned, adaptive sampling) of ``box`` (x1, y1, x2, y2) on a
    (3, H, W) CPU image, uint8 (its 1/255 folded into the weights) or float in [0, 1]."""
    x1, y1, x2, y2 = box
    channels, h, w = (int(n) for n in image.shape)
    out = torch.zeros((channels, size, size), dtype=torch.float32)
    wx = axis_weights(x1, x2, size, w)
    cols = wx.span(0, size)
    if cols is None:  # every sample is outside the image
        return out
    wx_t = wx.matrix[:, cols[0] - wx.offset:cols[1] - wx.offset].T.contiguous()
    wy = axis_weights(y1, y2, size, h, 1 / 255 if image.dtype == torch.uint8 else 1.0)
    rows_per_output = max(1.0, (y2 - y1) / size)
    row_bytes = 4 * channels * (cols[1] - cols[0])
    step = max(1, min(size, int(STRIP_BYTES / (row_bytes * (rows_per_output + 2)))))
    for first in range(0, size, step):
        rows = wy.span(first, first + step)
        if rows is None:
            continue
        weights = wy.matrix[first:first + step, rows[0] - wy.offset:rows[1] - wy.offset]
        # one pass: to float and to (3, rows, width) order, whatever the image's layout
        strip = image[:, rows[0]:rows[1], cols[0]:cols[1]].to(
            torch.float32, memory_format=torch.contiguous_format)
        out[:, first:first + step] = (weights @ strip) @ wx_t
    return out
