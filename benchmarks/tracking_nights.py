"""Simulated nights of one trap (behaviour, simulated detector, embeddings) -> tracker input
with the true identity of every detection. Rendering and sprites: ``tracking_scenes``."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field

import numpy as np
import torch

from benchmarks.tracking_scenes import Frame, Placed, Sprite, base_sheet, fixture_sprites, render
from trapgui.ml.appearance import appearance_descriptors, crop_sharpness
from trapgui.ml.crops import stack_crops
from trapgui.tracking import NightDetection, NightImage, NightInput


@dataclass(frozen=True)
class SceneConfig:
    width: int = 2048
    height: int = 1080
    nights: int = 3
    frames: int = 60
    interval_s: float = 300.0
    initial: int = 14  # insects on the sheet at the first frame
    arrivals: float = 0.7  # new insects per frame (Poisson)
    leave: float = 1 / 12  # chance per frame that an insect leaves
    residents: float = 0.2  # insects that stay (almost) all night
    returners: float = 0.3  # leavers that come back after 3-12 frames...
    return_same_place: float = 0.8  # ... mostly near the same spot
    walkers: float = 0.1
    shift: float = 0.07  # chance per frame of a small shift/turn of a resting insect
    near_neighbour: float = 0.2  # arrivals that land beside another insect
    lookalikes: float = 0.1  # arrivals that reuse a crop already on the sheet (turned)
    swaps: int = 2  # per night: two neighbours swap places
    replacements: int = 2  # per night: one leaves, another lands on its spot
    pause: float = 0.5  # chance per night of a 30-60 min camera pause
    miss: float = 0.04  # detector misses (insects)
    fixture_miss: float = 0.08
    posture: float = 0.02  # per-frame change of an insect's apparent size
    contrast: float = 0.04  # per-frame change of its contrast
    species: int = 25
    classifier_accuracy: float = 0.75


@dataclass
class SimNight:
    label: str
    frames: list[Frame]
    kinds: dict[str, str] = field(default_factory=dict)  # object id -> insect | fixture


class _Insect:
    def __init__(self, oid, sprite, x, y, angle, species, resident, walker):
        self.oid, self.sprite, self.x, self.y, self.angle = oid, sprite, x, y, angle
        self.species, self.resident, self.walker = species, resident, walker
        self.heading = 0.0
        self.zoom = 1.0
        self.back_at: int | None = None  # frame of return while away


def simulate_trap(sprites: list[Sprite], cfg: SceneConfig, seed: int) -> tuple[list[SimNight], list[Sprite]]:
    """Nights of one trap; returns them and the sprite list (insects, then fixtures)."""
    rng = np.random.default_rng(seed)
    scale = cfg.width / 2048
    fixtures = fixture_sprites(scale, rng)
    all_sprites = list(sprites) + fixtures
    species_of = rng.integers(0, cfg.species, len(sprites))
    margin = 0.06 * cfg.width
    fixture_places = [(rng.uniform(margin, cfg.width - margin), rng.uniform(margin, cfg.height - margin),
                       float(rng.choice([0, 90])) if f.name in ("label", "scale bar") else 0.0)
                      for f in fixtures]
    nights = []
    start = dt.datetime(2023, 6, 1, 21, 30)
    for n in range(cfg.nights):
        nights.append(_simulate_night(n, cfg, rng, sprites, species_of, len(sprites), fixtures,
                                      fixture_places, start + dt.timedelta(days=n)))
    return nights, all_sprites


def _free_spot(rng, cfg, insects, size, near=None):
    margin = 0.04 * cfg.width + size
    for _ in range(60):
        if near is not None:
            ang, dist = rng.uniform(0, 2 * math.pi), rng.uniform(1.3, 2.2) * size
            x, y = near.x + dist * math.cos(ang), near.y + dist * math.sin(ang)
        else:
            x, y = rng.uniform(margin, cfg.width - margin), rng.uniform(margin, cfg.height - margin)
        if not (margin <= x <= cfg.width - margin and margin <= y <= cfg.height - margin):
            continue
        if all(math.hypot(x - o.x, y - o.y) > 1.1 * size for o in insects):
            return x, y
    return None


def _simulate_night(n, cfg, rng, sprites, species_of, n_insect_sprites, fixtures, fixture_places, start):
    sizes = [s.size for s in sprites]
    night = SimNight(start.date().isoformat(), [])
    on_sheet: list[_Insect] = []
    away: list[_Insect] = []
    used: list[int] = []
    counter = [0]
    swap_frames = set(rng.choice(np.arange(5, cfg.frames - 2), cfg.swaps, replace=False).tolist())
    replace_frames = set(rng.choice(np.arange(5, cfg.frames - 2), cfg.replacements, replace=False).tolist())
    pause_at = int(rng.integers(cfg.frames // 4, 3 * cfg.frames // 4)) if rng.random() < cfg.pause else -1
    shake = rng.normal(0, 1.5, 2)  # the camera moved a little since last night

    def new_insect(x=None, y=None, sprite=None, resident=None):
        if sprite is None:
            if used and rng.random() < cfg.lookalikes:
                sprite = int(rng.choice(used))
            else:
                unused = [i for i in range(n_insect_sprites) if i not in used]
                sprite = int(rng.choice(unused)) if unused else int(rng.integers(n_insect_sprites))
        size = sizes[sprite]
        if x is None:
            near = rng.choice(on_sheet) if on_sheet and rng.random() < cfg.near_neighbour else None
            spot = _free_spot(rng, cfg, on_sheet, size, near) or _free_spot(rng, cfg, on_sheet, size)
            if spot is None:
                return None
            x, y = spot
        counter[0] += 1
        oid = f"n{n}-i{counter[0]}"
        night.kinds[oid] = "insect"
        used.append(sprite)
        res = rng.random() < cfg.residents if resident is None else resident
        ins = _Insect(oid, sprite, x, y, rng.uniform(0, 360), f"sp{species_of[sprite]}", res,
                      (not res) and rng.random() < cfg.walkers)
        ins.heading = rng.uniform(0, 2 * math.pi)
        on_sheet.append(ins)
        return ins

    for _ in range(cfg.initial):
        new_insect()
    rester = new_insect(resident=True)  # rests all night: not a fixture (other nights differ)
    if rester is not None:
        rester.walker = False
    t = start
    for f in range(cfg.frames):
        if f:
            t += dt.timedelta(seconds=cfg.interval_s * rng.uniform(0.9, 1.1))
            if f == pause_at:
                t += dt.timedelta(minutes=float(rng.uniform(30, 60)))
        for ins in list(away):  # returners
            if ins.back_at == f:
                away.remove(ins)
                size = sizes[ins.sprite]
                if rng.random() < cfg.return_same_place:
                    ins.x += rng.normal(0, 0.25 * size)
                    ins.y += rng.normal(0, 0.25 * size)
                else:
                    spot = _free_spot(rng, cfg, on_sheet, size)
                    if spot:
                        ins.x, ins.y = spot
                ins.angle += rng.normal(0, 20)
                on_sheet.append(ins)
        for ins in list(on_sheet):
            if ins is rester:
                ins.x += rng.normal(0, 0.3)
                ins.y += rng.normal(0, 0.3)
                continue
            if f and not ins.resident and rng.random() < cfg.leave:
                on_sheet.remove(ins)
                if rng.random() < cfg.returners:
                    ins.back_at = f + int(rng.integers(3, 13))
                    away.append(ins)
                continue
            _move(ins, sizes[ins.sprite], cfg, rng)
        if f in swap_frames:
            _swap_neighbours(on_sheet, sizes, rng)
        if f in replace_frames:
            still = [i for i in on_sheet if i is not rester and not i.walker]
            if still:
                old = still[int(rng.integers(len(still)))]
                on_sheet.remove(old)
                new_insect(old.x + rng.normal(0, 0.15 * sizes[old.sprite]),
                           old.y + rng.normal(0, 0.15 * sizes[old.sprite]))
        if f:
            for _ in range(rng.poisson(cfg.arrivals)):
                new_insect()
        for ins in on_sheet:
            ins.zoom = float(np.clip(ins.zoom * (1 + rng.normal(0, cfg.posture)), 0.85, 1.15))
        frame = Frame(t, [Placed(i.oid, i.sprite, i.x, i.y, i.angle, i.species, i.zoom,
                                 float(rng.normal(1.0, cfg.contrast))) for i in on_sheet])
        for k, (fx, fy, fa) in enumerate(fixture_places):
            oid = f"fix-{fixtures[k].name}"
            night.kinds[oid] = "fixture"
            frame.placed.append(Placed(oid, n_insect_sprites + k, fx + shake[0] + rng.normal(0, 0.3),
                                       fy + shake[1] + rng.normal(0, 0.3), fa, None))
        night.frames.append(frame)
    return night


def _move(ins, size, cfg, rng):
    if ins.walker and rng.random() < 0.7:
        ins.heading += rng.normal(0, 0.5)
        step = rng.uniform(0.4, 1.2) * size
        nx, ny = ins.x + step * math.cos(ins.heading), ins.y + step * math.sin(ins.heading)
        m = 0.04 * cfg.width + size
        if not (m <= nx <= cfg.width - m and m <= ny <= cfg.height - m):
            ins.heading += math.pi
            return
        ins.x, ins.y = nx, ny
        ins.angle = math.degrees(ins.heading) + 90 + rng.normal(0, 10)
    elif rng.random() < cfg.shift:
        ins.x += rng.normal(0, 0.25 * size)
        ins.y += rng.normal(0, 0.25 * size)
        ins.angle += rng.normal(0, 25)
    else:
        ins.x += rng.normal(0, 0.4)
        ins.y += rng.normal(0, 0.4)
        ins.angle += rng.normal(0, 1.0)


def _swap_neighbours(on_sheet, sizes, rng):
    pairs = [(a, b) for i, a in enumerate(on_sheet) for b in on_sheet[i + 1:]
             if math.hypot(a.x - b.x, a.y - b.y) < 2.5 * max(sizes[a.sprite], sizes[b.sprite])]
    if pairs:
        a, b = pairs[int(rng.integers(len(pairs)))]
        a.x, b.x, a.y, b.y = b.x, a.x, b.y, a.y
        a.angle += rng.normal(0, 30)
        b.angle += rng.normal(0, 30)


# ---- detector + embeddings ---------------------------------------------------------------

def night_input(sim: SimNight, sprites: list[Sprite], cfg: SceneConfig, seed: int, key,
                first_image_id: int, first_detection_id: int,
                embeddings: bool = True) -> tuple[NightInput, dict[int, str]]:
    """Render the night, detect (simulated), embed; returns the tracker input and the true
    object id of every detection."""
    rng = np.random.default_rng(seed)
    sheet = base_sheet(cfg.width, cfg.height, rng)
    cache: dict = {}
    images, detections, truth = [], [], {}
    det_id = first_detection_id
    species_names = [f"sp{i}" for i in range(cfg.species)]
    for f, frame in enumerate(sim.frames):
        image_id = first_image_id + f
        images.append(NightImage(image_id, frame.captured, cfg.width, cfg.height))
        pixels, boxes = render(sheet, frame, sprites, rng, cache)
        kept = []
        for obj, (x1, y1, x2, y2) in boxes:
            fixture = sim.kinds[obj.object_id] == "fixture"
            if rng.random() < (cfg.fixture_miss if fixture else cfg.miss):
                continue
            pad = 0.1 * max(x2 - x1, y2 - y1) + 2
            s = math.sqrt((x2 - x1) * (y2 - y1))
            jit = rng.normal(0, 0.03 * s, 4)
            box = (max(0.0, x1 - pad + jit[0]), max(0.0, y1 - pad + jit[1]),
                   min(cfg.width, x2 + pad + jit[2]), min(cfg.height, y2 + pad + jit[3]))
            if box[2] - box[0] < 2 or box[3] - box[1] < 2:
                continue
            kept.append((obj, box, fixture))
        emb = sharp = None
        if kept and embeddings:
            tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
            crops = stack_crops([tensor], [torch.tensor([b for _, b, _ in kept], dtype=torch.float32)],
                                64, "stretch", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).crops
            emb = appearance_descriptors(crops).float().numpy()
            sharp = crop_sharpness(crops).numpy()
        for k, (obj, box, fixture) in enumerate(kept):
            detections.append(NightDetection(
                det_id, image_id, box, float(rng.uniform(0.5, 0.95) if fixture else rng.uniform(0.6, 1.0)),
                _labels(obj, fixture, species_names, cfg, rng),
                emb[k] if emb is not None else None,
                float(sharp[k]) if sharp is not None else None))
            truth[det_id] = obj.object_id
            det_id += 1
    return NightInput(key, sim.label, images, detections), truth


def _labels(obj: Placed, fixture: bool, names: list[str], cfg: SceneConfig, rng):
    p = rng.uniform(0.7, 0.99)
    binary = [("nonmoth", p), ("moth", 1 - p)] if fixture else [("moth", p), ("nonmoth", 1 - p)]
    if fixture:
        return {"binary": binary}
    truth = obj.species
    top = truth if rng.random() < cfg.classifier_accuracy else names[int(rng.integers(len(names)))]
    others = [s for s in names if s != top]
    second, third = rng.choice(others, 2, replace=False)
    s1 = rng.uniform(0.35, 0.95)
    s2 = rng.uniform(0, 1 - s1)
    return {"binary": binary, "species": [(top, s1), (str(second), s2), (str(third), (1 - s1 - s2) / 2)]}
