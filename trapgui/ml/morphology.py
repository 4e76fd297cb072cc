"""Grey-level and binary morphology, blurs and block statistics in plain torch ops.

Everything works on (B, C, H, W) tensors on any device, so the built-in detector runs batched on
the GPU as well as on the CPU. Dilation and erosion are max-pooling; a square element alternated
with a cross approximates a disc (an octagon) for radii built from repeated 3x3 steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def dilate(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey dilation (local maximum) with a square of side 2*radius+1."""
    if radius <= 0:
        return x
    return F.max_pool2d(x, 2 * radius + 1, stride=1, padding=radius)


def erode(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Grey erosion (local minimum) with a square of side 2*radius+1.

    Max-pooling pads with -inf, so after negation the border counts as +inf: the image edge
    never erodes an object that touches it (insects cut by the frame keep their size)."""
    if radius <= 0:
        return x
    return -F.max_pool2d(-x, 2 * radius + 1, stride=1, padding=radius)


def _max3_rows(x: torch.Tensor) -> torch.Tensor:
    """Maximum over each pixel and its left/right neighbour (outside the image counts as -inf).

    Shifted-slice maxima instead of max_pool2d: stride-1 pooling on the CPU is several times
    slower than three elementwise maxima, and these 3x3 steps run hundreds of times."""
    out = x.clone()
    out[..., :, 1:] = torch.maximum(out[..., :, 1:], x[..., :, :-1])
    out[..., :, :-1] = torch.maximum(out[..., :, :-1], x[..., :, 1:])
    return out


def _max3_cols(x: torch.Tensor) -> torch.Tensor:
    out = x.clone()
    out[..., 1:, :] = torch.maximum(out[..., 1:, :], x[..., :-1, :])
    out[..., :-1, :] = torch.maximum(out[..., :-1, :], x[..., 1:, :])
    return out


def max3x3(x: torch.Tensor) -> torch.Tensor:
    """3x3 square dilation (8-neighbourhood maximum)."""
    return _max3_cols(_max3_rows(x))


def min3x3(x: torch.Tensor) -> torch.Tensor:
    return -max3x3(-x)


def max_cross(x: torch.Tensor) -> torch.Tensor:
    """Maximum over the pixel and its 4 direct neighbours."""
    return torch.maximum(_max3_rows(x), _max3_cols(x))


def dilate_disc(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Dilation by an octagon of the given radius (alternating 3x3 square and cross steps)."""
    for step in range(radius):
        x = max3x3(x) if step % 2 == 0 else max_cross(x)
    return x


def erode_disc(x: torch.Tensor, radius: int) -> torch.Tensor:
    return -dilate_disc(-x, radius)


def binary_open(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Opening of a {0,1} float mask: removes parts thinner than 2*radius+1 (legs, fibres)."""
    return dilate_disc(erode_disc(mask, radius), radius)


def binary_close(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """Closing of a {0,1} float mask: bridges gaps narrower than 2*radius+1.

    Padding with zeros around the image keeps the closing from growing objects into the border."""
    if radius <= 0:
        return mask
    padded = F.pad(mask, (radius, radius, radius, radius))
    closed = erode_disc(dilate_disc(padded, radius), radius)
    return closed[..., radius:-radius, radius:-radius]


def box_blur(x: torch.Tensor, radius: int) -> torch.Tensor:
    """Mean over a (2r+1)^2 window with edge replication (no dark halo at the border)."""
    if radius <= 0:
        return x
    padded = F.pad(x, (radius, radius, radius, radius), mode="replicate")
    return F.avg_pool2d(padded, 2 * radius + 1, stride=1)


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel, replicate padding (weighted sums of shifted slices:
    for the few taps used here that beats a grouped convolution on the CPU)."""
    if sigma <= 0:
        return x
    radius = max(1, int(round(3 * sigma)))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    kernel = torch.exp(-0.5 * (t / sigma) ** 2)
    weights = (kernel / kernel.sum()).tolist()
    h, w = x.shape[-2:]
    padded = F.pad(x, (radius, radius, 0, 0), mode="replicate")
    rows = sum(wt * padded[..., :, i : i + w] for i, wt in enumerate(weights))
    padded = F.pad(rows, (0, 0, radius, radius), mode="replicate")
    return sum(wt * padded[..., i : i + h, :] for i, wt in enumerate(weights))


def block_quantile(x: torch.Tensor, block: int, q: float) -> torch.Tensor:
    """The q-quantile of every non-overlapping block x block tile, per channel.

    The image is padded by replication to a whole number of tiles; returns (B, C, ceil(H/block),
    ceil(W/block)). A high quantile of a tile is the sheet's brightness even where small insects
    cover part of the tile."""
    b, c, h, w = x.shape
    pad_h = (-h) % block
    pad_w = (-w) % block
    if pad_h or pad_w:
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")
    tiles = x.unfold(2, block, block).unfold(3, block, block)
    tiles = tiles.reshape(b, c, tiles.shape[2], tiles.shape[3], block * block)
    k = min(block * block, max(1, int(round(q * (block * block - 1))) + 1))
    return tiles.kthvalue(k, dim=-1).values


def robust_location_scale(
    values: torch.Tensor, max_samples: int = 262144
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row median and MAD-based standard deviation of a (B, N) tensor.

    Rows are subsampled on a fixed stride (deterministic) because only the bulk of the sheet
    matters and the exact median of millions of pixels is needlessly slow."""
    n = values.shape[1]
    if n > max_samples:
        stride = (n + max_samples - 1) // max_samples
        values = values[:, ::stride]
    median = values.median(dim=1).values
    mad = (values - median[:, None]).abs().median(dim=1).values
    return median, 1.4826 * mad
