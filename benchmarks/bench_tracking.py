"""Time to track one night of 100,000 detections on one CPU core (goal: <= 10 s).

    .venv/bin/python benchmarks/bench_tracking.py [--detections 100000] [--per-image 250 50 500]
                                                  [--dim 128] [--rounds 2]

The night is generated (no images): a population of insects on a 4096 x 2160 sheet, most
resting with a pixel of jitter, some walking, arrivals and departures, detections missed
now and then; each detection has a 128-value embedding (its individual's vector plus noise),
binary + species top-3 labels and a sharpness. Input objects are built before the clock
starts (the caller builds them from database rows); the time is ``track_night`` alone.
BLAS and OpenMP are pinned to one thread before NumPy loads.
"""

from __future__ import annotations

import os

for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[var] = "1"

import argparse  # noqa: E402
import datetime as dt  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trapgui.tracking import NightDetection, NightImage, TrackingParams, track_night  # noqa: E402

W, H = 4096, 2160


def make_night(n_detections: int, per_image: int, dim: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_images = max(1, round(n_detections / (per_image * 0.97)))  # 3 % are missed
    images = [NightImage(i + 1, dt.datetime(2023, 6, 1, 21) + dt.timedelta(minutes=2 * i), W, H)
              for i in range(n_images)]
    n_pop = per_image
    pos = rng.uniform(100, [W - 100, H - 100], (n_pop, 2))
    size = rng.uniform(30, 200, n_pop)
    look = rng.normal(size=(n_pop, dim)).astype(np.float32)
    walker = rng.random(n_pop) < 0.05
    species = [f"species {i}" for i in range(300)]
    dets = []
    det_id = 1
    for i, im in enumerate(images):
        leave = rng.random(n_pop) < 0.02  # this spot is taken by a new insect
        pos[leave] = rng.uniform(100, [W - 100, H - 100], (int(leave.sum()), 2))
        size[leave] = rng.uniform(30, 200, int(leave.sum()))
        look[leave] = rng.normal(size=(int(leave.sum()), dim))
        step = np.where(walker[:, None], rng.normal(0, 40, (n_pop, 2)), rng.normal(0, 1.0, (n_pop, 2)))
        pos = np.clip(pos + step, 100, [W - 100, H - 100])
        seen = rng.random(n_pop) > 0.03
        for k in np.flatnonzero(seen)[:per_image]:
            s = size[k] * rng.uniform(0.95, 1.05)
            x, y = pos[k]
            emb = look[k] + rng.normal(0, 0.3, dim).astype(np.float32)
            top = int(rng.integers(300))
            dets.append(NightDetection(
                det_id, im.image_id, (x - s / 2, y - s / 2, x + s / 2, y + s / 2), float(rng.uniform(0.5, 1)),
                {"binary": [("moth", 0.9), ("nonmoth", 0.1)],
                 "species": [(species[top], 0.6), (species[(top + 1) % 300], 0.2), (species[(top + 2) % 300], 0.1)]},
                emb, float(rng.uniform(0.5, 2))))
            det_id += 1
    return images, dets


def descriptor_cost(rounds: int, n: int = 256) -> None:
    """CPU time of the cheap descriptor (crops of 64 px, cut separately) and of the crop
    sharpness, against the binary classifier's forward (ResNet-50 at 128 px, random weights)
    on the same number of crops, one torch thread."""
    import torch

    from trapgui.ml.appearance import appearance_descriptors, crop_sharpness
    from trapgui.ml.architectures import build_architecture

    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    small = torch.rand(n, 3, 64, 64, generator=gen)
    big = torch.rand(n, 3, 128, 128, generator=gen)
    model = build_architecture("torchvision_resnet50", 2)

    def cpu(fn) -> float:
        best = float("inf")
        for _ in range(rounds):
            start = time.process_time()
            with torch.inference_mode():
                fn()
            best = min(best, time.process_time() - start)
        return best

    t_desc = cpu(lambda: appearance_descriptors(small))
    t_sharp = cpu(lambda: crop_sharpness(small))
    t_model = cpu(lambda: model(big))
    print(f"{n} crops, one thread: descriptor {1000 * t_desc / n:.2f} ms/crop, sharpness "
          f"{1000 * t_sharp / n:.3f} ms/crop, ResNet-50 @128 forward {1000 * t_model / n:.2f} ms/crop "
          f"(descriptor + sharpness = {100 * (t_desc + t_sharp) / t_model:.1f} % of the forward)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--detections", type=int, default=100_000)
    parser.add_argument("--per-image", type=int, nargs="+", default=[250, 50, 500])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--descriptor", action="store_true",
                        help="also time the appearance descriptor against a ResNet-50 forward")
    args = parser.parse_args()
    if args.descriptor:
        descriptor_cost(args.rounds)
    params = TrackingParams()
    for per_image in args.per_image:
        images, dets = make_night(args.detections, per_image, args.dim)
        no_emb = [NightDetection(d.detection_id, d.image_id, d.box, d.score, d.labels, None, d.sharpness)
                  for d in dets]
        for label, night in (("with embeddings", dets), ("without embeddings", no_emb)):
            times, cpu = [], []
            for _ in range(args.rounds):
                start, start_cpu = time.perf_counter(), time.process_time()
                result = track_night(images, night, params)
                times.append(time.perf_counter() - start)
                cpu.append(time.process_time() - start_cpu)
            print(f"{len(night):,} detections, {len(images)} images x {per_image} per image, {label}: "
                  f"CPU {min(cpu):.2f} s, wall {min(times):.2f} s (best of {args.rounds}; "
                  f"wall rounds {', '.join(f'{t:.2f}' for t in times)}); "
                  f"{len(result.occurrences):,} occurrences, {result.stats.links:,} links, "
                  f"{result.stats.relinks} re-links, {len(result.fixture_candidates)} fixture candidates")


if __name__ == "__main__":
    main()
