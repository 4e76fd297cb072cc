"""Stacked-crop vs per-crop classification: crops/s with the same model and the same crops,
measured in one run.

Stacked: every box of the batch cut and resized in one roi_align call, classified in
sub-batches of --batch. Per-crop: the reference path, one roi_align and one forward per box.
Model: the published moth/non-moth ResNet-50 architecture (128 px, ImageNet normalisation),
random-initialised with a fixed seed. Boxes: the built-in detector's on real trap images.

    .venv/bin/python benchmarks/bench_stacked_crops.py [--images 2] [--crops 96] [--device cpu]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trapgui.ml.architectures import build_architecture  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402
from trapgui.ml.model_catalogue import load_model_catalogue  # noqa: E402
from trapgui.ml.crops import crop_one, stack_crops  # noqa: E402
from trapgui.pipeline.loader import decode_image  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "trap-images"


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=2)
    ap.add_argument("--crops", type=int, default=96, help="at most this many boxes in total")
    ap.add_argument("--batch", type=int, default=64, help="classification sub-batch size")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0,
                    help="torch threads (default: what the engine's CPU worker uses)")
    args = ap.parse_args()
    # Measured the way the engine runs: in a worker thread with its own torch thread count
    # (on an oversubscribed CPU the main thread's OpenMP pool behaves very differently).
    in_worker_thread(lambda: measure(args))


def in_worker_thread(fn) -> None:
    import threading

    errors = []

    def target():
        try:
            fn()
        except BaseException as exc:  # shown by the main thread
            errors.append(exc)

    t = threading.Thread(target=target)
    t.start()
    t.join()
    if errors:
        raise errors[0]


def measure(args) -> None:
    from trapgui.ml.devices import cpu_threads

    torch.set_num_threads(args.threads or cpu_threads())
    device = torch.device(args.device)
    spec = load_model_catalogue().get("moth_binary_resnet50_2024")
    torch.manual_seed(0)
    model = build_architecture(spec.architecture, 2).to(device).eval()
    files = sorted((SHARED / "panama").glob("*.jpg"))[: args.images]
    images = [decode_image(i, str(f)).tensor.to(device) for i, f in enumerate(files)]
    detector = BuiltinDetector(device=device)
    with torch.inference_mode():
        outs = detector.detect([im.float() / 255 for im in images])
    boxes, left = [], args.crops
    for o in outs:
        boxes.append(o.boxes[:left])
        left -= len(boxes[-1])
    n = sum(len(b) for b in boxes)
    sides = torch.cat([torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]) for b in boxes])
    print(f"device={device} threads={torch.get_num_threads()} images={len(images)} "
          f"({images[0].shape[2]}x{images[0].shape[1]}) crops={n} "
          f"(box side median {sides.median():.0f} px) model=resnet50@{spec.input_size} "
          f"sub-batch={args.batch}")
    floats = [im.float() / 255 for im in images]

    def stacked():
        batch = stack_crops(floats, boxes, spec.input_size, "stretch", spec.mean, spec.std)
        probs = [model(batch.crops[i:i + args.batch]).softmax(1)
                 for i in range(0, len(batch), args.batch)]
        return torch.cat(probs)

    def per_crop():
        probs = []
        for im, bs in zip(floats, boxes):
            for b in bs:
                crop = crop_one(im, b, spec.input_size, "stretch", spec.mean, spec.std)
                probs.append(model(crop[None]).softmax(1))
        return torch.cat(probs)

    with torch.inference_mode():
        stacked(), per_crop()  # warm-up (allocator, kernels)
        timings = {"stacked": [], "per-crop": []}
        for _ in range(args.repeat):
            for name, fn in (("stacked", stacked), ("per-crop", per_crop)):
                sync(device)
                t = time.perf_counter()
                result = fn()
                sync(device)
                timings[name].append(time.perf_counter() - t)
                if name == "stacked":
                    reference = result
                else:
                    diff = (reference - result).abs().max().item()
    best = {k: min(v) for k, v in timings.items()}
    for name in ("stacked", "per-crop"):
        print(f"{name:9s} {n / best[name]:8.1f} crops/s  (best of {args.repeat}: "
              f"{best[name]:.2f} s; all: {', '.join(f'{t:.2f}' for t in timings[name])})")
    print(f"speed-up stacked / per-crop: {best['per-crop'] / best['stacked']:.2f}x  "
          f"(max score difference {diff:.2e})")


if __name__ == "__main__":
    main()
