"""Synthetic hard negatives for the built-in detector, composited onto real trap sheets.

    .venv/bin/python benchmarks/synthetic_hard_negatives.py --split held-out --out DIR

The labelled shared photos are the base: their insects keep their labels, and onto empty sheet
around them go the things that other traps' photos show and these do not: dark round screws
and rivets with a bright centre near the frame, the camera's burnt-in timestamp in a corner,
stains, water marks and pale smudges, printed scale bars ("20 mm" bars with ticks, checkered
cards), plus insects that tempt part-boxes (a pale-winged moth with a dark body) and pairs of
real moths cut from the photos and pasted wing to wing, or a few pixels apart. Everything is
deterministic for a seed.

Physics of the compositing: things lying on the sheet change how much light it reflects, so
they multiply the photo (`image * reflectance`); a real insect is moved as its ratio to the sheet
behind it (`crop / sheet`), which carries its legs, pale wings and the sheet grain around it
without any mask; a burnt-in timestamp replaces pixels. The result is JPEG-compressed again like
a camera's output. The tune split and the held-out split use different base photos, different
seeds and, for the held-out split, extra variants (hex bolts, vertical and solid scale bars,
drips, other fonts and text layouts) that the tuning never saw.

With --out the images are written as JPEGs with one JSON label file each (same format as
tests/data/detector-labels, plus the list of placed negatives); without it, the module is used
in-process by benchmarks/eval_builtin_detector.py.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_scoring import (  # noqa: E402
    HELD_OUT_PHOTOS,
    TUNE_PHOTOS,
    Labels,
    load_labels,
)
from trapgui.ml.sheet_foreground import SheetParams, estimate_sheet, measure_foreground  # noqa: E402

SHARED = REPO.parent / "shared" / "trap-images"
SEEDS = {"tune": 1701, "held-out": 9203}
SUPERSAMPLE = 4
ANALYSIS_SIDE = 1024  # the free-sheet map and insect extents are found at this size


@dataclass
class Negative:
    kind: str  # "screw", "timestamp", "stain", "scale bar"
    style: str
    box: tuple[float, float, float, float]  # x1 y1 x2 y2, original pixels


@dataclass
class SyntheticImage:
    name: str
    image: np.ndarray  # uint8 (H, W, 3)
    labels: Labels
    negatives: list[Negative] = field(default_factory=list)
    pasted: list[tuple[str, tuple[float, float, float, float]]] = field(default_factory=list)


# --------------------------------------------------------------------------- the base photo


class Base:
    """A real labelled photo: pixels, sheet estimate and where the sheet is free."""

    def __init__(self, rel: str, labels: Labels):
        with Image.open(SHARED / rel) as im:
            self.rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        self.rel = rel
        self.labels = labels
        self.h, self.w = self.rgb.shape[:2]
        t = torch.from_numpy(self.rgb.copy()).permute(2, 0, 1)[None].float() / 255.0
        self.scale = ANALYSIS_SIDE / max(self.h, self.w)
        small = F.interpolate(
            t, size=(round(self.h * self.scale), round(self.w * self.scale)), mode="area"
        )
        params = SheetParams()
        fg = measure_foreground(small, params)
        self.score = fg.score[0, 0].numpy()
        self.sheet_small = estimate_sheet(small, params)[0].permute(1, 2, 0).numpy()
        points = np.concatenate([labels.insects, labels.unsure]).reshape(-1, 2)
        self.points = points
        # Free sheet: no foreground nearby (dilated) and away from the photo's border frame.
        busy = torch.from_numpy((self.score > 3.0).astype(np.float32))[None, None]
        busy = F.max_pool2d(busy, 9, stride=1, padding=4)[0, 0].numpy() > 0
        self.free = ~busy
        self.reserved: list[tuple[float, float, float, float]] = []

    def reserve(self, box) -> None:
        """Keep later items of the same composite off this one."""
        self.reserved.append(tuple(float(v) for v in box))

    def sheet(self, x0: int, y0: int, x1: int, y1: int) -> np.ndarray:
        """Sheet colour (h, w, 3) over a full-resolution window, from the smooth estimate."""
        s = self.scale
        sh, sw = self.sheet_small.shape[:2]
        ys = np.clip((np.arange(y0, y1) + 0.5) * s - 0.5, 0, sh - 1)
        xs = np.clip((np.arange(x0, x1) + 0.5) * s - 0.5, 0, sw - 1)
        y_lo = np.floor(ys).astype(int)
        x_lo = np.floor(xs).astype(int)
        y_hi = np.minimum(y_lo + 1, sh - 1)
        x_hi = np.minimum(x_lo + 1, sw - 1)
        fy = (ys - y_lo)[:, None, None]
        fx = (xs - x_lo)[None, :, None]
        a = self.sheet_small
        top = a[y_lo][:, x_lo] * (1 - fx) + a[y_lo][:, x_hi] * fx
        bottom = a[y_hi][:, x_lo] * (1 - fx) + a[y_hi][:, x_hi] * fx
        return (top * (1 - fy) + bottom * fy).astype(np.float32)

    def is_free(
        self, box: tuple[float, float, float, float], margin: float = 12, clean: bool = True
    ) -> bool:
        """No labelled point and nothing placed in the box; with `clean` also no foreground
        (a timestamp or a frame screw may sit on the dark, grainy rim of the photo)."""
        x1, y1, x2, y2 = box
        if x1 < 0 or y1 < 0 or x2 > self.w or y2 > self.h:
            return False
        x1, y1 = max(0.0, x1 - margin), max(0.0, y1 - margin)
        x2, y2 = min(float(self.w), x2 + margin), min(float(self.h), y2 + margin)
        s = self.scale
        region = self.free[int(y1 * s) : int(math.ceil(y2 * s)), int(x1 * s) : int(math.ceil(x2 * s))]
        if clean and (region.size == 0 or not region.all()):
            return False
        for rx1, ry1, rx2, ry2 in self.reserved:
            if x1 < rx2 and rx1 < x2 and y1 < ry2 and ry1 < y2:
                return False
        p = self.points
        inside = (p[:, 0] >= x1) & (p[:, 0] <= x2) & (p[:, 1] >= y1) & (p[:, 1] <= y2)
        return not bool(inside.any())

    def insect_crops(self) -> list[tuple[np.ndarray, np.ndarray, tuple[int, int, int, int]]]:
        """Isolated labelled insects as (ratio crop (h, w, 3), point in the crop, insect box in
        the crop): the insect's extent is its connected foreground region at the analysis size."""
        from scipy import ndimage

        mask = self.score > 3.0
        regions, _ = ndimage.label(mask, structure=np.ones((3, 3)))
        out = []
        s = self.scale
        for px, py in self.labels.insects:
            sx, sy = int(px * s), int(py * s)
            window = regions[max(0, sy - 2) : sy + 3, max(0, sx - 2) : sx + 3]
            ids = window[window > 0]
            if ids.size == 0:
                continue
            ys, xs = np.nonzero(regions == np.bincount(ids).argmax())
            bx1, by1 = xs.min() / s, ys.min() / s
            bx2, by2 = (xs.max() + 1) / s, (ys.max() + 1) / s
            extent = max(bx2 - bx1, by2 - by1)
            if not 40 <= extent <= 420:
                continue
            pad = 0.25 * extent + 10
            x0, y0 = int(bx1 - pad), int(by1 - pad)
            x1, y1 = int(math.ceil(bx2 + pad)), int(math.ceil(by2 + pad))
            if x0 < 0 or y0 < 0 or x1 > self.w or y1 > self.h:
                continue
            p = self.points
            inside = (p[:, 0] >= x0) & (p[:, 0] <= x1) & (p[:, 1] >= y0) & (p[:, 1] <= y1)
            if int(inside.sum()) != 1:  # another insect or speck in the rectangle
                continue
            crop = self.rgb[y0:y1, x0:x1].astype(np.float32) / 255.0
            ratio = crop / np.maximum(self.sheet(x0, y0, x1, y1), 0.03)
            box = (int(bx1 - x0), int(by1 - y0), int(bx2 - x0), int(by2 - y0))
            out.append((ratio, np.array([px - x0, py - y0]), box))
        return out


