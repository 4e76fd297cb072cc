"""Cutting detection boxes out of images and resizing them for a classifier, on the device.

``stack_crops`` cuts every box of a batch with ``torchvision.ops.roi_align`` (no PIL, no JPEG
round trip), then normalises; on a CPU through ``crop_cpu`` (regions, large boxes as matrix
products, the boxes split across threads), elsewhere one conversion and one call per image.
``crop_one`` is the reference path (one box, the whole image as float, same resize method)
that tests compare against.

Resize method: roi_align with ``aligned=True`` (pixel i covers [i, i+1)) and adaptive sampling
(``sampling_ratio=0``: ceil(box side / output side) samples per bin and axis), which averages
over each output pixel's footprint when shrinking (no aliasing on large moths) and is bilinear
when enlarging small boxes.

``mode="pad"`` keeps the aspect ratio: the box is grown to a square around its centre; parts
of the square outside the image get ``fill`` (in [0, 1] pixel units, default 0 = black), the
same in both paths whatever the other images of the batch look like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from trapgui.ml.crop_cpu import as_float, cut_on_cpu, resize

MIN_BOX_SIDE = 1.0  # pixels, after clipping to the image


@dataclass
class CropBatch:
    crops: torch.Tensor  # (M, 3, S, S) float32, normalised
    owner: torch.Tensor  # (M, 2) int64 on CPU: (image index, box index) of each crop
    skipped: list[tuple[int, int, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.crops.shape[0])


def clean_boxes(boxes: torch.Tensor, width: int, height: int) -> tuple[torch.Tensor, torch.Tensor, list[str | None]]:
    """Clip boxes (N, 4) to the image. Returns (clipped boxes, keep mask, reason per box or None).

    Degenerate boxes (not finite, x1 >= x2 or y1 >= y2, entirely outside the image, or under one
    pixel once clipped) are not kept; the reason says which."""
    boxes = boxes.reshape(-1, 4).to(torch.float32)
    n = boxes.shape[0]
    if n == 0:
        return boxes, torch.zeros(0, dtype=torch.bool, device=boxes.device), []
    finite = torch.isfinite(boxes).all(dim=1)
    safe = torch.where(finite[:, None], boxes, torch.zeros_like(boxes))
    ordered = (safe[:, 2] > safe[:, 0]) & (safe[:, 3] > safe[:, 1])
    clipped = safe.clone()
    clipped[:, 0::2] = clipped[:, 0::2].clamp(0, float(width))
    clipped[:, 1::2] = clipped[:, 1::2].clamp(0, float(height))
    cw = clipped[:, 2] - clipped[:, 0]
    ch = clipped[:, 3] - clipped[:, 1]
    inside = (cw > 0) & (ch > 0)
    big = (cw >= MIN_BOX_SIDE) & (ch >= MIN_BOX_SIDE)
    keep = finite & ordered & big
    reasons: list[str | None] = [None] * n
    if not bool(keep.all()):
        flags = torch.stack([finite, ordered, inside, big], dim=1).cpu().tolist()
        for i, (fin, order, ins, large) in enumerate(flags):
            if not fin:
                reasons[i] = "box coordinates are not finite"
            elif not order:
                reasons[i] = "empty box (x1 >= x2 or y1 >= y2)"
            elif not ins:
                reasons[i] = "box lies outside the image"
            elif not large:
                reasons[i] = "box is smaller than one pixel inside the image"
    return clipped, keep, reasons


def square_boxes(boxes: torch.Tensor) -> torch.Tensor:
    """Grow each box to a square (side = its longer side) around its centre."""
    cx = (boxes[:, 0] + boxes[:, 2]) / 2
    cy = (boxes[:, 1] + boxes[:, 3]) / 2
    half = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=1)


def _inside_mask(rois: torch.Tensor, sizes: torch.Tensor, size: int) -> torch.Tensor:
    """(M, 1, S, S) True where an output pixel's centre falls inside its own image."""
    steps = (torch.arange(size, device=rois.device, dtype=torch.float32) + 0.5) / size
    x1, y1, x2, y2 = rois[:, 1:2], rois[:, 2:3], rois[:, 3:4], rois[:, 4:5]
    xs = x1 + (x2 - x1) * steps  # (M, S)
    ys = y1 + (y2 - y1) * steps
    in_x = (xs >= 0) & (xs < sizes[:, 0:1])
    in_y = (ys >= 0) & (ys < sizes[:, 1:2])
    return (in_y[:, :, None] & in_x[:, None, :])[:, None]


