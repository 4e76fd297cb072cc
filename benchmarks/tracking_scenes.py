"""Synthetic trap nights with known identities, made from real insect crops.

Insects are cut from the shared trap photos with the built-in detector (box -> reflectance
relative to the sheet around it + a soft mask), then pasted, rotated, onto a clean synthetic
sheet. Each simulated night is a sequence of frames minutes apart in which, as on a real
sheet, most insects sit still (a pixel of jitter, now and then a small shift or turn), some
walk, some leave for good, some leave and come back later (mostly near where they sat),
neighbours swap places, one insect leaves and another lands on the same spot, look-alikes
(the same crop turned) share the sheet, one moth rests all night, and fixtures (screws, a
stain, a printed label, a scale bar) sit at the same place in every frame of every night.
A simulated detector returns padded, jittered boxes of what is visible, misses a few.
The held-out sequential/ frames are never used as crop sources.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

SOURCE_FOLDERS = ("panama", "vermont")  # sequential/ is held out; DSLR/ has no sheet


@dataclass
class Sprite:
    refl: np.ndarray  # (h, w, 3) reflectance relative to the sheet (1 = sheet)
    alpha: np.ndarray  # (h, w) in [0, 1]
    name: str

    @property
    def size(self) -> float:
        ys, xs = np.nonzero(self.alpha > 0.25)
        if len(xs) == 0:
            return 1.0
        return math.sqrt((xs.max() - xs.min() + 1) * (ys.max() - ys.min() + 1))


def load_rgb(path: Path, max_side: int | None) -> np.ndarray:
    with Image.open(path) as im:
        im = im.convert("RGB")
        if max_side and max(im.size) > max_side:
            f = max_side / max(im.size)
            im = im.resize((round(im.width * f), round(im.height * f)), Image.LANCZOS)
        return np.asarray(im, dtype=np.float32) / 255.0


def sprite_from_crop(crop: np.ndarray, name: str) -> Sprite | None:
    h, w, _ = crop.shape
    if h < 6 or w < 6:
        return None
    ring = np.concatenate([crop[:2].reshape(-1, 3), crop[-2:].reshape(-1, 3),
                           crop[:, :2].reshape(-1, 3), crop[:, -2:].reshape(-1, 3)])
    sheet = np.maximum(np.median(ring, axis=0), 0.05)
    refl = np.clip(crop / sheet, 0.0, 1.3)
    alpha = np.clip((np.abs(1.0 - refl).mean(axis=2) - 0.04) / 0.12, 0.0, 1.0)
    alpha = ndimage.uniform_filter(alpha, 3)
    taper = np.ones((h, w), dtype=np.float32)
    taper[:2], taper[-2:], taper[:, :2], taper[:, -2:] = 0, 0, 0, 0
    alpha = (alpha * ndimage.uniform_filter(taper, 3)).astype(np.float32)
    if (alpha > 0.5).sum() < 30:
        return None
    return Sprite(refl.astype(np.float32), alpha, name)


def harvest_sprites(image_dir: Path, max_side: int | None, device: str = "cpu") -> list[Sprite]:
    """Insect sprites from the shared photos (not sequential/): every kept box of the
    built-in detector that touches no other box and no image edge."""
    from trapgui.ml.builtin_detector import BuiltinDetector

    detector = BuiltinDetector(device=device)
    sprites = []
    for folder in SOURCE_FOLDERS:
        for path in sorted((image_dir / folder).glob("*.jpg")):
            rgb = load_rgb(path, max_side)
            out = detector.detect([torch.from_numpy(rgb).permute(2, 0, 1).contiguous()])[0]
            keep = out.scores >= detector.score_threshold
            boxes = out.boxes[keep].numpy()
            h, w, _ = rgb.shape
            for i, (x1, y1, x2, y2) in enumerate(boxes):
                others = np.delete(boxes, i, axis=0)
                touching = ((others[:, 0] < x2) & (others[:, 2] > x1) & (others[:, 1] < y2)
                            & (others[:, 3] > y1)).any() if len(others) else False
                if touching or x1 < 2 or y1 < 2 or x2 > w - 2 or y2 > h - 2:
                    continue
                crop = rgb[int(y1):int(math.ceil(y2)), int(x1):int(math.ceil(x2))]
                sprite = sprite_from_crop(crop, f"{folder}/{path.name}#{i}")
                if sprite is not None:
                    sprites.append(sprite)
    return sprites


# ---- fixtures ---------------------------------------------------------------------------------

def fixture_sprites(scale: float, rng: np.random.Generator) -> list[Sprite]:
    """A screw, a rivet, a stain, a printed label, a scale bar; ``scale`` = scene width / 2048."""
    out = []
    for name, radius in (("screw", 12), ("rivet", 8)):
        r = max(3, round(radius * scale))
        yy, xx = np.mgrid[-r - 2:r + 3, -r - 2:r + 3].astype(np.float32)
        d = np.hypot(xx, yy)
        alpha = np.clip(r + 0.5 - d, 0, 1)
        refl = np.full(d.shape + (3,), 0.35, np.float32)
        refl[(np.hypot(xx + r * 0.3, yy + r * 0.3) < r * 0.3)] = 1.1  # highlight
        if name == "screw":
            refl[np.abs(yy) < max(1, r * 0.12)] = 0.15  # slot
        out.append(Sprite(refl, alpha.astype(np.float32), name))
    s = max(12, round(40 * scale))
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    blob = np.zeros((s, s), np.float32)
    for _ in range(5):
        cx, cy, sd = rng.uniform(0.3 * s, 0.7 * s), rng.uniform(0.3 * s, 0.7 * s), rng.uniform(0.08, 0.18) * s
        blob += np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * sd ** 2))
    alpha = np.clip(blob * 1.2, 0, 0.8)
    out.append(Sprite(np.broadcast_to(np.array([0.78, 0.68, 0.52], np.float32), (s, s, 3)).copy(),
                      alpha.astype(np.float32), "stain"))
    lw, lh = max(20, round(90 * scale)), max(9, round(34 * scale))
    refl = np.broadcast_to(np.array([0.97, 0.93, 0.72], np.float32), (lh, lw, 3)).copy()
    for row in range(2, lh - 2, max(3, lh // 4)):
        for col in range(3, lw - 3, 4):
            if rng.random() < 0.7:
                refl[row:row + max(1, lh // 8), col:col + 2] = 0.25  # "text"
    out.append(Sprite(refl, np.ones((lh, lw), np.float32), "label"))
    bw, bh = max(30, round(150 * scale)), max(4, round(10 * scale))
    refl = np.ones((bh, bw, 3), np.float32)
    seg = max(3, bw // 10)
    for k in range(0, bw, 2 * seg):
        refl[:, k:k + seg] = 0.1
    refl[:1], refl[-1:] = 0.1, 0.1
    out.append(Sprite(refl, np.ones((bh, bw), np.float32), "scale bar"))
    return out


def rotated(sprite: Sprite, angle_deg: float, zoom: float = 1.0) -> Sprite:
    refl, alpha = sprite.refl, sprite.alpha
    if abs(zoom - 1.0) > 0.005:
        refl = ndimage.zoom(refl, (zoom, zoom, 1), order=1, mode="nearest")
        alpha = ndimage.zoom(alpha, zoom, order=1, mode="constant", cval=0.0)
    if abs(angle_deg) >= 0.5:
        refl = np.stack([ndimage.rotate(refl[..., c], angle_deg, reshape=True, order=1,
                                        mode="constant", cval=1.0) for c in range(3)], axis=2)
        alpha = ndimage.rotate(alpha, angle_deg, reshape=True, order=1, mode="constant", cval=0.0)
    return Sprite(refl.astype(np.float32), np.clip(alpha, 0, 1).astype(np.float32), sprite.name)


# ---- one frame ---------------------------------------------------------------------------------

@dataclass
class Placed:
    object_id: str  # "n1-i7" (insect 7 of night 1) or "fix-stain"
    sprite: int  # index into the sprite list (fixtures after insects)
    x: float  # centre, pixels
    y: float
    angle: float
    species: str | None  # None for fixtures
    zoom: float = 1.0  # posture / focus: the insect looks a little larger or smaller
    gain: float = 1.0  # contrast against the sheet (wing angle to the lamp)


@dataclass
class Frame:
    captured: dt.datetime
    placed: list[Placed] = field(default_factory=list)


def base_sheet(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    ys = np.linspace(-1, 1, height, dtype=np.float32)[:, None]
    xs = np.linspace(-1, 1, width, dtype=np.float32)[None, :]
    light = 0.93 - 0.10 * (xs + 1) / 2 - 0.05 * (ys + 1) / 2 - 0.08 * (xs ** 2 + ys ** 2) / 2
    texture = ndimage.gaussian_filter(rng.normal(0, 1, (height, width)).astype(np.float32), (0.6, 6))
    sheet = light * (1 + 0.015 * texture)
    tint = np.array([0.97, 0.97, 1.0], np.float32)
    return (sheet[..., None] * tint).astype(np.float32)


def render(sheet: np.ndarray, frame: Frame, sprites: list[Sprite], rng: np.random.Generator,
           cache: dict) -> tuple[np.ndarray, list[tuple[Placed, tuple[float, float, float, float]]]]:
    """The frame's pixels and each placed object's tight box (alpha > 0.25)."""
    img = sheet * rng.uniform(0.96, 1.04)  # exposure
    img = img + rng.normal(0, 0.01, img.shape).astype(np.float32)
    h, w, _ = img.shape
    boxes = []
    for obj in frame.placed:
        key = (obj.sprite, round(obj.angle) % 360, round(obj.zoom, 2))
        if key not in cache:
            cache[key] = rotated(sprites[obj.sprite], key[1], key[2])
        sp = cache[key]
        sh, sw = sp.alpha.shape
        x0, y0 = int(round(obj.x - sw / 2)), int(round(obj.y - sh / 2))
        xa, ya, xb, yb = max(0, x0), max(0, y0), min(w, x0 + sw), min(h, y0 + sh)
        if xb <= xa or yb <= ya:
            continue
        a = sp.alpha[ya - y0:yb - y0, xa - x0:xb - x0, None]
        r = 1.0 - (1.0 - sp.refl[ya - y0:yb - y0, xa - x0:xb - x0]) * obj.gain
        img[ya:yb, xa:xb] *= (1 - a) + a * r
        ys, xs = np.nonzero(a[..., 0] > 0.25)
        if len(xs):
            boxes.append((obj, (xa + xs.min(), ya + ys.min(), xa + xs.max() + 1.0, ya + ys.max() + 1.0)))
    return np.clip(img, 0, 1), boxes