# ----------------------------------------------------------------------- drawing primitives


def _supersampled(w: int, h: int, draw_fn) -> np.ndarray:
    """A float mask (h, w) in [0, 1] drawn by `draw_fn(ImageDraw, scale)` at 4x and reduced."""
    k = SUPERSAMPLE
    im = Image.new("L", (w * k, h * k), 0)
    draw_fn(ImageDraw.Draw(im), k)
    return np.asarray(im.resize((w, h), Image.BOX), dtype=np.float32) / 255.0


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    from scipy import ndimage

    if sigma <= 0:
        return a
    return ndimage.gaussian_filter(a, sigma=(sigma, sigma) + (0,) * (a.ndim - 2))


def _font_factory(held_out: bool, rng: np.random.Generator):
    """size -> font. Pillow's bundled font (the same on every machine); the held-out split
    also uses DejaVu Sans Mono where the system has it."""
    path = "/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf"
    if held_out and Path(path).exists() and rng.random() < 0.6:
        return lambda size: ImageFont.truetype(path, size)
    return lambda size: ImageFont.load_default(size=size)


class Canvas:
    """The float image being composited, with helpers that act on a window of it."""

    def __init__(self, base: Base):
        self.base = base
        self.img = base.rgb.astype(np.float32) / 255.0

    def multiply(self, x0: int, y0: int, reflectance: np.ndarray, alpha: np.ndarray) -> None:
        h, w = alpha.shape
        region = self.img[y0 : y0 + h, x0 : x0 + w]
        a = alpha[..., None]
        region *= 1.0 - a + a * reflectance

    def overlay(self, x0: int, y0: int, colour: np.ndarray, alpha: np.ndarray) -> None:
        h, w = alpha.shape
        region = self.img[y0 : y0 + h, x0 : x0 + w]
        a = alpha[..., None]
        region[:] = region * (1.0 - a) + a * colour

    def to_uint8(self, quality: int) -> np.ndarray:
        arr = np.clip(self.img * 255.0 + 0.5, 0, 255).astype(np.uint8)
        buffer = BytesIO()
        Image.fromarray(arr).save(buffer, format="JPEG", quality=quality)
        buffer.seek(0)
        return np.asarray(Image.open(buffer).convert("RGB"), dtype=np.uint8)


