"""Per-region measurements that tell insects from the other dark things on a trap sheet.

All of them are computed at the detector's working resolution (the same whatever size the
engine decoded the photo at, so a count never depends on whether classifiers are configured),
from per-pixel maps reduced over each connected region in one `component_stats` call, and from
pairwise comparisons of the candidate boxes of an image. Batched torch ops on the input device.

The cues, each a property of the object rather than of any one trap:
- contrast and significance against the sheet, relative to what the region's size demands;
- edge sharpness: the steepest contrast step inside the region over its peak contrast. An
  insect on the sheet is in focus, a stain, water mark or smudge fades out softly;
- colour: chroma relative to contrast. Printed ink, metal and camera overlays are grey;
- rectilinearity: how strongly the region's edges follow two perpendicular directions (the mean
  of the quadrupled gradient angle, any rotation). Printed bars, cards, glyph strokes and
  overlay strips are made of straight perpendicular edges; insects, stains and screws are not;
- shape: elongation, fill of the ellipse, fill of the bounding box;
- a bright centre in a round dark disc (rivet, dome screw, washer hole): darkness at the
  centroid against the region's mean, and the brightest pixel against the sheet;
- text rows: other regions of the same height on the same baseline next to it;
- nesting: how much of the box lies inside a bigger candidate's box;
- thickness (the minor axis) and dominance: the region's area over the largest candidate's in
  the same region of faint foreground. A leg, an antenna, a wing tip or a fragment of a wing is
  a thin or small member of a faint region that holds its whole insect; an insect on clean
  sheet is the largest thing in its own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trapgui.ml.components import ComponentStats, component_stats
from trapgui.ml.morphology import box_blur
from trapgui.ml.sheet_foreground import Foreground

FEATURE_NAMES = (
    "log_margin",
    "log_area",
    "contrast",
    "dark_max",
    "chroma_ratio",
    "highlight",
    "sharpness",
    "texture",
    "log_elongation",
    "fill",
    "box_fill",
    "rectilinear",
    "centre",
    "border",
    "row",
    "contained",
    "log_minor",
    "dominance",
)

# Per-pixel channels reduced over every region (sums and maxima).
_SCORE, _HIGH, _CONTRAST, _DARK, _DARK2, _CHROMA, _NEG_DARK, _GRAD, _GC4, _GS4, _WEAK = range(11)


def _gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Central differences (B, 1, H, W), zero at the border."""
    gx = torch.zeros_like(x)
    gy = torch.zeros_like(x)
    gx[..., :, 1:-1] = (x[..., :, 2:] - x[..., :, :-2]) / 2
    gy[..., 1:-1, :] = (x[..., 2:, :] - x[..., :-2, :]) / 2
    return gx, gy


def region_maps(fg: Foreground, high: torch.Tensor, weak_labels: torch.Tensor) -> torch.Tensor:
    """The per-pixel channels (B, 11, H, W) that `region_stats` reduces."""
    contrast = torch.maximum(fg.darkness, fg.chroma)
    gx, gy = _gradient(contrast)
    m2 = gx * gx + gy * gy
    m = m2.sqrt()
    safe = m2.clamp(min=1e-12)
    cos2 = (gx * gx - gy * gy) / safe
    sin2 = 2 * gx * gy / safe
    cos4 = cos2 * cos2 - sin2 * sin2
    sin4 = 2 * sin2 * cos2
    return torch.cat(
        [
            fg.score,
            high,
            contrast,
            fg.darkness,
            fg.darkness * fg.darkness,
            fg.chroma,
            -fg.darkness,
            m,
            m * cos4,
            m * sin4,
            weak_labels.to(fg.score.dtype),
        ],
        dim=1,
    )


def region_stats(labels: torch.Tensor, maps: torch.Tensor) -> ComponentStats:
    return component_stats(labels, maps)


@dataclass
class RegionFeatures:
    values: torch.Tensor  # (K, len(FEATURE_NAMES)) float32
    weak: torch.Tensor  # (K,) int64 label of the faint-foreground region each region lies in

    def __getitem__(self, name: str) -> torch.Tensor:
        return self.values[:, FEATURE_NAMES.index(name)]


