"""Rules that reject regions which are not insects, whatever trap the photo comes from.

Each rule names a kind of object by properties it cannot help having (see `box_features`), so
the rules hold on sheets the detector has never seen:
- printed marks (scale bars, rulers, printed cards, overlay strips): grey, very dark ink whose
  edges run in two perpendicular directions, on a region big enough for that to be measured;
  or a printed line (a ruler's bar and ticks, a label whose glyphs merged): grey, dark, at least
  three times as long as wide, filling its box, ink alternating with paper inside;
- fixtures (screws, rivets, washers): a grey, dark, geometrically perfect disc, or a round ring
  that is bright in the middle (a washer's hole the closing left open). The bright centre of
  small ones (a specular highlight) is mostly below the working resolution; the perfect
  roundness of a turned metal part is not. Insects are never round to
  within 20 % with a full outline: legs, heads and wings break it;
- burnt-in text (the camera's timestamp): glyph-sized regions in a corner band that keep a
  margin from the frame and either line up with other glyphs or hold overlay fill brighter
  than the lit sheet (white or yellow OSD text), which reflected light never is;
- stains, water marks and smudges: faint and flat everywhere (no dark core an insect's body
  would have).

Every rule returns a boolean mask over the regions; `reject` combines them and says which rule
fired (0 = kept), for the explanations the evaluation prints.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from trapgui.ml.box_features import RegionFeatures

KEPT, PRINTED, FIXTURE, TEXT, STAIN, PART = range(6)
REASONS = ("kept", "printed mark", "fixture", "burnt-in text", "stain", "part of an insect")


@dataclass
class ArtefactParams:
    printed_chroma_ratio: float = 0.35  # chroma / contrast at most this: grey ink
    printed_rectilinear: float = 0.4
    printed_dark: float = 0.45
    printed_min_side: float = 0.018  # of the longest image side: straight edges are only
    # measurable on regions much bigger than the pixel grid (a small speck is all right angles)
    # A printed line (a ruler's bar with its ticks, a label such as "20 mm" whose glyphs the
    # closing joined): grey, dark, long and straight-sided, ink alternating with paper inside.
    line_chroma_ratio: float = 0.15
    line_elongation: float = 3.0
    line_box_fill: float = 0.6
    line_texture: float = 0.6  # spread of darkness over its mean
    fixture_chroma_ratio: float = 0.15  # metal is grey
    fixture_elongation: float = 1.2
    fixture_fill: float = 0.87  # of a full ellipse's area / major axis^2 (pi / 4)
    fixture_dark: float = 0.45
    # Working px (a disc of ~7 px, ~18 px at 4096): below, roundness cannot be measured on the
    # pixel grid, and a gnat's body is as "round" as a rivet; those are left to the score.
    fixture_min_area: float = 36.0
    # A washer or a ring rivet whose hole the closing left open: a round ring, bright inside.
    ring_fill: float = 0.5
    ring_centre: float = 0.5
    text_band: float = 0.08  # of the height from the top or the bottom ...
    text_side: float = 0.35  # ... and of the width from the left or the right: a corner
    text_max_height: float = 0.07  # glyphs are small: box height / image height
    text_row: int = 2  # other regions of the same height on the same line
    text_highlight: float = 0.05  # overlay fill brighter than the lit sheet (white, yellow)
    stain_contrast: float = 0.12  # mean relative darkness or colour distance at most this ...
    stain_dark: float = 0.25  # ... and nowhere darker than this: a faint, flat mark


def reject(
    f: RegionFeatures,
    boxes: torch.Tensor,
    area: torch.Tensor,
    h: int,
    w: int,
    p: ArtefactParams,
) -> torch.Tensor:
    """Reason code per region (int64, KEPT where no rule fires). `boxes` are the unpadded
    region boxes (K, 4) in working pixels, `area` their pixel counts."""
    longest = max(h, w)
    side = torch.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    printed = (
        (f["chroma_ratio"] <= p.printed_chroma_ratio)
        & (f["rectilinear"] >= p.printed_rectilinear)
        & (f["dark_max"] >= p.printed_dark)
        & (side >= p.printed_min_side * longest)
    )
    printed |= (
        (f["chroma_ratio"] <= p.line_chroma_ratio)
        & (f["dark_max"] >= p.printed_dark)
        & (f["log_elongation"] >= math.log(p.line_elongation))
        & (f["box_fill"] >= p.line_box_fill)
        & (f["texture"] >= p.line_texture)
    )
    round_grey_dark = (
        (f["chroma_ratio"] <= p.fixture_chroma_ratio)
        & (f["log_elongation"] <= math.log(p.fixture_elongation))
        & (f["dark_max"] >= p.fixture_dark)
        & (area >= p.fixture_min_area)
    )
    disc = f["fill"] >= p.fixture_fill * math.pi / 4
    ring = (f["fill"] >= p.ring_fill * math.pi / 4) & (f["centre"] <= p.ring_centre)
    fixture = round_grey_dark & (disc | ring)
    x1, y1, x2, y2 = boxes.unbind(dim=1)
    cx = (x1 + x2) / 2
    in_corner = ((cx <= p.text_side * w) | (cx >= (1 - p.text_side) * w)) & (
        (y2 <= p.text_band * h) | (y1 >= (1 - p.text_band) * h)
    )
    # Insects cut by the frame touch it; a camera's overlay keeps a margin.
    touches = (x1 <= 0) | (y1 <= 0) | (x2 >= w) | (y2 >= h)
    text = (
        in_corner
        & ~touches
        & ((y2 - y1) <= p.text_max_height * h)
        & ((f["row"] >= p.text_row) | (f["highlight"] >= p.text_highlight))
    )
    stain = (f["contrast"] <= p.stain_contrast) & (f["dark_max"] <= p.stain_dark)
    reason = torch.zeros(boxes.shape[0], dtype=torch.long, device=boxes.device)
    for code, mask in ((STAIN, stain), (TEXT, text), (FIXTURE, fixture), (PRINTED, printed)):
        reason = torch.where(mask, torch.full_like(reason, code), reason)
    return reason
