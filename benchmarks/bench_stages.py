"""Where the time of a run goes, stage by stage, next to the bare model's figure for the stage.

Same set-up as bench_pipeline_vs_model.py (realistic benchmark weights of MobileNet Faster
R-CNN 2023 + moth/non-moth ResNet-50 + Quebec-Vermont timm ResNet-50, shipped settings,
--images copies of the 4096x2160 trap images, batch sizes measured on first use). Then, in
this process and in alternating rounds:

- pipeline: ``Engine.run`` with ``profile=True`` (each stage timed on the thread that runs
  it): waiting for decoded images, detector (trapgui's input preparation + forward), crops,
  each classifier, writes (writer thread); plus decoding itself (decode threads, measured
  apart on the same files) and the start-up a `trapgui process` adds (imports, model
  loading: measured in a new process);
- bare: the same stage with nothing around it: the detector as its publisher calls it
  (``model([float image])``), each classifier on exactly the run's crops.

    .venv/bin/python benchmarks/bench_stages.py [--weights DIR] [--images 12] [--rounds 2]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_pipeline_vs_model import DEFAULT_WEIGHTS, Bare, stored_boxes  # noqa: E402
from bench_weights import (BINARY, DETECTOR, SPECIES, app_env, copy_trap,  # noqa: E402
                           load_average, set_up_app, trapgui_process)
from trapgui.db import open_database  # noqa: E402
from trapgui.ml.devices import resolve_devices  # noqa: E402
from trapgui.ml.store import ModelStore  # noqa: E402
from trapgui.pipeline.batch_size_cache import BatchSizeCache  # noqa: E402
from trapgui.pipeline.batch_tuning import cache_key, device_identity  # noqa: E402
from trapgui.pipeline.engine import Engine  # noqa: E402
from trapgui.pipeline.loader import decode_image  # noqa: E402
from trapgui.pipeline.spec import PipelineSpec  # noqa: E402
from trapgui.config.settings import load_settings  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402

STARTUP = """
import time, sys
t0 = time.perf_counter()
from trapgui.ml import registry  # first, as trapgui does: torchvision without torch._dynamo
import torch, torchvision
t1 = time.perf_counter()
from trapgui.ml.store import ModelStore
store = ModelStore(sys.argv[1])
registry.load_detector({det!r}, "cpu", store)
registry.load_classifier({binary!r}, "cpu", store)
registry.load_classifier({species!r}, "cpu", store)
t2 = time.perf_counter()
print(t1 - t0, t2 - t1)
sys.stdout.flush()
import os
os._exit(0)  # as `trapgui` leaves: no teardown of torch in the interpreter figure
"""


def startup(root: Path) -> tuple[float, float, float]:
    """(interpreter, imports (torch, torchvision, trapgui's ml), loading the three models)."""
    code = STARTUP.format(det=DETECTOR, binary=BINARY, species=SPECIES)
    t = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code, str(root / "data" / "models")],
                         env=app_env(root), capture_output=True, text=True, check=True)
    wall = time.perf_counter() - t
    imports, models = (float(x) for x in out.stdout.split())
    return wall - imports - models, imports, models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="trapgui-stages-"))
    try:
        run(args, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(args, root: Path) -> None:
    print(f"load average at start: {load_average()}")
    set_up_app(root, args.weights, device="cpu")
    files = copy_trap(root / "trap", args.images)
    first, _ = trapgui_process(root, root / "trap")  # first use: measures the batch sizes
    print(f"first `trapgui process` (measures batch sizes): {first:.1f} s")
    boxes = stored_boxes(root / "data" / "trapgui.sqlite3")
    choice = resolve_devices("cpu")[0][0]
    identity = device_identity(choice.device, choice.threads)
    cache = BatchSizeCache(root / "data" / "batch_sizes.json")
    store = ModelStore(root / "data" / "models")
    bare = Bare(store, choice.device, choice.threads, files)
    sizes = tuple(cache.get(cache_key(identity, m, role)).batch_size for m, role in (
        (bare.detector, "detection"), (bare.binary, "classification"),
        (bare.species, "classification")))
    bare.prepare(boxes, sizes)
    n_bin = sum(len(v[1]) for v in boxes.values())
    n_sp = sum(len(v[2]) for v in boxes.values())
    print(f"{len(files)} images; {n_bin} crops for {BINARY}, {n_sp} for {SPECIES}; "
          f"batch sizes {sizes}; {identity}")

    db = open_database(root / "catalogue.sqlite3")
    dep = scan_folder(db, root / "trap").deployment_id
    spec = PipelineSpec.from_settings(load_settings(root / "config" / "settings.json"))
    engine = Engine(db, store, spec, devices="cpu", batch_size_cache=cache, profile=True)
    totals: dict[str, list[float]] = {}
    for r in range(args.rounds):
        b = bare.run()
        engine.enqueue_deployment(dep, requeue=True)
        t = time.perf_counter()
        summary = engine.run()
        wall = time.perf_counter() - t
        assert summary.done == len(files), summary
        stages = dict(engine.stage_seconds)
        t = time.perf_counter()
        for f in files:
            decode_image(0, str(f))
        stages["decode (decode threads)"] = time.perf_counter() - t
        stages["engine run, wall"] = wall
        for k, v in stages.items():
            totals.setdefault(k, []).append(v)
        for k in ("detector", "binary", "species", "total"):
            totals.setdefault(f"bare {k}", []).append(b[k])
        print(f"round {r + 1}: engine {wall:.1f} s, bare models {b['total']:.1f} s "
              f"[load {load_average()}]")
    db.close()
    interp, imports, models = startup(root)

    def mean(key):
        values = totals.get(key) or [0.0]
        return sum(values) / len(values)

    n = len(files)
    rows = [
        ("decode (on decode threads)", mean("decode (decode threads)"), None),
        ("  device waiting for decoded images", mean("waiting for decoded images"), None),
        ("detector", mean("detector"), mean("bare detector")),
        ("crops", mean("crops"), None),
        (f"classifier {BINARY}", mean(f"classifier {BINARY}"), mean("bare binary")),
        (f"classifier {SPECIES}", mean(f"classifier {SPECIES}"), mean("bare species")),
        ("writes (writer thread)", mean("writes"), None),
    ]
    print(f"\nper stage, mean of {args.rounds} rounds, {n} images (seconds; per image in "
          "brackets):")
    print(f"{'stage':44s} {'pipeline':>16s} {'bare model':>16s} {'ratio':>7s}")
    for name, p, b in rows:
        ratio = f"{p / b:.3f}" if b else "-"
        bare_text = f"{b:7.2f} ({b / n:.3f})" if b is not None else f"{'-':>16s}"
        print(f"{name:44s} {p:7.2f} ({p / n:.3f}) {bare_text} {ratio:>7s}")
    device = sum(mean(k) for k in ("detector", "crops", f"classifier {BINARY}",
                                   f"classifier {SPECIES}"))
    print(f"{'device stages together':44s} {device:7.2f} ({device / n:.3f}) "
          f"{mean('bare total'):7.2f} ({mean('bare total') / n:.3f}) "
          f"{device / mean('bare total'):7.3f}")
    print(f"{'engine run (wall, in-process)':44s} {mean('engine run, wall'):7.2f} "
          f"({mean('engine run, wall') / n:.3f})")
    print(f"start-up of a new process: interpreter {interp:.2f} s, imports (torch, "
          f"torchvision, trapgui.ml) {imports:.2f} s, loading the three models {models:.2f} s")
    print(f"load average at end: {load_average()}")


if __name__ == "__main__":
    main()
