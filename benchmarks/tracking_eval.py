"""How well the tracker counts individuals: synthetic nights with known identities (tuning
set) and the 5 hand-labelled sequential/ frames (held out).

    .venv/bin/python benchmarks/tracking_eval.py [--seeds 0 1 2] [--side 2048] [--real] [--synthetic]

Per set: true vs counted individuals, and link recall / precision: of the links between
consecutive detections of one individual (truth), the fraction the tracker made; of the
links it made, the fraction that join one individual. Synthetic nights also report fixtures
(detections of fixtures flagged / insect detections wrongly flagged) and label accuracy (the
occurrence's species vote vs the insect's true species). Goals: individuals within +-10 %,
>= 95 % of links right.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trapgui.tracking import NightTracks, TrackingParams, track_night, track_nights  # noqa: E402

SHARED = REPO.parent / "shared" / "trap-images"
LABELS = REPO / "tests" / "data" / "tracking" / "sequential-identities.json"


@dataclass
class Scores:
    name: str
    true_individuals: int
    counted: int
    truth_links: int
    made_links: int
    right_links: int
    fixture_flagged: float | None = None  # fraction of fixture detections flagged
    insects_flagged: float | None = None  # fraction of insect detections flagged (wrong)
    label_accuracy: float | None = None

    @property
    def count_error(self) -> float:
        return (self.counted - self.true_individuals) / max(1, self.true_individuals)

    @property
    def link_recall(self) -> float:
        return self.right_links / max(1, self.truth_links)

    @property
    def link_precision(self) -> float:
        return self.right_links / max(1, self.made_links)

    def line(self) -> str:
        text = (f"{self.name:<28} individuals true {self.true_individuals:4d} counted {self.counted:4d} "
                f"({self.count_error:+.1%})  links: recall {self.link_recall:.1%} "
                f"({self.right_links}/{self.truth_links}) precision {self.link_precision:.1%} "
                f"({self.right_links}/{self.made_links})")
        if self.fixture_flagged is not None:
            text += (f"  fixtures: {self.fixture_flagged:.1%} of fixture detections flagged, "
                     f"{self.insects_flagged:.2%} of insect detections")
        if self.label_accuracy is not None:
            text += f"  labels right {self.label_accuracy:.1%}"
        return text


def _links(groups: list[list[int]]) -> set[tuple[int, int]]:
    return {(a, b) for g in groups for a, b in zip(g, g[1:])}


def score_night(name: str, tracks: NightTracks, truth: dict[int, str], order: dict[int, int],
                counted_kinds: dict[str, str] | None = None, counted: set[str] | None = None,
                species: dict[str, str] | None = None) -> Scores:
    """``truth``: detection id -> object id; ``order``: detection id -> capture position.
    Individuals are the true objects whose kind is in ``counted`` (all when None)."""
    dets = [d for d in truth if d in tracks.occurrence_of]
    by_object: dict[str, list[int]] = {}
    for d in sorted(dets, key=lambda d: (order[d], d)):
        by_object.setdefault(truth[d], []).append(d)
    truth_links = _links(list(by_object.values()))
    occ_groups = [[d for d in o.detection_ids if d in truth] for o in tracks.occurrences]
    made = _links(occ_groups)
    wanted = {o for o in by_object if counted is None or (counted_kinds or {}).get(o) in counted}
    n_counted = sum(1 for o, g in zip(tracks.occurrences, occ_groups) if g and not o.fixture)
    s = Scores(name, len(wanted), n_counted, len(truth_links), len(made), len(truth_links & made))
    if counted_kinds and "fixture" in counted_kinds.values():
        flagged = {d for o in tracks.occurrences if o.fixture for d in o.detection_ids}
        fix = [d for d in dets if counted_kinds.get(truth[d]) == "fixture"]
        ins = [d for d in dets if counted_kinds.get(truth[d]) == "insect"]
        s.fixture_flagged = sum(d in flagged for d in fix) / max(1, len(fix))
        s.insects_flagged = sum(d in flagged for d in ins) / max(1, len(ins))
    if species:
        right = total = 0
        for o, g in zip(tracks.occurrences, occ_groups):
            objs = Counter(truth[d] for d in g)
            if not objs:
                continue
            main = objs.most_common(1)[0][0]
            if main in species and "species" in o.votes:
                total += 1
                right += o.votes["species"].label == species[main]
        s.label_accuracy = right / max(1, total)
    return s


def combine(name: str, parts: list[Scores]) -> Scores:
    out = Scores(name, sum(p.true_individuals for p in parts), sum(p.counted for p in parts),
                 sum(p.truth_links for p in parts), sum(p.made_links for p in parts),
                 sum(p.right_links for p in parts))
    for attr in ("fixture_flagged", "insects_flagged", "label_accuracy"):
        vals = [getattr(p, attr) for p in parts if getattr(p, attr) is not None]
        if vals:
            setattr(out, attr, float(np.mean(vals)))
    return out


# ---- synthetic -------------------------------------------------------------------------------

def synthetic_scores(sprites, cfg, seed: int, params: TrackingParams,
                     embeddings: bool = True) -> list[Scores]:
    from benchmarks.tracking_nights import night_input, simulate_trap

    sims, all_sprites = simulate_trap(sprites, cfg, seed)
    inputs, truths, species = [], [], {}
    image_id, det_id = 1, 1
    for n, sim in enumerate(sims):
        for frame in sim.frames:
            for p in frame.placed:
                if p.species:
                    species[p.object_id] = p.species
        night, truth = night_input(sim, all_sprites, cfg, seed * 100 + n, n, image_id, det_id, embeddings)
        image_id += len(night.images)
        det_id += len(night.detections)
        inputs.append(night)
        truths.append((truth, sim.kinds))
    results = track_nights(inputs, params)
    scores = []
    for night, (truth, kinds) in zip(inputs, truths):
        order = {d.detection_id: d.image_id for d in night.detections}
        scores.append(score_night(f"seed {seed} night {night.key}", results[night.key], truth, order,
                                  kinds, {"insect"}, species))
    return scores


# ---- the real sequential frames -----------------------------------------------------------

def real_inputs(labels_path: Path = LABELS, images_dir: Path = SHARED, min_score: float | None = None):
    """Tracker input for the labelled frames (embeddings from the real crops) and the labels."""
    import datetime as dt

    import torch

    from benchmarks.tracking_scenes import load_rgb
    from trapgui.ml.appearance import appearance_descriptors, crop_sharpness
    from trapgui.ml.crops import stack_crops
    from trapgui.tracking import NightDetection, NightImage

    data = json.loads(labels_path.read_text())
    threshold = data["detector"]["score_threshold"] if min_score is None else min_score
    images, detections, truth = [], [], {}
    det_id = 1
    for image_id, frame in enumerate(data["frames"], start=1):
        w, h = frame["size"]
        images.append(NightImage(image_id, dt.datetime.fromisoformat(frame["captured"]), w, h))
        boxes = [b for b in frame["boxes"] if b["score"] >= threshold]
        rgb = load_rgb(images_dir / frame["file"], None)
        tensor = torch.from_numpy(rgb).permute(2, 0, 1).contiguous()
        crops = stack_crops([tensor], [torch.tensor([b["box"] for b in boxes], dtype=torch.float32)],
                            64, "stretch", (0.0, 0.0, 0.0), (1.0, 1.0, 1.0)).crops
        emb = appearance_descriptors(crops).float().numpy()
        sharp = crop_sharpness(crops).numpy()
        for k, b in enumerate(boxes):
            detections.append(NightDetection(det_id, image_id, tuple(b["box"]), b["score"], {},
                                             emb[k], float(sharp[k])))
            truth[det_id] = b["object"]
            det_id += 1
    return images, detections, truth, data["objects"]


def real_scores(params: TrackingParams, inputs=None) -> list[Scores]:
    images, detections, truth, objects = inputs or real_inputs()
    kinds = {o: v["kind"] for o, v in objects.items()}
    order = {d.detection_id: d.image_id for d in detections}
    out = []
    tracks = track_night(images, detections, params)
    out.append(score_night("sequential: all objects", tracks, truth, order))
    insects = [d for d in detections if kinds[truth[d.detection_id]] == "insect"]
    tracks = track_night(images, insects, params)
    out.append(score_night("sequential: insects only", tracks,
                           {d.detection_id: truth[d.detection_id] for d in insects}, order))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--side", type=int, default=2048, help="scene width (crops scaled to match)")
    parser.add_argument("--nights", type=int, default=3)
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--real", action="store_true", help="only the held-out real frames")
    parser.add_argument("--synthetic", action="store_true", help="only the synthetic nights")
    parser.add_argument("--no-embeddings", action="store_true", help="geometry only")
    parser.add_argument("--params", type=json.loads, default={}, help='JSON overrides, e.g. \'{"max_move": 2}\'')
    args = parser.parse_args()
    params = TrackingParams.from_dict(args.params)
    import torch

    torch.set_num_threads(1)
    if not args.real:
        from benchmarks.tracking_nights import SceneConfig
        from benchmarks.tracking_scenes import harvest_sprites

        started = time.perf_counter()
        sprites = harvest_sprites(SHARED, max_side=args.side)
        print(f"{len(sprites)} insect crops from {', '.join('shared/trap-images/' + f for f in ('panama', 'vermont'))} "
              f"({time.perf_counter() - started:.0f} s)")
        cfg = SceneConfig(width=args.side, height=round(args.side * 2160 / 4096), nights=args.nights,
                          frames=args.frames)
        parts = []
        for seed in args.seeds:
            parts.extend(synthetic_scores(sprites, cfg, seed, params, not args.no_embeddings))
        for p in parts:
            print(p.line())
        print(combine("synthetic: all nights", parts).line())
    if not args.synthetic:
        for s in real_scores(params):
            print(s.line())


if __name__ == "__main__":
    main()