def _normalise(crops: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    m = torch.tensor(mean, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=crops.dtype, device=crops.device).view(1, 3, 1, 1)
    return crops.sub_(m).div_(s)


def _resize(image: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    return resize(as_float(image), rois, size)


def _cut(image: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    if image.device.type == "cpu":
        return cut_on_cpu(image, rois, size)
    return _resize(image, rois, size)  # one conversion, one kernel: no per-box launches


def stack_crops(images: Sequence[torch.Tensor], boxes: Sequence[torch.Tensor], size: int,
                mode: str = "stretch", mean: Sequence[float] = (0.0, 0.0, 0.0),
                std: Sequence[float] = (1.0, 1.0, 1.0), fill: float = 0.0) -> CropBatch:
    """All boxes of all images → (M, 3, size, size) normalised crops, image by image (a 4K
    image is 106 MB as float32, a whole batch at once was 4-8x that; and an image's crops
    never depend on its batch-mates).

    images: (3, H, W) tensors (uint8 or float in [0, 1]) on one device, sizes may differ.
    boxes: per image, (N_i, 4) x1 y1 x2 y2 in that tensor's pixels."""
    if mode not in ("stretch", "pad"):
        raise ValueError(f"unknown crop mode {mode!r} (use 'stretch' or 'pad')")
    if len(images) != len(boxes):
        raise ValueError("one box tensor per image is needed")
    device = images[0].device if images else torch.device("cpu")
    parts, owners, skipped = [], [], []
    for i, (image, b) in enumerate(zip(images, boxes)):
        h, w = int(image.shape[-2]), int(image.shape[-1])
        clipped, keep, reasons = clean_boxes(b.to(device), w, h)
        skipped.extend((i, j, r) for j, r in enumerate(reasons) if r is not None)
        idx = torch.nonzero(keep, as_tuple=False).flatten()
        if idx.numel() == 0:
            continue
        kept = clipped[idx]
        if mode == "pad":
            kept = square_boxes(kept)
        rois = torch.cat([torch.zeros((kept.shape[0], 1), device=device), kept], 1)
        crops = _cut(image, rois, size)
        if mode == "pad":
            sizes = torch.tensor([[w, h]], dtype=torch.float32, device=device)
            crops = torch.where(_inside_mask(rois, sizes.expand(kept.shape[0], 2), size),
                                crops, torch.full_like(crops, fill))
        parts.append(crops)
        owners.append(torch.stack([torch.full_like(idx, i), idx], dim=1).cpu())
    if not parts:
        return CropBatch(torch.zeros((0, 3, size, size), device=device),
                         torch.zeros((0, 2), dtype=torch.int64), skipped)
    crops = torch.cat(parts) if len(parts) > 1 else parts[0]  # one concatenation of a list
    return CropBatch(_normalise(crops, mean, std), torch.cat(owners), skipped)


def crop_one(image: torch.Tensor, box: torch.Tensor | Sequence[float], size: int,
             mode: str = "stretch", mean: Sequence[float] = (0.0, 0.0, 0.0),
             std: Sequence[float] = (1.0, 1.0, 1.0), fill: float = 0.0) -> torch.Tensor | None:
    """Reference path: one box of one image → (3, size, size), or None for a degenerate box;
    the whole image converted to float (no regions)."""
    if mode not in ("stretch", "pad"):
        raise ValueError(f"unknown crop mode {mode!r} (use 'stretch' or 'pad')")
    box = torch.as_tensor(box, dtype=torch.float32, device=image.device).reshape(1, 4)
    h, w = int(image.shape[-2]), int(image.shape[-1])
    clipped, keep, _ = clean_boxes(box, w, h)
    if not bool(keep[0]):
        return None
    kept = square_boxes(clipped) if mode == "pad" else clipped
    rois = torch.cat([torch.zeros((1, 1), device=image.device), kept], 1)
    crop = _resize(image, rois, size)
    if mode == "pad":
        sizes = torch.tensor([[w, h]], dtype=torch.float32, device=image.device)
        crop = torch.where(_inside_mask(rois, sizes, size), crop, torch.full_like(crop, fill))
    return _normalise(crop, mean, std)[0]