def _place(base: Base, rng: np.random.Generator, w: int, h: int, zone=None, tries: int = 400):
    """A free top-left corner for a w x h item (zone: (x1, y1, x2, y2) allowed for its box)."""
    zx1, zy1, zx2, zy2 = zone or (0, 0, base.w, base.h)
    for _ in range(tries):
        if zx2 - zx1 - w <= 0 or zy2 - zy1 - h <= 0:
            return None
        x = int(rng.uniform(zx1, zx2 - w))
        y = int(rng.uniform(zy1, zy2 - h))
        if base.is_free((x, y, x + w, y + h)):
            base.reserve((x, y, x + w, y + h))
            return x, y
    return None


# ------------------------------------------------------------------------------- the items


def add_screws(canvas: Canvas, rng: np.random.Generator, held_out: bool) -> list[Negative]:
    """A row of 2-4 identical fixtures along one edge of the frame (they do not move)."""
    base = canvas.base
    styles = ["dome", "phillips", "washer"] + (["hex", "ring"] if held_out else [])
    style = styles[rng.integers(len(styles))]
    r = float(rng.uniform(7, 24))
    n = int(rng.integers(2, 5))
    edge = rng.integers(4)
    inset = float(rng.uniform(0.012, 0.06)) * max(base.w, base.h)
    grey = float(rng.uniform(0.12, 0.45))
    tint = 1.0 + rng.uniform(-0.04, 0.04, size=3)
    out = []
    along = base.w if edge in (0, 2) else base.h
    for i in range(n):
        t = (i + 0.5 + rng.uniform(-0.15, 0.15)) / n * along
        if edge == 0:
            cx, cy = t, inset
        elif edge == 2:
            cx, cy = t, base.h - inset
        elif edge == 1:
            cx, cy = inset, t
        else:
            cx, cy = base.w - inset, t
        side = int(2 * r + 12)
        x0, y0 = int(cx - side / 2), int(cy - side / 2)
        box = (x0 + 6, y0 + 6, x0 + side - 6, y0 + side - 6)
        if not base.is_free(box, margin=4):
            continue
        base.reserve(box)
        out.append(Negative("screw", style, box))
        _draw_screw(canvas, x0, y0, side, r, style, grey, tint, rng)
    return out