def region_features(
    st: ComponentStats,
    darkness: torch.Tensor,
    margin: torch.Tensor,
    candidates: torch.Tensor,
    h: int,
    w: int,
) -> RegionFeatures:
    """Features of every region (K rows); the pairwise ones (row, contained) only compare
    regions marked in `candidates` with each other."""
    area = st.area
    sums, maxima = st.sums, st.maxima
    contrast = sums[:, _CONTRAST] / area
    dark_mean = sums[:, _DARK] / area
    dark_var = (sums[:, _DARK2] / area - dark_mean**2).clamp(min=0)
    chroma = sums[:, _CHROMA] / area
    dark_max = maxima[:, _DARK]
    peak = torch.maximum(maxima[:, _CONTRAST], torch.full_like(area, 0.02))
    grad_sum = sums[:, _GRAD].clamp(min=1e-9)
    rectilinear = torch.sqrt(sums[:, _GC4] ** 2 + sums[:, _GS4] ** 2) / grad_sum
    bw = st.x2 - st.x1 + 1
    bh = st.y2 - st.y1 + 1
    elongation = st.major / st.minor.clamp(min=1.0)
    fill = area / st.major.clamp(min=1.0) ** 2
    box_fill = area / (bw * bh)
    # Darkness at the centroid (3x3 mean): low in a ring, a washer or a dome's highlight.
    smooth = box_blur(darkness, 1)
    cx = st.cx.round().long().clamp(0, w - 1)
    cy = st.cy.round().long().clamp(0, h - 1)
    centre_dark = smooth[st.image, 0, cy, cx]
    centre = centre_dark / dark_mean.clamp(min=0.02)
    border = torch.minimum(
        torch.minimum(st.x1, st.y1), torch.minimum(w - 1 - st.x2, h - 1 - st.y2)
    ) / max(h, w)
    row, contained = _pairwise(st, candidates)
    weak = maxima[:, _WEAK].round().long()
    dominance = _dominance(st, weak, candidates)
    values = torch.stack(
        [
            torch.log(margin.clamp(min=1e-3)),
            torch.log(area / (h * w)),
            contrast,
            dark_max,
            chroma / contrast.clamp(min=0.02),
            maxima[:, _NEG_DARK],
            maxima[:, _GRAD] / peak,
            dark_var.sqrt() / dark_mean.clamp(min=0.02),
            torch.log(elongation),
            fill,
            box_fill,
            rectilinear,
            centre,
            border,
            row,
            contained,
            torch.log(st.minor.clamp(min=1.0)),
            dominance,
        ],
        dim=1,
    )
    return RegionFeatures(values=values.float(), weak=weak)


def _dominance(st: ComponentStats, weak: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Area over the largest candidate area sharing the region's faint-foreground region (1 for
    the largest, and for regions outside any faint region)."""
    k = st.area.shape[0]
    out = torch.ones(k, device=st.area.device)
    sel = candidates & (weak >= 0)
    if not bool(sel.any()):
        return out
    key = st.image * (int(weak.max()) + 1) + weak.clamp(min=0)
    _, inverse = torch.unique(key[sel], return_inverse=True)
    largest = torch.zeros(int(inverse.max()) + 1, device=st.area.device).scatter_reduce(
        0, inverse, st.area[sel], reduce="amax", include_self=False
    )
    out[sel] = st.area[sel] / largest[inverse]
    return out


def _pairwise(st: ComponentStats, candidates: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Text-row neighbours and nesting among the candidate regions of each image."""
    k = st.area.shape[0]
    row = torch.zeros(k, device=st.area.device)
    contained = torch.zeros(k, device=st.area.device)
    idx = torch.nonzero(candidates).squeeze(1)
    if idx.numel() < 2:
        return row, contained
    x1, y1 = st.x1[idx], st.y1[idx]
    x2, y2 = st.x2[idx] + 1, st.y2[idx] + 1
    same = st.image[idx][:, None] == st.image[idx][None, :]
    same.fill_diagonal_(False)
    hgt = y2 - y1
    taller = torch.maximum(hgt[:, None], hgt[None, :])
    similar = torch.minimum(hgt[:, None], hgt[None, :]) >= 0.55 * taller
    cyr = (y1 + y2) / 2
    aligned = (cyr[:, None] - cyr[None, :]).abs() <= 0.35 * taller
    gap = torch.maximum(x1[:, None], x1[None, :]) - torch.minimum(x2[:, None], x2[None, :])
    beside = (gap >= -0.2 * taller) & (gap <= 1.2 * taller)
    row[idx] = (same & similar & aligned & beside).sum(dim=1).float()
    # Nesting: the share of a box inside a candidate box at least twice its area.
    ix = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :])).clamp(min=0)
    iy = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :])).clamp(min=0)
    box_area = (x2 - x1) * (y2 - y1)
    share = ix * iy / box_area[:, None]
    bigger = box_area[None, :] >= 2 * box_area[:, None]
    share = torch.where(same & bigger, share, torch.zeros_like(share))
    contained[idx] = share.max(dim=1).values
    return row, contained


