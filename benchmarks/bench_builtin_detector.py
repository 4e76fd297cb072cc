"""Throughput of the built-in detector at batch 1 versus batch 4 on the 4096x2160 trap photos.

    .venv/bin/python benchmarks/bench_builtin_detector.py [--device cpu|cuda] [--rounds 2]
        [--baseline REV]

Images are decoded once beforehand (decode is the loader's job, not the detector's); both batch
sizes run over the same images in the same process, alternating, so machine noise hits both.
Detection runs in a worker thread with the engine's thread count (on an oversubscribed CPU the
main thread's OpenMP pool is much slower than a worker's). With --baseline the detector of that
git revision runs too, alternating with the current one batch by batch, and the time ratio is
printed.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_overlays import load  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402


def run(detector, images: list[torch.Tensor], batch_size: int, threads: int) -> float:
    """Seconds to detect on all images in batches of `batch_size` (in a worker thread)."""
    seconds = []

    def work():
        torch.set_num_threads(threads)
        if detector.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for i in range(0, len(images), batch_size):
            detector.detect(images[i : i + batch_size])
        if detector.device.type == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)

    t = threading.Thread(target=work)
    t.start()
    t.join()
    return seconds[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "trap-images")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--count", type=int, default=8, help="images per round (multiple of 4)")
    parser.add_argument("--baseline", default=None, help="git revision to time against")
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
    detectors = {"new": BuiltinDetector(device=args.device)}
    if args.baseline:
        from benchmarks.eval_builtin_detector import load_baseline

        detectors = {"base": load_baseline(args.baseline)(device=args.device), **detectors}
    for detector in detectors.values():
        run(detector, images[:4], 4, args.threads)  # warm-up (allocator, kernels)
    totals = {(k, b): 0.0 for k in detectors for b in (1, 4)}
    for r in range(args.rounds):
        for batch_size in (1, 4):
            order = list(detectors) if r % 2 == 0 else list(detectors)[::-1]
            for key in order:
                totals[key, batch_size] += run(detectors[key], images, batch_size, args.threads)
    n = len(images) * args.rounds
    device = f"cpu ({args.threads} threads)"
    if args.device.startswith("cuda"):
        device = torch.cuda.get_device_name()
    print(f"built-in detector, {len(images)} images 4096x2160 x {args.rounds} rounds, {device}, "
          f"working side {detectors['new'].working_max_side}")
    for key in detectors:
        rate = {b: n / totals[key, b] for b in (1, 4)}
        for b in (1, 4):
            print(f"  {key:4s} batch {b}: {rate[b]:6.2f} images/s  ({1000 / rate[b]:6.0f} ms/image)")
        print(f"  {key:4s} batch 4 / batch 1 throughput: {rate[4] / rate[1]:.2f}x")
    if "base" in detectors:
        for b in (1, 4):
            print(f"  new / base time at batch {b}: {totals['new', b] / totals['base', b]:.3f}")


if __name__ == "__main__":
    main()
