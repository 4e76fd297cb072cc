"""End-to-end engine images/s vs bare model forward images/s, same models, batch sizes and
device, measured in one run.

Bare: only the forward passes, on inputs prepared beforehand (images decoded, converted and
reduced to the detector's working size; crops cut and normalised): detector forward per
detection batch + classifier forward per sub-batch of the same crops.
Pipeline: ``Engine.run`` over a real SQLite queue from the JPEG files: claims, decode pool,
device reduction, detection, box mapping, stacked crops, binary classifier, writer commits.

Models: --detector (default the built-in detector; a catalogue Faster R-CNN key uses random
weights in the published format, and then --score-floor matters: a random Faster R-CNN gives
box_detections_per_img=500 boxes per image) and the published moth/non-moth ResNet-50 with
random weights (fixed seed).

Also prints the decode measurement behind the loader's choice (draft-reduced JPEG decode vs
full decode + reduction).

    .venv/bin/python benchmarks/bench_pipeline_vs_model.py [--images 8] [--side 0] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trapgui.db import open_database  # noqa: E402
from trapgui.ml.crops import stack_crops  # noqa: E402
from trapgui.ml.devices import resolve_devices  # noqa: E402
from trapgui.ml.registry import install_random_weights  # noqa: E402
from trapgui.ml.store import ModelStore  # noqa: E402
from trapgui.pipeline.engine import Engine  # noqa: E402
from trapgui.pipeline.loader import decode_image  # noqa: E402
from trapgui.pipeline.model_set import registry_loader  # noqa: E402
from trapgui.pipeline.processor import BatchProcessor  # noqa: E402
from trapgui.pipeline.spec import PipelineSpec  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "trap-images"
BINARY = "moth_binary_resnet50_2024"


def copy_images(dst: Path, n: int, side: int) -> list[Path]:
    from tests.image_files import save_downscaled

    sources = sorted(p for p in SHARED.rglob("*.jpg") if "DSLR" not in p.parts)
    dst.mkdir(parents=True)
    out = []
    for i in range(n):
        src = sources[i % len(sources)]
        target = dst / f"{i:04d}-{src.name}"
        if side:
            save_downscaled(src, target, side)
        else:
            shutil.copy2(src, target)
        out.append(target)
    return out


def decode_choice(path: Path, max_side: int) -> None:
    """Detection-only runs: Pillow draft (DCT-domain reduction) vs full decode + resize."""
    def timed(fn, reps=3):
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        return best

    full = decode_image(0, str(path))
    draft_s = timed(lambda: decode_image(0, str(path), max_side=max_side, full_resolution=False))
    full_s = timed(lambda: decode_image(0, str(path)))
    x = full.tensor.float() / 255
    f = max_side / max(x.shape[-2:])
    size = (round(x.shape[-2] * f), round(x.shape[-1] * f))
    resize_s = timed(lambda: F.interpolate(x[None], size=size, mode="bilinear", antialias=True))
    print(f"decode {full.orig_size[0]}x{full.orig_size[1]} for a {max_side}px detector: draft "
          f"{draft_s * 1000:.0f} ms; full {full_s * 1000:.0f} ms + reduce on CPU "
          f"{resize_s * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--side", type=int, default=0, help="downscale copies (0 = full size)")
    ap.add_argument("--detector", default="builtin")
    ap.add_argument("--score-floor", type=float, default=0.0)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--classification-batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="trapgui-bench-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path) -> None:
    files = copy_images(tmp / "trap", args.images, args.side)
    store = ModelStore(tmp / "models")
    install_random_weights(store, BINARY, seed=0)
    if args.detector != "builtin":
        install_random_weights(store, args.detector, seed=0)
    spec = PipelineSpec(detector=args.detector, binary=BINARY,
                        detection_batch_size=args.batch_size,
                        classification_batch_size=args.classification_batch_size,
                        detection_score_floor=args.score_floor, loader_threads=2)
    choice = resolve_devices(args.device)[0][0]
    torch.set_num_threads(choice.threads or torch.get_num_threads())
    models = registry_loader(store, spec)(choice.device)
    processor = BatchProcessor(models.detector, models.binary, classification_batch_size=
                               spec.classification_batch_size, score_floor=spec.detection_score_floor)
    if processor.detection_max_side:
        decode_choice(files[0], processor.detection_max_side)

    # ---- bare model: inputs prepared beforehand, only forwards timed --------------------
    decoded = [decode_image(i, str(f)) for i, f in enumerate(files)]
    det_inputs = [processor._detection_input(d.tensor.to(choice.device))[0] for d in decoded]
    bs, cbs = spec.detection_batch_size, spec.classification_batch_size
    crops_per_batch = []
    with torch.inference_mode():
        results = processor.process(decoded)  # the boxes the pipeline will classify
        for start in range(0, len(decoded), bs):
            part = range(start, min(start + bs, len(decoded)))
            boxes = [torch.tensor([d.box.as_tuple() for d in results[i].detections]).reshape(-1, 4)
                     for i in part]
            crops_per_batch.append(stack_crops(
                [decoded[i].tensor.to(choice.device) for i in part], boxes,
                models.binary.info.input_size, models.binary.info.resize_mode,
                models.binary.info.mean, models.binary.info.std).crops)
    n_crops = sum(len(c) for c in crops_per_batch)
    per_image = [len(r.detections) for r in results]
    print(f"{len(files)} images ({decoded[0].orig_size[0]}x{decoded[0].orig_size[1]}), "
          f"detector={args.detector} (floor {args.score_floor}), binary={BINARY} (random "
          f"weights), detections per image: min {min(per_image)} / mean "
          f"{sum(per_image) / len(per_image):.1f} / max {max(per_image)}, {n_crops} crops; "
          f"device={choice.label} threads={choice.threads}; batch {bs}, classification batch {cbs}")
    del decoded

    def bare() -> float:
        """In a worker thread set up as the engine's device worker is (own torch thread
        count, inference mode): on an oversubscribed CPU the main thread's OpenMP pool is
        several times slower, which would flatter the pipeline."""
        out = []
        worker = threading.Thread(target=lambda: out.append(bare_forwards()))
        worker.start()
        worker.join()
        return out[0]

    def bare_forwards() -> float:
        if choice.threads:
            torch.set_num_threads(choice.threads)
        t = time.perf_counter()
        with torch.inference_mode():
            for k, start in enumerate(range(0, len(det_inputs), bs)):
                models.detector.detect(det_inputs[start:start + bs])
                crops = crops_per_batch[k]
                for c in range(0, len(crops), cbs):
                    models.binary.predict(crops[c:c + cbs])
        if choice.device.type == "cuda":
            torch.cuda.synchronize()
        return len(det_inputs) / (time.perf_counter() - t)

    db = open_database(tmp / "catalogue.sqlite3")
    dep = scan_folder(db, tmp / "trap").deployment_id
    engine = Engine(db, store, spec, devices=args.device,
                    model_loader=lambda device: models)  # same model objects as bare

    def pipeline() -> float:
        engine.enqueue_deployment(dep, requeue=True)
        summary = engine.run()
        assert summary.done == len(files), summary
        return summary.images_per_s

    rows = []
    for r in range(args.rounds):
        b = bare()
        p = pipeline()
        rows.append((b, p))
        print(f"round {r + 1}: bare model {b:.3f} images/s, pipeline {p:.3f} images/s "
              f"-> {100 * p / b:.1f} %")
    b = sum(x for x, _ in rows) / len(rows)
    p = sum(y for _, y in rows) / len(rows)
    print(f"mean: bare model {b:.3f} images/s, pipeline {p:.3f} images/s -> pipeline is "
          f"{100 * p / b:.1f} % of bare model")
    db.close()


if __name__ == "__main__":
    main()
