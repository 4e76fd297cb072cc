"""Throughput of the built-in detector at batch 1 versus batch 4 on the 4096x2160 trap photos.

    .venv/bin/python benchmarks/bench_builtin_detector.py [--device cpu|cuda] [--rounds 2]

Images are decoded once beforehand (decode is the loader's job, not the detector's); both batch
sizes run over the same images in the same process, alternating, so machine noise hits both.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_overlays import load  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402


def run(detector: BuiltinDetector, images: list[torch.Tensor], batch_size: int) -> float:
    """Seconds to detect on all images in batches of `batch_size`."""
    if detector.device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for i in range(0, len(images), batch_size):
        detector.detect(images[i : i + batch_size])
    if detector.device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "trap-images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=8, help="images per round (multiple of 4)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(p for p in args.images.rglob("*.jpg"))
    images = []
    for path in paths:
        image = load(path)
        if tuple(image.shape[1:]) == (2160, 4096):
            images.append(image.to(args.device))
        if len(images) == args.count:
            break
    if len(images) < 4:
        sys.exit("need at least four 4096x2160 images")
    detector = BuiltinDetector(device=args.device)
    detector.detect(images[:4])  # warm-up (allocator, kernels)
    totals = {1: 0.0, 4: 0.0}
    for _ in range(args.rounds):
        for batch_size in (1, 4):
            totals[batch_size] += run(detector, images, batch_size)
    n = len(images) * args.rounds
    rate = {b: n / t for b, t in totals.items()}
    device = f"cpu ({args.threads} threads)"
    if detector.device.type == "cuda":
        device = torch.cuda.get_device_name()
    print(f"built-in detector, {len(images)} images 4096x2160 x {args.rounds} rounds, {device}, "
          f"working side {detector.working_max_side}")
    for b in (1, 4):
        print(f"  batch {b}: {rate[b]:6.2f} images/s  ({1000 / rate[b]:6.0f} ms/image)")
    print(f"  batch 4 / batch 1 throughput: {rate[4] / rate[1]:.2f}x")


if __name__ == "__main__":
    main()
