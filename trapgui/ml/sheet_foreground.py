"""How much each pixel of a trap photo differs from the white sheet behind it.

The sheet is estimated per channel from a high quantile of coarse tiles followed by a grey
closing (dark insects smaller than the closing element vanish, smooth lighting gradients,
vignetting and folds wider than an insect stay), then blurred and upsampled. The foreground
measure is expressed in units of the image's own noise so one threshold fits bright, dim,
grainy and clean sheets alike.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from trapgui.ml.morphology import (
    block_quantile,
    dilate,
    erode,
    gaussian_blur,
    robust_location_scale,
)

# Luminance weights (Rec. 601); the sheet is judged by its brightness, insects by brightness
# and by colour.
_LUMA = (0.299, 0.587, 0.114)


@dataclass
class SheetParams:
    tile_fraction: float = 1 / 96  # tile side relative to the longest image side
    tile_quantile: float = 0.7  # brightness quantile of a tile taken as the sheet there
    closing_fraction: float = 0.14  # closing radius relative to the longest side (largest moth)
    pre_blur_sigma: float = 0.8  # working-resolution pixels; tames JPEG noise and sheet grain
    min_noise_dark: float = 0.012  # floors on the noise scale: a clipped white sheet has ~0 noise
    min_noise_chroma: float = 0.01
    chroma_weight: float = 1.0  # weight of colour difference against darkness (in noise units)
    bright_weight: float = 0.5  # insects brighter than the sheet (white moths in a dim corner)
    noise_tile_fraction: float = 1 / 48  # tiles for the local noise scale
    noise_opening_fraction: float = 0.06  # removes insects from the noise map


@dataclass
class Foreground:
    score: torch.Tensor  # (B, 1, H, W) max of the noise-normalised measures
    darkness: torch.Tensor  # (B, 1, H, W) 1 - brightness relative to the sheet
    chroma: torch.Tensor  # (B, 1, H, W) colour distance from the sheet's colour
    sheet_level: torch.Tensor  # (B,) median sheet brightness, to recognise non-sheet photos
    sheet_noise: torch.Tensor  # (B,) robust spread of the darkness: grain of a sheet, ~0.3 on soil


def estimate_sheet(images: torch.Tensor, params: SheetParams) -> torch.Tensor:
    """Per-channel sheet brightness (B, 3, H, W) robust to insects on it."""
    _, _, h, w = images.shape
    longest = max(h, w)
    tile = max(2, int(round(longest * params.tile_fraction)))
    coarse = block_quantile(images, tile, params.tile_quantile)
    radius = max(1, int(round(longest * params.closing_fraction / tile)))
    # Closing (max then min): dark patches narrower than the element are filled by the sheet
    # around them; replicate padding keeps the edges of the photo from acting as dark objects.
    padded = F.pad(coarse, (radius, radius, radius, radius), mode="replicate")
    closed = erode(dilate(padded, radius), radius)[..., radius:-radius, radius:-radius]
    smooth = gaussian_blur(closed, 1.0)
    return F.interpolate(smooth, size=(h, w), mode="bilinear", align_corners=False)


def measure_foreground(images: torch.Tensor, params: SheetParams) -> Foreground:
    """Noise-normalised difference of every pixel from the sheet, for a (B, 3, H, W) batch."""
    b = images.shape[0]
    sheet = estimate_sheet(images, params).clamp(min=0.03)
    blurred = gaussian_blur(images, params.pre_blur_sigma)
    ratio = blurred / sheet  # white-balanced against the local sheet: sheet -> (1, 1, 1)
    luma = torch.tensor(_LUMA, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    brightness = (ratio * luma).sum(dim=1, keepdim=True)
    darkness = 1.0 - brightness
    # Colour difference independent of brightness: chromaticity of the ratio versus grey.
    chromaticity = ratio / brightness.clamp(min=0.05)
    chroma = (chromaticity - 1.0).pow(2).sum(dim=1, keepdim=True).sqrt()
    # Very dark pixels have unreliable chromaticity (noise divided by a small brightness).
    chroma = chroma * brightness.clamp(0.0, 0.25) / 0.25

    dark_z, dark_spread = _normalise(darkness, params, params.min_noise_dark)
    chroma_z, _ = _normalise(chroma, params, params.min_noise_chroma)
    score = torch.maximum(dark_z, params.chroma_weight * chroma_z)
    score = torch.maximum(score, -params.bright_weight * dark_z)
    sheet_luma = (sheet * luma).sum(dim=1)
    return Foreground(
        score=score,
        darkness=darkness,
        chroma=chroma,
        sheet_level=sheet_luma.view(b, -1).median(dim=1).values,
        sheet_noise=dark_spread,
    )


def _normalise(
    measure: torch.Tensor, params: SheetParams, floor: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """(measure - typical sheet value) / local noise of the sheet, and the global noise (B,).

    The noise scale is the median absolute deviation per tile, opened (min then max over a few
    tiles) so tiles covered by an insect take the value of the sheet around them, then blurred.
    A grainy or fibrous sheet edge thereby needs more contrast than a smooth, clean centre."""
    b, _, h, w = measure.shape
    location, global_scale = robust_location_scale(measure.view(b, -1))
    deviation = (measure - location.view(b, 1, 1, 1)).abs()
    longest = max(h, w)
    tile = max(4, int(round(longest * params.noise_tile_fraction)))
    coarse = 1.4826 * block_quantile(deviation, tile, 0.5)
    radius = max(1, int(round(longest * params.noise_opening_fraction / tile)))
    padded = F.pad(coarse, (radius, radius, radius, radius), mode="replicate")
    opened = dilate(erode(padded, radius), radius)[..., radius:-radius, radius:-radius]
    local = F.interpolate(
        gaussian_blur(opened, 1.0), size=(h, w), mode="bilinear", align_corners=False
    )
    # Never trust a local scale far below the image's own: a clipped white patch has no noise.
    scale = torch.maximum(local, 0.5 * global_scale.view(b, 1, 1, 1)).clamp(min=floor)
    return (measure - location.view(b, 1, 1, 1)) / scale, global_scale