def thickness(values: torch.Tensor) -> torch.Tensor:
    """Mean thickness (working pixels) of the regions whose feature rows are `values`: area
    over the major axis, scaled so an ellipse gives its minor axis. A curved wing fragment or
    leg is as thin as it looks, where its moments' minor axis is widened by the curve."""
    def column(name: str) -> torch.Tensor:
        return values[:, FEATURE_NAMES.index(name)]

    major = torch.exp(column("log_minor") + column("log_elongation"))
    return 4.0 / math.pi * column("fill") * major


def host_of_parts(
    st: ComponentStats,
    features: RegionFeatures,
    candidates: torch.Tensor,
    min_share: float,
    max_area_ratio: float,
    max_thickness: float = float("inf"),
) -> torch.Tensor:
    """For each region, the index of the bigger candidate it is a part of (-1 if none).

    A part lies mostly inside the bigger one's box, is much smaller, and is joined to it by
    faint foreground (the same region of the weak mask): a wing tip or a leg beyond a pale,
    barely visible wing. A separate insect next to a big one is divided from it by clean sheet.
    A region thicker than `max_thickness` (working pixels, see `thickness`) has a body of its
    own: a small moth between the wings or antennae of a big one, never a part."""
    k = st.area.shape[0]
    host = torch.full((k,), -1, dtype=torch.long, device=st.area.device)
    idx = torch.nonzero(candidates).squeeze(1)
    if idx.numel() < 2:
        return host
    x1, y1 = st.x1[idx], st.y1[idx]
    x2, y2 = st.x2[idx] + 1, st.y2[idx] + 1
    ix = (torch.minimum(x2[:, None], x2[None, :]) - torch.maximum(x1[:, None], x1[None, :])).clamp(min=0)
    iy = (torch.minimum(y2[:, None], y2[None, :]) - torch.maximum(y1[:, None], y1[None, :])).clamp(min=0)
    box_area = (x2 - x1) * (y2 - y1)
    share = ix * iy / box_area[:, None]
    area = st.area[idx]
    weak = features.weak[idx]
    ok = (
        (st.image[idx][:, None] == st.image[idx][None, :])
        & (weak[:, None] == weak[None, :])
        & (weak[:, None] >= 0)
        & (area[:, None] <= max_area_ratio * area[None, :])
        & (share >= min_share)
        & (thickness(features.values[idx])[:, None] <= max_thickness)
    )
    ok.fill_diagonal_(False)
    # The largest qualifying host (a part of a part goes straight to the whole insect).
    score = torch.where(ok, area[None, :].expand_as(ok), torch.full_like(share, -1.0))
    best, which = score.max(dim=1)
    has = best > 0
    host[idx[has]] = idx[which[has]]
    for _ in range(4):  # a host that is itself a part hands its parts on
        up = torch.where(host >= 0, host[host.clamp(min=0)], host)
        resolved = torch.where(up >= 0, up, host)
        if torch.equal(resolved, host):
            break
        host = resolved
    return host