def _draw_screw(canvas, x0, y0, side, r, style, grey, tint, rng) -> None:
    c = side / 2
    yy, xx = np.mgrid[0:side, 0:side].astype(np.float32) + 0.5
    d = np.hypot(xx - c, yy - c) / r
    # Drop shadow first (the fixture stands proud of the sheet).
    shadow = _supersampled(side, side, lambda dr, k: dr.ellipse(
        [(c - r + 2) * k, (c - r + 2) * k, (c + r + 2) * k, (c + r + 2) * k], fill=255))
    canvas.multiply(x0, y0, np.full(3, 0.75, np.float32), _blur(shadow, 1.5) * 0.6)
    if style == "hex":
        pts = [(c + r * math.cos(a), c + r * math.sin(a)) for a in np.arange(6) * math.pi / 3 + 0.3]
        disc = _supersampled(side, side, lambda dr, k: dr.polygon([(x * k, y * k) for x, y in pts], fill=255))
    else:
        disc = _supersampled(side, side, lambda dr, k: dr.ellipse(
            [(c - r) * k, (c - r) * k, (c + r) * k, (c + r) * k], fill=255))
    # Metal: darker towards the rim, a lighter dome in the middle.
    shade = grey * (1.15 - 0.45 * np.clip(d, 0, 1) ** 2)
    reflectance = np.clip(shade[..., None] * tint, 0.02, 1.0).astype(np.float32)
    alpha = disc
    if style in ("washer", "ring"):
        inner = 0.45 if style == "washer" else 0.3
        hole = _supersampled(side, side, lambda dr, k: dr.ellipse(
            [(c - inner * r) * k, (c - inner * r) * k, (c + inner * r) * k, (c + inner * r) * k], fill=255))
        alpha = np.clip(disc - hole, 0, 1)
    canvas.multiply(x0, y0, reflectance, alpha)
    if style == "phillips":
        w = max(1.0, 0.12 * r)
        slot = _supersampled(side, side, lambda dr, k: (
            dr.rectangle([(c - 0.6 * r) * k, (c - w) * k, (c + 0.6 * r) * k, (c + w) * k], fill=255),
            dr.rectangle([(c - w) * k, (c - 0.6 * r) * k, (c + w) * k, (c + 0.6 * r) * k], fill=255)))
        canvas.multiply(x0, y0, np.full(3, 0.35, np.float32), slot)
    # Specular highlight: a bright spot brighter than the sheet (or the sheet seen in the hole).
    if style in ("dome", "phillips", "hex", "ring"):
        hx, hy = c - 0.25 * r + rng.uniform(-1, 1), c - 0.3 * r + rng.uniform(-1, 1)
        hr = max(1.2, 0.22 * r)
        spot = _supersampled(side, side, lambda dr, k: dr.ellipse(
            [(hx - hr) * k, (hy - hr) * k, (hx + hr) * k, (hy + hr) * k], fill=255))
        canvas.overlay(x0, y0, np.full(3, 0.97, np.float32), _blur(spot, 0.8) * 0.9)


