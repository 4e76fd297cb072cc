"""Resident memory (RSS) of the engine over --images images (default 1,000).

The images are copies of the shared trap images, downscaled to --side pixels on the longer
side (default 512, so 1,000 images finish in minutes on a shared 2-core CPU; --side 0 uses
the full 4096x2160 files). RSS is sampled on every progress event; growth is measured from
the first --warm images (allocators, caches and models warmed up) to the end, and as the
slope of a straight line fitted through the samples after them (MB per 1,000 images).

--weights DIR: the realistic benchmark weights (../shared/bench-weights/) of MobileNet Faster
R-CNN 2023 + moth/non-moth ResNet-50 + Quebec-Vermont timm ResNet-50, installed in the model
store; default settings otherwise (floors, measured batch sizes: measured before the run).

    .venv/bin/python benchmarks/bench_memory.py [--images 1000] [--side 512] [--binary]
    .venv/bin/python benchmarks/bench_memory.py --weights DIR --side 0 --images 60 --warm 10
        [--report-every 50]
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from trapgui.db import open_database  # noqa: E402
from trapgui.ml.store import ModelStore  # noqa: E402
from trapgui.pipeline.engine import Engine  # noqa: E402
from trapgui.core.jobs import RunProgress  # noqa: E402
from trapgui.pipeline.spec import PipelineSpec  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "trap-images"
MB = 1024 * 1024


def rss() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def make_folder(dst: Path, n: int, side: int) -> None:
    from tests.image_files import save_downscaled

    base = dst.parent / "base"
    base.mkdir(parents=True)
    sources = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg")
                     and (side or "DSLR" not in p.parts))
    bases = []
    for src in sources:
        target = base / src.name
        if side:
            save_downscaled(src, target, side)
        else:
            shutil.copy2(src, target)
        bases.append(target)
    dst.mkdir()
    for i in range(n):
        src = bases[i % len(bases)]
        shutil.copy2(src, dst / f"{i:05d}-{src.name}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--side", type=int, default=512)
    ap.add_argument("--warm", type=int, default=100)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--report-every", type=int, default=0,
                    help="print RSS every N images while it runs (a long run's partial figures)")
    ap.add_argument("--binary", action="store_true",
                    help="add the moth/non-moth ResNet-50 (random weights)")
    ap.add_argument("--weights", help="realistic weights folder: detector + binary + species")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="trapgui-mem-"))
    try:
        run(args, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def run(args, tmp: Path) -> None:
    make_folder(tmp / "trap", args.images, args.side)
    db = open_database(tmp / "catalogue.sqlite3")
    dep = scan_folder(db, tmp / "trap").deployment_id
    store = ModelStore(tmp / "models")
    binary = None
    cache = None
    if args.weights:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from bench_weights import BINARY, DETECTOR, SPECIES, install_bench_weights

        from trapgui.config.settings import Settings
        from trapgui.pipeline.batch_size_cache import BatchSizeCache

        install_bench_weights(store, args.weights)
        spec = PipelineSpec.from_settings(Settings(detector=DETECTOR, binary_classifier=BINARY,
                                                   species_classifier=SPECIES))
        cache = BatchSizeCache(tmp / "batch_sizes.json")
        measure = Engine(db, store, spec, devices="cpu", batch_size_cache=cache)
        measure.enqueue_images([1])  # first use: measures the batch sizes (not sampled)
        measure.run(image_ids=[1])
        del measure  # its models and buffers are not part of the measured run
        gc.collect()
    else:
        if args.binary:
            from trapgui.ml.registry import install_random_weights

            binary = "moth_binary_resnet50_2024"
            install_random_weights(store, binary)
        spec = PipelineSpec(binary=binary, detection_batch_size=args.batch_size,
                            loader_threads=2)
    engine = Engine(db, store, spec, devices="cpu", batch_size_cache=cache)
    engine.enqueue_deployment(dep, requeue=True)
    samples: list[tuple[int, int]] = []
    lock = threading.Lock()

    reported = [0]

    def on_event(event) -> None:
        if isinstance(event, RunProgress):
            n, value = event.done + event.failed, rss()
            with lock:
                samples.append((n, value))
            if args.report_every and n >= reported[0] + args.report_every:
                reported[0] = n - n % args.report_every
                print(f"  {n} images: RSS {value / MB:.0f} MB [{time.perf_counter() - t:.0f} s]",
                      flush=True)

    start_rss = rss()
    t = time.perf_counter()
    summary = engine.run(on_event)
    elapsed = time.perf_counter() - t
    end_rss = rss()
    warm = next((r for n, r in samples if n >= args.warm), samples[0][1])
    peak = max(r for _, r in samples)
    print(f"{summary.done} images done, {summary.failed} failed, {summary.detections} "
          f"detections ({args.side or 'full'} px copies, models: {spec.display_name}) in "
          f"{elapsed:.0f} s ({summary.images_per_s:.2f} images/s)")
    print(f"RSS before run {start_rss / MB:.0f} MB; after {args.warm} images {warm / MB:.0f} MB; "
          f"at the end {end_rss / MB:.0f} MB; peak {peak / MB:.0f} MB")
    print(f"growth from image {args.warm} to image {summary.done}: {(end_rss - warm) / MB:+.1f} MB")
    late = [(n, r) for n, r in samples if n >= args.warm]
    if len(late) >= 3 and late[-1][0] > late[0][0]:
        import numpy as np

        slope = np.polyfit([n for n, _ in late], [r / MB for _, r in late], 1)[0]
        print(f"fitted growth after image {args.warm}: {slope * 1000:+.1f} MB per 1,000 images")
    marks = [samples[int(i * (len(samples) - 1) / 10)] for i in range(11)]
    print("RSS by images done: " + ", ".join(f"{n}:{r / MB:.0f}" for n, r in marks))
    db.close()


if __name__ == "__main__":
    main()
