"""Cutting crops on a CPU at the speed of the arithmetic, not of the memory system.

Two things made a 4K image's crops cost ~0.4 s on 2 cores (bench_stages.py), more than
resizing them: converting the whole image to float for a few boxes, and torchvision's CPU
``roi_align``, which runs on one core. So: large boxes (many samples per output pixel) go
through crop_separable, two matrix products on a few image rows at a time; of the others, only
each box's region becomes float when they are small, otherwise the whole image is converted
(106 MB for a 4096x2160 image); either way those are split across the torch threads (each
share about the same pixel area). The roi_align paths give the same numbers as converting the
whole image and one ``roi_align``; crop_separable agrees with it to ~1e-6.

The whole image's float copy is not kept between images: a buffer kept per thread saved its
page faults (~33 ms per image here) but stayed resident all run long (101 MiB of a run's
1.5 GiB peak, see core/allocator.py), and the memory goal weighs more than 1 % of the time.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import torch
from trapgui.ml import crop_separable
from trapgui.ml.torchvision_import import import_torchvision

import_torchvision()  # before any torchvision module: see torchvision_import
from torchvision.ops import roi_align  # noqa: E402

REGION_MARGIN = 2  # pixels: roi_align's bilinear samples reach at most 1 pixel past a box
MIN_BOXES_PER_THREAD = 4  # fewer: a thread hand-off costs more than it saves

_pool_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0


def as_float(image: torch.Tensor) -> torch.Tensor:
    """uint8 pixels in [0, 1], or a float image as float32."""
    if image.dtype == torch.uint8:
        return image.to(torch.float32).div_(255.0)
    return image.to(torch.float32)


def resize(image: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """The one resize of every crop path: roi_align on a float (3, H, W) image."""
    return roi_align(image[None], rois, output_size=(size, size), spatial_scale=1.0,
                     sampling_ratio=0, aligned=True)


def _workers(parts: int) -> ThreadPoolExecutor:
    """The crop threads, at least ``parts`` of them (the torch thread count can rise later)."""
    global _pool, _pool_size
    with _pool_lock:
        if _pool is None or _pool_size < parts:
            old, _pool, _pool_size = _pool, ThreadPoolExecutor(
                max_workers=parts, thread_name_prefix="trapgui-crops"), parts
            if old is not None:
                old.shutdown(wait=False)
        return _pool


def _resize_split(image: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """``resize`` with the boxes shared among the torch threads (roi_align releases the GIL)."""
    parts = min(torch.get_num_threads(), rois.shape[0] // MIN_BOXES_PER_THREAD)
    if parts < 2:
        return resize(image, rois, size)
    out = torch.empty((rois.shape[0], image.shape[0], size, size), dtype=torch.float32)

    def one(k: int) -> None:
        with torch.inference_mode():
            out[k::parts] = resize(image, rois[k::parts], size)

    list(_workers(parts).map(one, range(parts)))
    return out


def cut_on_cpu(image: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """roi_align of (M, 5) rois on one (3, H, W) CPU image (uint8, or float in [0, 1]).

    Boxes with many samples per output pixel go through crop_separable (a few rows of the
    image at a time), one after the other: its products use the torch threads themselves."""
    large = crop_separable.wanted(rois, size)
    if not bool(large.any()):
        return _cut_by_roi_align(image, rois, size)
    out = torch.empty((rois.shape[0], image.shape[0], size, size), dtype=torch.float32)
    for k in large.nonzero().flatten().tolist():
        out[k] = crop_separable.cut(image, rois[k, 1:].tolist(), size)
    rest = (~large).nonzero().flatten()
    if rest.numel():
        out[rest] = _cut_by_roi_align(image, rois[rest], size)
    return out


def _cut_by_roi_align(image: torch.Tensor, rois: torch.Tensor, size: int) -> torch.Tensor:
    """roi_align on each box's region, or on the whole image as float when the regions cover
    half of it or more; the boxes shared among the torch threads.

    A box's region is the box grown by REGION_MARGIN and clipped to the image, so every
    sample sees the same pixels as in the whole image, and the image's own edges (where
    roi_align clamps, or a pad-mode square reaches outside) stay the region's edges."""
    h, w = int(image.shape[-2]), int(image.shape[-1])
    b = rois[:, 1:]
    x0 = (b[:, 0].floor() - REGION_MARGIN).clamp(0, w)
    y0 = (b[:, 1].floor() - REGION_MARGIN).clamp(0, h)
    x1 = (b[:, 2].ceil() + REGION_MARGIN).clamp(0, w)
    y1 = (b[:, 3].ceil() + REGION_MARGIN).clamp(0, h)
    if float(((x1 - x0) * (y1 - y0)).sum()) * 2 >= h * w:
        return _resize_split(as_float(image), rois, size)
    origin = torch.stack([torch.zeros_like(x0), x0, y0, x0, y0], dim=1)
    shifted = rois - origin  # exact: whole-pixel offsets
    out = torch.empty((rois.shape[0], 3, size, size), dtype=torch.float32)
    regions = torch.stack([x0, y0, x1, y1], 1).to(torch.int64).tolist()

    def cut(ks: list[int]) -> None:
        with torch.inference_mode():
            for k in ks:
                a, c, e, f = regions[k]
                out[k] = resize(as_float(image[:, c:f, a:e]), shifted[k:k + 1], size)[0]

    shares = _shares([(e - a) * (f - c) for a, c, e, f in regions])
    if len(shares) < 2:
        cut(list(range(len(regions))))
    else:
        list(_workers(len(shares)).map(cut, shares))
    return out


def _shares(areas: list[int]) -> list[list[int]]:
    """Box indices split among the torch threads, each share about the same pixel area (a
    box's roi_align samples grow with its area): largest first, each to the lightest share."""
    parts = min(torch.get_num_threads(), len(areas) // MIN_BOXES_PER_THREAD)
    if parts < 2:
        return [list(range(len(areas)))]
    shares: list[list[int]] = [[] for _ in range(parts)]
    load = [0] * parts
    for k in sorted(range(len(areas)), key=lambda k: -areas[k]):
        lightest = load.index(min(load))
        shares[lightest].append(k)
        load[lightest] += areas[k]
    return shares
