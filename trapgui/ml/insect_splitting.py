"""Splitting of insects that touch on the sheet into one region each.

A component is split when its distance-to-background map (counted by repeated erosion) has two
or more separate high plateaus ("cores") joined by a narrow neck: two moths wing to wing. Each
core then claims the pixels nearest to it (cores grow one pixel per step inside the component,
an approximation of a watershed on the distance map). One compact insect has one core, so it is
never cut; wings spread wide around a thick body also keep a single core.
"""

from __future__ import annotations

import torch

from trapgui.ml.components import label_components
from trapgui.ml.morphology import max3x3, max_cross, min3x3

_MAX_DEPTH = 256


def erosion_depth(mask: torch.Tensor, max_depth: int = _MAX_DEPTH) -> torch.Tensor:
    """Approximate distance to the background (B, 1, H, W): how many alternating square/cross
    erosions each pixel survives (an octagonal distance).

    Every few steps the work shrinks to the bounding box of what is left (the whole batch's):
    after a handful of erosions only the big insects remain, and eroding the empty rest of the
    image again and again was most of the cost. Pixels outside the box are background for
    every later step, so the result is the same as eroding the full image."""
    current = mask.float()
    depth = torch.zeros_like(current)
    y0, x0 = 0, 0
    for step in range(max_depth):
        current = min3x3(current) if step % 2 == 0 else -max_cross(-current)
        h, w = current.shape[-2:]
        depth[..., y0 : y0 + h, x0 : x0 + w] += current
        if step % 4 == 3:
            alive = current.amax(dim=(0, 1)) > 0
            if not bool(alive.any()):
                break
            rows = torch.nonzero(alive.any(dim=1)).squeeze(1)
            cols = torch.nonzero(alive.any(dim=0)).squeeze(1)
            # One pixel of background around what survives keeps the erosion exact.
            r0, r1 = max(int(rows[0]) - 1, 0), min(int(rows[-1]) + 2, h)
            c0, c1 = max(int(cols[0]) - 1, 0), min(int(cols[-1]) + 2, w)
            if (r0, r1, c0, c1) != (0, h, 0, w):
                current = current[..., r0:r1, c0:c1]
                y0, x0 = y0 + r0, x0 + c0
        elif not bool(current.any()):
            break
    return depth


def _per_component(labels: torch.Tensor, values: torch.Tensor, how: str) -> torch.Tensor:
    """Reduce `values` over each component and broadcast the result back to its pixels."""
    b, h, w = labels.shape
    n = h * w
    offset = torch.arange(b, device=labels.device).view(b, 1, 1) * n
    key = torch.where(labels >= 0, labels + offset, torch.zeros_like(labels)).view(-1)
    fg = (labels >= 0).view(-1)
    table = torch.zeros(b * n, device=labels.device, dtype=values.dtype)
    table = table.scatter_reduce(0, key[fg], values.reshape(-1)[fg], reduce=how, include_self=False)
    return torch.where(labels >= 0, table[key].view(b, h, w), torch.zeros_like(values))


def split_touching(
    labels: torch.Tensor,
    min_core_fraction: float,
    core_levels: tuple[float, ...] = (0.3, 0.45, 0.55),
    peak_level: float = 0.5,
    neck_ratio: float = 0.7,
    shape_mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Relabel components that consist of several insects; others keep their labels.

    labels: (B, H, W) from `label_components`. At each level L of `core_levels`, a core is a
    connected part of a component deeper than L times the component's deepest point. It counts
    if its own peak reaches `peak_level` of that, the neck level is at most `neck_ratio` of its
    peak, and the peak is at least `min_core_fraction` of the image's longest side, so a leg or
    a wing tip never becomes an insect of its own. Every component uses the level that gives it
    the most cores (two insects of different size separate at a low level, two that touch along
    a wide edge only at a high one).

    `shape_mask` (B, H, W), if given, is the mask whose distance map decides (the foreground
    before gap-bridging closing, which would otherwise fill the neck between two insects)."""
    b, h, w = labels.shape
    mask = labels >= 0
    if not bool(mask.any()):
        return labels
    depth_mask = mask if shape_mask is None else mask & shape_mask
    depth = erosion_depth(depth_mask[:, None])[:, 0]
    deepest = _per_component(labels, depth, "amax")
    min_peak = max(2.0, min_core_fraction * max(h, w))
    flat_index = torch.arange(h * w, device=labels.device).view(1, h, w)
    best_count = torch.ones_like(depth)
    seeds = torch.full_like(depth, -1.0)
    for level in core_levels:
        cores = mask & (depth > level * deepest) & (deepest >= min_peak)
        if not bool(cores.any()):
            continue
        core_labels = label_components(cores)
        core_peak = _per_component(core_labels, depth, "amax")
        # The neck (below `level`) must be clearly thinner than each insect on either side:
        # the spread wings of one geometrid have a neck nearly as thick as the wings.
        needed = max(peak_level, level / neck_ratio)
        significant = cores & (core_peak >= needed * deepest) & (core_peak >= min_peak)
        # A core's label names one of its own pixels: count those heads per component.
        heads = significant & (core_labels == flat_index)
        count = _per_component(labels, heads.float(), "sum")
        better = mask & (count > best_count)
        best_count = torch.where(better, count, best_count)
        # Components that chose this level take its cores as seeds (replacing a lower level's).
        seeds = torch.where(better, torch.where(significant, core_labels.float(), -1.0), seeds)
    to_split = mask & (best_count >= 2)
    if not bool(to_split.any()):
        return labels

    # Growth only happens inside the components being split: work on their bounding box.
    rows = torch.nonzero(to_split.any(dim=0).any(dim=1)).squeeze(1)
    cols = torch.nonzero(to_split.any(dim=0).any(dim=0)).squeeze(1)
    r0, r1 = int(rows[0]), int(rows[-1]) + 1
    c0, c1 = int(cols[0]), int(cols[-1]) + 1
    grown = seeds[:, None, r0:r1, c0:c1]
    region = to_split[:, None, r0:r1, c0:c1]
    for _ in range(4 * int(deepest.max().item()) + 8):
        spread = max3x3(grown)
        updated = torch.where(region & (grown < 0), spread, grown)
        if torch.equal(updated, grown):
            break
        grown = updated
    full = seeds.clone()
    full[:, r0:r1, c0:c1] = grown[:, 0]
    grown = full.long()
    # Pixels a core never reached (beyond a very long thin appendage) stay with their component.
    reached = to_split & (grown >= 0)
    return torch.where(reached, grown, labels)
