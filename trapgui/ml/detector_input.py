"""The input a torchvision Faster R-CNN sees, computed without a full-resolution float image.

torchvision's ``GeneralizedRCNNTransform`` (the reference: what the publishers' app and their
training do) turns the whole image into float, normalises every pixel, then resizes with
bilinear interpolation (``align_corners=False``, no antialiasing) to shorter side 800 /
longer side at most 1333. For a 4096x2160 trap image that is 26.5 million values converted
and normalised to keep 2.8 million: on a CPU it costs more than a tenth of the detector's
forward pass and 212 MB of memory.

Bilinear interpolation reads two rows and two columns per output pixel and normalisation is
per-channel affine, so the same picture comes from: gather the two source rows of every
output row straight from the uint8 image, interpolate them (now float), do the same along the
columns, then scale to [0, 1] and normalise the small result. The sample positions and
weights are torchvision's (``area_pixel_compute_source_index``, in float32); only the
rounding of the float arithmetic differs (~1e-7), far inside the reference bar that
``tests/test_reference_detections.py`` checks (>= 98 % of the reference's boxes matched at
IoU >= 0.9 with scores within 1e-3).
"""

from __future__ import annotations

import torch


_RESIZED: dict[tuple, tuple[int, int]] = {}


def resized_size(transform, height: int, width: int) -> tuple[int, int]:
    """The (height, width) torchvision's transform resizes an image of this size to: its own
    resize of a one-channel stand-in, so the rule is exactly the installed version's. Kept
    per transform setting and image size (a trap's images share one size). Not a meta tensor:
    interpolate runs as a Python reference on meta, whose first call imports torch._dynamo."""
    key = (tuple(transform.min_size), transform.max_size,
           getattr(transform, "fixed_size", None), height, width)
    if key not in _RESIZED:
        probe = torch.zeros((1, 1, 1)).expand(1, height, width)
        out, _ = transform.resize(probe, None)
        _RESIZED[key] = (int(out.shape[-2]), int(out.shape[-1]))
    return _RESIZED[key]


def _taps(in_size: int, out_size: int, device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Source indices (low, high) and the weight of the high one for each output position,
    as PyTorch's bilinear kernel computes them (align_corners=False)."""
    scale = torch.tensor(float(in_size), dtype=torch.float32) / out_size  # float32, as torch
    dst = torch.arange(out_size, dtype=torch.float32)
    src = (scale * (dst + 0.5) - 0.5).clamp_(min=0.0)
    low = src.floor().to(torch.int64).clamp_(max=in_size - 1)
    weight = (src - low.to(torch.float32)).clamp_(0.0, 1.0)
    high = torch.where(low < in_size - 1, low + 1, low)
    return low.to(device), high.to(device), weight.to(device)


def detector_input(image: torch.Tensor, transform) -> torch.Tensor:
    """The normalised, resized float (3, h, w) image torchvision's ``transform`` would make from
    ``image`` (uint8 (3, H, W), or float in [0, 1])."""
    height, width = int(image.shape[-2]), int(image.shape[-1])
    out_h, out_w = resized_size(transform, height, width)
    if out_h * out_w >= height * width:  # enlarged (a small image): the reference's own steps
        return reference_input(image, transform)
    lo, hi, wy = _taps(height, out_h, image.device)
    rows = torch.lerp(image.index_select(1, lo).to(torch.float32),
                      image.index_select(1, hi).to(torch.float32), wy[None, :, None])
    # along the width: torch's own bilinear kernel (the height is already right, so it only
    # interpolates columns, with the reference's weights)
    out = torch.nn.functional.interpolate(rows[None], size=(out_h, out_w), mode="bilinear",
                                          align_corners=False)[0]
    del rows
    mean = torch.as_tensor(transform.image_mean, dtype=torch.float32, device=out.device)
    std = torch.as_tensor(transform.image_std, dtype=torch.float32, device=out.device)
    if image.dtype == torch.uint8:
        out.div_(255.0)
    return out.sub_(mean[:, None, None]).div_(std[:, None, None])


def reference_input(image: torch.Tensor, transform) -> torch.Tensor:
    """torchvision's own steps (float, normalise, resize), normalising in place when the
    float image is ours: the same operations per element, so the same values."""
    if image.dtype == torch.uint8:
        x = image.to(torch.float32).div_(255.0)
        mean = torch.as_tensor(transform.image_mean, dtype=x.dtype, device=x.device)
        std = torch.as_tensor(transform.image_std, dtype=x.dtype, device=x.device)
        x = x.sub_(mean[:, None, None]).div_(std[:, None, None])
    else:
        x = transform.normalize(image.to(torch.float32))
    resized, _ = transform.resize(x, None)
    return resized
