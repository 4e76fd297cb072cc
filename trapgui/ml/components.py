"""Connected components and per-component statistics in torch ops (batched, any device).

Labelling is union-find in tensor form: neighbour minima by min-pooling (8-connectivity),
hooking by scatter-min and path compression by pointer jumping.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from trapgui.ml.morphology import min3x3

_MAX_ROUNDS = 4096


def label_components(mask: torch.Tensor) -> torch.Tensor:
    """Labels of 8-connected components of a (B, H, W) boolean mask.

    Returns int64 (B, H, W): for foreground pixels the flat index (within its own image) of the
    component's first pixel in raster order, -1 for background. Labels are unique per image,
    identical across runs and devices.

    Each round finds every pixel's smallest neighbouring label (a 3x3 min-pool), hooks the
    tree that the pixel's label points to onto that smaller label (union-find "hooking" via
    scatter-min, so whole trees merge at once rather than one pixel per step) and then
    compresses paths by pointer jumping until every pixel names a root. Rounds grow with the
    logarithm of a component's size, not its diameter."""
    b, h, w = mask.shape
    n = h * w
    if n >= 2**24:
        raise ValueError(f"image of {h}x{w} pixels is too large to label exactly in float32")
    device = mask.device
    if not bool(mask.any()):
        return torch.full((b, h, w), -1, dtype=torch.int64, device=device)
    total = b * n
    fg = mask.reshape(-1)
    fg_index = torch.nonzero(fg).squeeze(1)
    offset = (fg_index // n) * n
    # Global label = pixel index over the batch; background points nowhere useful (total).
    labels = torch.full((total,), total, dtype=torch.int64, device=device)
    labels[fg_index] = fg_index
    big = float(n)
    for _ in range(_MAX_ROUNDS):
        # Neighbour minimum per image in float32 (exact below 2**24), then back to global.
        own = labels[fg_index]
        local = torch.full((total,), big, dtype=torch.float32, device=device)
        local[fg_index] = (own - offset).float()
        smallest = min3x3(local.view(b, 1, h, w))
        neighbour = smallest.view(-1)[fg_index].long() + offset
        lower = neighbour < own
        if not bool(lower.any()):
            break
        labels.scatter_reduce_(0, own[lower], neighbour[lower], reduce="amin")
        labels[fg_index] = torch.minimum(labels[fg_index], neighbour)
        for _ in range(_MAX_ROUNDS):
            current = labels[fg_index]
            jumped = labels[current]
            if torch.equal(jumped, current):
                break
            labels[fg_index] = jumped
    out = torch.full((total,), -1, dtype=torch.int64, device=device)
    out[fg_index] = labels[fg_index] - offset
    return out.view(b, h, w)


@dataclass
class ComponentStats:
    """One row per component over the whole batch (all tensors (K,) on the mask's device)."""

    image: torch.Tensor  # int64 batch index
    area: torch.Tensor  # float32 pixel count
    x1: torch.Tensor  # float32, inclusive pixel bounds
    y1: torch.Tensor
    x2: torch.Tensor
    y2: torch.Tensor
    major: torch.Tensor  # float32 ellipse axis lengths (full, 4*sqrt(eigenvalue))
    minor: torch.Tensor
    cx: torch.Tensor  # float32 centroid (pixel centres at integer coordinates)
    cy: torch.Tensor
    sums: torch.Tensor  # (K, V) sums of the extra per-pixel values
    maxima: torch.Tensor  # (K, V) maxima of the extra per-pixel values
    inverse: torch.Tensor  # (B*H*W,) component index of each pixel, -1 for background


def component_stats(labels: torch.Tensor, values: torch.Tensor | None = None) -> ComponentStats:
    """Bounding boxes, areas, second moments and sums/maxima of `values` ((B, V, H, W)) per
    component of `labels` (from `label_components`)."""
    b, h, w = labels.shape
    device = labels.device
    n = h * w
    flat = labels.reshape(-1)
    fg = flat >= 0
    pixel = torch.nonzero(fg).squeeze(1)
    image = pixel // n
    within = pixel % n
    keys = flat[pixel] + image * n
    unique_keys, compact = torch.unique(keys, sorted=True, return_inverse=True)
    k = unique_keys.numel()
    inverse = torch.full((b * n,), -1, dtype=torch.int64, device=device)
    inverse[pixel] = compact
    ys = (within // w).float()
    xs = (within % w).float()

    def reduce(src: torch.Tensor, how: str, init: float) -> torch.Tensor:
        out = torch.full((k,), init, dtype=src.dtype, device=device)
        return out.scatter_reduce(0, compact, src, reduce=how, include_self=True)

    area = torch.zeros(k, device=device).index_add_(0, compact, torch.ones_like(xs))
    sx = torch.zeros(k, device=device).index_add_(0, compact, xs)
    sy = torch.zeros(k, device=device).index_add_(0, compact, ys)
    mx, my = sx / area, sy / area
    dx, dy = xs - mx[compact], ys - my[compact]
    cxx = torch.zeros(k, device=device).index_add_(0, compact, dx * dx) / area
    cyy = torch.zeros(k, device=device).index_add_(0, compact, dy * dy) / area
    cxy = torch.zeros(k, device=device).index_add_(0, compact, dx * dy) / area
    half_trace = (cxx + cyy) / 2
    root = torch.sqrt(((cxx - cyy) / 2) ** 2 + cxy**2)
    major = 4 * torch.sqrt((half_trace + root).clamp(min=1 / 12))
    minor = 4 * torch.sqrt((half_trace - root).clamp(min=1 / 12))

    if values is None:
        values = torch.zeros((b, 0, h, w), device=device)
    v = values.shape[1]
    per_pixel = values.permute(0, 2, 3, 1).reshape(b * n, v)[pixel]
    sums = torch.zeros((k, v), device=device, dtype=values.dtype).index_add_(0, compact, per_pixel)
    maxima = torch.full((k, v), float("-inf"), device=device, dtype=values.dtype)
    maxima = maxima.scatter_reduce(
        0, compact[:, None].expand(-1, v), per_pixel, reduce="amax", include_self=True
    )
    first = unique_keys // n
    return ComponentStats(
        image=first,
        area=area,
        x1=reduce(xs, "amin", float(w)),
        y1=reduce(ys, "amin", float(h)),
        x2=reduce(xs, "amax", -1.0),
        y2=reduce(ys, "amax", -1.0),
        major=major,
        minor=minor,
        cx=mx,
        cy=my,
        sums=sums,
        maxima=maxima,
        inverse=inverse,
    )


def merge_overlapping(
    boxes: torch.Tensor, scores: torch.Tensor, containment: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merge boxes of one image where the intersection covers `containment` of the smaller box
    (fragments of one insect, nested duplicates) into their union, keeping the best score."""
    merged, best, _ = merge_overlapping_members(boxes, scores, containment)
    return merged, best


def merge_overlapping_members(
    boxes: torch.Tensor, scores: torch.Tensor, containment: float,
    apart: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """`merge_overlapping`, also returning for every merged box the index (into the input) of
    its best-scoring member, whose measurements then describe the merged box.

    `apart` (N,) bool, if given: boxes that are never merged into a bigger one (a box may still
    take smaller ones in).

    Repeats until stable; the loop is over merge rounds, never over pixels."""
    member = torch.arange(boxes.shape[0], device=boxes.device)
    if apart is None:
        apart = torch.zeros(boxes.shape[0], dtype=torch.bool, device=boxes.device)
    while boxes.shape[0] > 1:
        x1 = torch.maximum(boxes[:, None, 0], boxes[None, :, 0])
        y1 = torch.maximum(boxes[:, None, 1], boxes[None, :, 1])
        x2 = torch.minimum(boxes[:, None, 2], boxes[None, :, 2])
        y2 = torch.minimum(boxes[:, None, 3], boxes[None, :, 3])
        inter = (x2 - x1).clamp(min=0) * (y2 - y1).clamp(min=0)
        area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        smaller = torch.minimum(area[:, None], area[None, :]).clamp(min=1e-6)
        overlap = inter / smaller >= containment
        # A pair whose smaller box (either, when equal) is kept apart does not merge.
        is_smaller = area[:, None] <= area[None, :]
        overlap &= ~((is_smaller & apart[:, None]) | (is_smaller.T & apart[None, :]))
        overlap.fill_diagonal_(False)
        if not bool(overlap.any()):
            break
        # Each box joins the group of the lowest-index box it overlaps (itself if none); one
        # round of grouping, then the loop re-checks the merged boxes.
        overlap.fill_diagonal_(True)
        group = overlap.float().argmax(dim=1)
        unique_groups, inverse = torch.unique(group, return_inverse=True)
        g = unique_groups.numel()
        idx4 = inverse[:, None].expand(-1, 2)
        mins = torch.full((g, 2), float("inf"), device=boxes.device)
        maxs = torch.full((g, 2), float("-inf"), device=boxes.device)
        mins = mins.scatter_reduce(0, idx4, boxes[:, :2], reduce="amin", include_self=True)
        maxs = maxs.scatter_reduce(0, idx4, boxes[:, 2:], reduce="amax", include_self=True)
        best = torch.zeros(g, device=boxes.device).scatter_reduce(
            0, inverse, scores, reduce="amax", include_self=False
        )
        # The member holding the best score (the first such, for determinism).
        is_best = scores >= best[inverse]
        position = torch.arange(boxes.shape[0], device=boxes.device)
        candidate = torch.where(is_best, position, torch.full_like(position, boxes.shape[0]))
        first = torch.full((g,), boxes.shape[0], dtype=torch.long, device=boxes.device)
        first = first.scatter_reduce(0, inverse, candidate, reduce="amin", include_self=True)
        member = member[first]
        apart = torch.ones(g, dtype=torch.bool, device=boxes.device).scatter_reduce(
            0, inverse, apart, reduce="amin", include_self=True
        )
        boxes = torch.cat([mins, maxs], dim=1)
        scores = best
    return boxes, scores, member