def add_timestamp(canvas: Canvas, rng: np.random.Generator, held_out: bool) -> list[Negative]:
    base = canvas.base
    size = int(rng.uniform(18, 64))
    make_font = _font_factory(held_out, rng)
    day, hour = int(rng.integers(1, 28)), int(rng.integers(0, 24))
    minute, second = int(rng.integers(60)), int(rng.integers(60))
    formats = [
        f"2023-06-{day:02d} {hour:02d}:{minute:02d}:{second:02d}",
        f"2022-07-{day:02d}\n{hour:02d}:{minute:02d}:{second:02d}-00",
        f"{day:02d}/08/2023  {hour:02d}:{minute:02d}",
    ]
    if held_out:
        formats += [
            f"CAM02 {hour:02d}:{minute:02d}:{second:02d} 2024/05/{day:02d}",
            f"{day:02d}.09.2022 {hour:02d}:{minute:02d} 21C",
        ]
    text = formats[rng.integers(len(formats))]
    styles = ["white_outline", "yellow", "black", "white_on_black"] + (["grey"] if held_out else [])
    style = styles[rng.integers(len(styles))]
    stroke = max(1, size // 14) if style in ("white_outline", "yellow") else 0
    probe = ImageDraw.Draw(Image.new("L", (8, 8)))
    bx1, by1, bx2, by2 = probe.multiline_textbbox((0, 0), text, font=make_font(size), stroke_width=stroke)
    tw, th = int(bx2 - bx1) + 2 * stroke + 8, int(by2 - by1) + 2 * stroke + 8
    margin = int(rng.uniform(4, 40))
    corner = rng.integers(4)
    x0 = margin if corner in (0, 2) else base.w - margin - tw
    y0 = margin if corner in (0, 1) else base.h - margin - th
    box = (x0, y0, x0 + tw, y0 + th)
    if not base.is_free(box, margin=60, clean=False):
        return []
    base.reserve(box)

    def glyph_mask(with_stroke: bool) -> np.ndarray:
        def draw(dr, k):
            dr.multiline_text(
                ((4 + stroke - bx1) * k, (4 + stroke - by1) * k), text, font=make_font(size * k),
                fill=255, stroke_width=(stroke * k if with_stroke else 0), stroke_fill=255)
        return _supersampled(tw, th, draw)

    if style in ("white_outline", "yellow"):
        colour = np.array([0.98, 0.98, 0.98] if style == "white_outline" else [1.0, 0.85, 0.1], np.float32)
        canvas.overlay(x0, y0, np.zeros(3, np.float32), glyph_mask(True))
        canvas.overlay(x0, y0, colour, glyph_mask(False))
    elif style == "black":
        canvas.overlay(x0, y0, np.full(3, 0.05, np.float32), glyph_mask(False))
    elif style == "grey":
        canvas.overlay(x0, y0, np.full(3, 0.3, np.float32), glyph_mask(False) * 0.8)
    else:  # white on a black strip
        canvas.overlay(x0, y0, np.zeros(3, np.float32), np.ones((th, tw), np.float32))
        canvas.overlay(x0, y0, np.full(3, 0.95, np.float32), glyph_mask(False))
    return [Negative("timestamp", style, box)]


def add_stain(canvas: Canvas, rng: np.random.Generator, held_out: bool) -> list[Negative]:
    base = canvas.base
    styles = ["blob", "tide", "smudge"] + (["drip"] if held_out else [])
    style = styles[rng.integers(len(styles))]
    size = int(rng.uniform(50, 380))
    if style == "drip":
        w, h = int(size * rng.uniform(0.12, 0.25)), size
    elif style == "smudge":
        w, h = size, int(size * rng.uniform(0.3, 0.7))
    else:
        w, h = size, int(size * rng.uniform(0.6, 1.0))
    pad = 20
    spot = _place(base, rng, w + 2 * pad, h + 2 * pad)
    if spot is None:
        return []
    x0, y0 = spot
    W, H = w + 2 * pad, h + 2 * pad
    yy, xx = np.mgrid[0:H, 0:W].astype(np.float32)
    # A random smooth outline: an ellipse whose radius wobbles with a few harmonics.
    ang = np.arctan2((yy - H / 2) / (h / 2), (xx - W / 2) / (w / 2))
    rad = np.hypot((xx - W / 2) / (w / 2), (yy - H / 2) / (h / 2))
    wobble = np.ones_like(ang)
    for harmonic in range(2, 6):
        wobble += rng.uniform(-0.12, 0.12) * np.cos(harmonic * ang + rng.uniform(0, 2 * math.pi))
    inside = rad / wobble
    tint = np.array([1.0, rng.uniform(0.93, 1.0), rng.uniform(0.78, 0.98)], np.float32)
    if rng.random() < 0.35:
        tint = np.ones(3, np.float32)
    if style == "blob":
        depth = rng.uniform(0.03, 0.14)
        alpha = _blur((inside <= 1).astype(np.float32), rng.uniform(2, 10))
        reflectance = (1 - depth) * tint
    elif style == "tide":
        depth = rng.uniform(0.08, 0.25)
        width = rng.uniform(0.03, 0.08)
        alpha = _blur((np.abs(inside - 0.95) < width).astype(np.float32), 1.2)
        fill = _blur((inside <= 1).astype(np.float32), 3) * 0.3
        alpha = np.clip(alpha + fill, 0, 1)
        reflectance = (1 - depth) * tint
    elif style == "smudge":
        depth = rng.uniform(0.04, 0.12)
        alpha = np.clip(1.2 - inside, 0, 1) ** 1.5
        alpha = _blur(alpha, rng.uniform(6, 14))
        reflectance = (1 - depth) * tint
    else:  # drip: a vertical streak darkest at the bottom
        depth = rng.uniform(0.05, 0.16)
        alpha = _blur((inside <= 1).astype(np.float32), 3) * np.clip(yy / H + 0.3, 0, 1)
        reflectance = (1 - depth) * tint
    canvas.multiply(x0, y0, np.asarray(reflectance, np.float32), alpha.astype(np.float32))
    return [Negative("stain", style, (x0 + pad, y0 + pad, x0 + pad + w, y0 + pad + h))]


def add_scale_bar(canvas: Canvas, rng: np.random.Generator, held_out: bool) -> list[Negative]:
    base = canvas.base
    styles = ["ruler", "checker"] + (["solid"] if held_out else [])
    style = styles[rng.integers(len(styles))]
    length = int(rng.uniform(180, 640))
    vertical = held_out and rng.random() < 0.35
    font_size = max(12, int(length * rng.uniform(0.06, 0.1)))
    label = ["20 mm", "10 mm", "2 cm", "1 cm"][rng.integers(4 if held_out else 2)]
    if style == "ruler":
        w, h = length + 20, int(font_size * 1.6 + length * 0.09)
    elif style == "checker":
        w, h = int(length * 1.12), int(length * 0.36)
    else:
        w, h = length + 20, int(font_size * 1.5 + length * 0.06)
    W, H = (h, w) if vertical else (w, h)
    spot = _place(base, rng, W, H)
    if spot is None:
        return []
    x0, y0 = spot
    font = _font_factory(held_out, rng)(font_size * SUPERSAMPLE)
    # Printed ink is nearly but not exactly grey under a trap's lamp.
    ink = (0.06 * (1.0 + rng.uniform(-0.25, 0.25, size=3))).astype(np.float32)

    def ruler(dr, k):
        t = max(2, int(length * 0.012))
        yb = h - 6
        dr.rectangle([10 * k, (yb - t) * k, (10 + length) * k, yb * k], fill=255)
        for i in range(21):
            tick = length * 0.08 if i % 5 == 0 else length * 0.04
            x = 10 + i * length / 20
            dr.rectangle([(x - t / 2) * k, (yb - t - tick) * k, (x + t / 2) * k, yb * k], fill=255)
        dr.text(((w / 2 - font_size * 1.3) * k, 2 * k), label, font=font, fill=255)

    def checker(dr, k):
        sq = length / 11
        top = h * 0.25
        for i in range(10):
            for row in range(2):
                if (i + row) % 2 == 0:
                    x = w * 0.06 + sq * 0.5 + i * sq
                    y = top + row * sq * 0.55
                    dr.rectangle([x * k, y * k, (x + sq * 0.8) * k, (y + sq * 0.5) * k], fill=255)
        dr.text(((w / 2 - font_size * 1.3) * k, (top + sq * 1.3) * k), label, font=font, fill=255)

    def solid(dr, k):
        t = max(4, int(length * 0.04))
        dr.rectangle([10 * k, (h - t - 4) * k, (10 + length / 2) * k, (h - 4) * k], fill=255)
        dr.rectangle([(10 + length / 2) * k, (h - t - 4) * k, (10 + length) * k, (h - 4) * k], outline=255, width=max(1, t // 4) * k)
        dr.text(((w / 2 - font_size * 1.3) * k, 2 * k), label, font=font, fill=255)

    mask = _supersampled(w, h, {"ruler": ruler, "checker": checker, "solid": solid}[style])
    if style == "checker":
        # The printed card: a slightly grey rectangle with a thin border, and grey end blocks.
        card = np.zeros((h, w), np.float32)
        card[2:-2, 2:-2] = 1.0
        border = np.zeros((h, w), np.float32)
        border[2:-2, 2:-2] = 1.0
        border[4:-4, 4:-4] = 0.0
        ends = np.zeros((h, w), np.float32)
        bw = int(w * 0.05)
        ends[int(h * 0.2) : int(h * 0.7), 6 : 6 + bw] = 1.0
        ends[int(h * 0.2) : int(h * 0.7), w - 6 - bw : w - 6] = 1.0
        layers = [(card, 0.97), (border, 0.6), (ends, 0.45)]
    else:
        layers = []
    if vertical:
        mask = np.ascontiguousarray(np.rot90(mask))
        layers = [(np.ascontiguousarray(np.rot90(a)), v) for a, v in layers]
    for a, v in layers:
        canvas.multiply(x0, y0, np.full(3, v, np.float32), a)
    canvas.multiply(x0, y0, ink, mask)
    return [Negative("scale bar", style, (x0, y0, x0 + W, y0 + H))]


def add_pale_winged_moth(canvas: Canvas, rng: np.random.Generator) -> tuple[np.ndarray, tuple] | None:
    """A moth whose pale wings barely differ from the sheet around a dark body: the detector
    must box the whole insect once, not a wing or the body as a second insect."""
    base = canvas.base
    body_len = float(rng.uniform(30, 90))
    span = body_len * rng.uniform(1.4, 2.2)
    side = int(span * 1.2 + 20)
    spot = _place(base, rng, side, side)
    if spot is None:
        return None
    x0, y0 = spot
    c = side / 2
    angle = float(rng.uniform(0, 180))
    wing_tone = float(rng.uniform(0.72, 0.9))
    body_tone = float(rng.uniform(0.25, 0.5))
    tint = np.array([1.0, rng.uniform(0.9, 0.98), rng.uniform(0.75, 0.9)], np.float32)

    def wings(dr, k):
        for sign in (-1, 1):
            pts = [(c, c - body_len * 0.35), (c + sign * span / 2, c + body_len * 0.1),
                   (c + sign * span * 0.3, c + body_len * 0.45), (c, c + body_len * 0.2)]
            dr.polygon([(x * k, y * k) for x, y in pts], fill=255)

    def body(dr, k):
        bw = body_len * 0.16
        dr.ellipse([(c - bw) * k, (c - body_len / 2) * k, (c + bw) * k, (c + body_len / 2) * k], fill=255)

    wing_mask = np.asarray(Image.fromarray((_supersampled(side, side, wings) * 255).astype(np.uint8)).rotate(angle, resample=Image.BILINEAR), np.float32) / 255
    body_mask = np.asarray(Image.fromarray((_supersampled(side, side, body) * 255).astype(np.uint8)).rotate(angle, resample=Image.BILINEAR), np.float32) / 255
    texture = 1.0 + 0.05 * _blur(rng.standard_normal((side, side)).astype(np.float32), 1.5) * 3
    canvas.multiply(x0, y0, (wing_tone * tint)[None, None, :] * texture[..., None], wing_mask)
    canvas.multiply(x0, y0, np.full(3, body_tone, np.float32) * tint, body_mask)
    ys, xs = np.nonzero(wing_mask + body_mask > 0.3)
    box = (x0 + xs.min(), y0 + ys.min(), x0 + xs.max() + 1, y0 + ys.max() + 1)
    return np.array([x0 + c, y0 + c]), box


def paste_insect(canvas: Canvas, crop, x0: int, y0: int) -> tuple[np.ndarray, tuple]:
    ratio, point, (bx1, by1, bx2, by2) = crop
    h, w = ratio.shape[:2]
    # Feather the rectangle's edge: the ratio is ~1 on sheet, so the seam vanishes.
    xs = np.minimum(np.arange(w) + 1.0, w - np.arange(w))[None, :]
    ys = np.minimum(np.arange(h) + 1.0, h - np.arange(h))[:, None]
    alpha = np.clip(np.minimum(xs, ys) / 6.0, 0, 1).astype(np.float32)
    canvas.multiply(x0, y0, ratio, alpha)
    return point + (x0, y0), (x0 + bx1, y0 + by1, x0 + bx2, y0 + by2)


def add_touching_pair(canvas: Canvas, rng: np.random.Generator, crops,
                      apart: bool = False) -> list[tuple[np.ndarray, tuple]]:
    """Two real moths wing to wing: one box each is right, one box for both is a merge.
    `apart`: a few pixels of sheet between their foreground instead (a leg, an antenna or the
    blur around a dark moth joins them, as on a crowded sheet)."""
    base = canvas.base
    if len(crops) < 2:
        return []
    i, j = rng.choice(len(crops), size=2, replace=False)
    a, b = crops[i], crops[j]
    (ha, wa), (hb, wb) = a[0].shape[:2], b[0].shape[:2]
    # Horizontal neighbours: b's insect starts where a's ends, minus a small overlap (apart:
    # plus a small gap).
    a_box, b_box = a[2], b[2]
    if apart:
        overlap = -rng.uniform(2.0, 10.0)
    else:
        overlap = rng.uniform(0.0, 0.12) * (a_box[2] - a_box[0])
    dx = int(a_box[2] - overlap - b_box[0])
    dy = int((a_box[1] + a_box[3]) / 2 - (b_box[1] + b_box[3]) / 2 + rng.uniform(-0.2, 0.2) * (a_box[3] - a_box[1]))
    x_min, y_min = min(0, dx), min(0, dy)
    W = max(wa, dx + wb) - x_min
    H = max(ha, dy + hb) - y_min
    spot = _place(base, rng, W, H)
    if spot is None:
        return []
    x0, y0 = spot
    out = [paste_insect(canvas, a, x0 - x_min, y0 - y_min)]
    out.append(paste_insect(canvas, b, x0 - x_min + dx, y0 - y_min + dy))
    return out


# -------------------------------------------------------------------------------- the set


def generate(split: str, variants: int = 2, seed: int | None = None) -> list[SyntheticImage]:
    """The synthetic set of a split: `variants` composites per base photo of that split."""
    held_out = split == "held-out"
    photos = HELD_OUT_PHOTOS if held_out else TUNE_PHOTOS
    seed = SEEDS[split] if seed is None else seed
    rng = np.random.default_rng(seed)
    # Items added later draw from their own stream, so the earlier items stay as they were.
    later_rng = np.random.default_rng(seed + 1)
    labels = load_labels()
    bases = [Base(rel, labels[rel]) for rel in photos]
    crops = [c for b in bases for c in b.insect_crops()]
    out = []
    for base in bases:
        for v in range(variants):
            canvas = Canvas(base)
            base.reserved = []
            negatives: list[Negative] = []
            negatives += add_screws(canvas, rng, held_out)
            negatives += add_timestamp(canvas, rng, held_out)
            for _ in range(2):
                negatives += add_stain(canvas, rng, held_out)
            negatives += add_scale_bar(canvas, rng, held_out)
            # Keep later items off what is already there.
            insects = [p for p in base.labels.insects]
            sizes = list(base.labels.sizes)
            pasted = []
            moth = add_pale_winged_moth(canvas, rng)
            if moth is not None:
                insects.append(moth[0])
                sizes.append(max(moth[1][2] - moth[1][0], moth[1][3] - moth[1][1]))
                pasted.append(("pale-winged moth", moth[1]))
            for point, box in add_touching_pair(canvas, rng, crops):
                insects.append(point)
                sizes.append(max(box[2] - box[0], box[3] - box[1]))
                pasted.append(("touching moths", box))
            for _ in range(2):
                for point, box in add_touching_pair(canvas, later_rng, crops, apart=True):
                    insects.append(point)
                    sizes.append(max(box[2] - box[0], box[3] - box[1]))
                    pasted.append(("moths a leg apart", box))
            stem = Path(base.rel).stem
            name = f"synthetic-{split}/{Path(base.rel).parent.name}-{stem}-v{v}"
            quality = int(rng.integers(82, 95))
            image = canvas.to_uint8(quality)
            out.append(SyntheticImage(
                name=name,
                image=image,
                labels=Labels(name, base.w, base.h, True,
                              np.asarray(insects, np.float64).reshape(-1, 2),
                              base.labels.unsure.copy(), np.asarray(sizes, np.float64)),
                negatives=negatives,
                pasted=pasted,
            ))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out"), default="held-out")
    parser.add_argument("--variants", type=int, default=2)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "synthetic")
    args = parser.parse_args()
    images = generate(args.split, args.variants)
    for item in images:
        path = args.out / f"{item.name}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(item.image).save(path, quality=95)
        doc = {
            "image": item.name, "width": item.labels.width, "height": item.labels.height,
            "sheet": True, "insects": item.labels.insects.round(1).tolist(),
            "unsure": item.labels.unsure.round(1).tolist(),
            "negatives": [{"kind": n.kind, "style": n.style, "box": list(map(float, n.box))} for n in item.negatives],
            "pasted": [{"kind": k, "box": list(map(float, b))} for k, b in item.pasted],
        }
        path.with_suffix(".json").write_text(json.dumps(doc, indent=1))
        kinds = ", ".join(f"{n.kind} ({n.style})" for n in item.negatives)
        print(f"{item.name}: {len(item.labels.insects)} insects; {kinds}")
    print(f"{len(images)} images in {args.out}")


if __name__ == "__main__":
    main()
