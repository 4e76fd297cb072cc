"""What tracking adds to a full processing run: `Engine.run` with embeddings and the tracking
that ends the run, against the same run without either (goal: <= 5 % more), alternating in
one process so the machine's load falls on both alike.

    .venv/bin/python benchmarks/bench_process_tracking.py [--images 6] [--rounds 3]
        [--models builtin|classifier|both] [--weights /work/wt/bench-weights] [--device cpu]

- builtin: the built-in detector alone (the offline default): embeddings are the appearance
  descriptor of 64-px crops cut for it.
- classifier: the Faster R-CNN MobileNetV3 2023 detector and the moth/non-moth ResNet-50 from
  ``--weights`` (the performance engineer's realistic benchmark weights, see its README.txt);
  embeddings are the binary model's penultimate features from its one forward.
Images: full-resolution copies of the shared trap photos (sequential, vermont, panama,
cycled). Each round processes every image again (requeue) into its own catalogue per variant;
the wall time of `Engine.run` includes the final tracking and its write.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trapgui.db import open_database  # noqa: E402
from trapgui.ml.store import ModelStore  # noqa: E402
from trapgui.pipeline.engine import Engine  # noqa: E402
from trapgui.pipeline.spec import PipelineSpec  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402

SHARED = REPO.parent / "shared" / "trap-images"
WEIGHTS = {
    "fasterrcnn_mobilenet_v3_2023": ("fasterrcnn_mobilenet_v3_large_fpn_uqfh7u9w.pt", None),
    "moth_binary_resnet50_2024": ("moth-nonmoth_resnet50_20240417_b4fe3efe.pth",
                                  "05-moth-nonmoth_category_map.json"),
}


def folder_of(n: int, tmp: Path) -> Path:
    files = [f for d in ("sequential", "vermont", "panama") for f in sorted((SHARED / d).glob("*.jpg"))]
    out = tmp / "trap"
    out.mkdir()
    for i in range(n):
        src = files[i % len(files)]
        shutil.copy2(src, out / f"{i:03d}-{src.name}")
    return out


def run_once(db, store, spec, deployment_id: int, device: str, track: bool) -> tuple[float, int]:
    engine = Engine(db, store, spec, devices=device, track=track)
    engine.enqueue_deployment(deployment_id, requeue=True)
    start = time.perf_counter()
    summary = engine.run()
    wall = time.perf_counter() - start
    assert summary.status == "finished", summary
    occ = summary.tracking.occurrences if summary.tracking else 0
    return wall, occ


def bench(name: str, spec_kw: dict, store, folder: Path, tmp: Path, rounds: int, device: str) -> None:
    variants = {"with tracking": (PipelineSpec(**spec_kw), True),
                "without": (PipelineSpec(**spec_kw, embeddings=False), False)}
    dbs = {}
    for label in variants:
        db = open_database(tmp / f"{name}-{label.replace(' ', '-')}.sqlite3")
        dbs[label] = (db, scan_folder(db, folder).deployment_id)
    # warm-up (model loading, first-call allocations), not counted
    for label, (spec, track) in variants.items():
        run_once(dbs[label][0], store, spec, dbs[label][1], device, track)
    times: dict[str, list[float]] = {label: [] for label in variants}
    occurrences = 0
    for r in range(rounds):
        order = list(variants) if r % 2 == 0 else list(reversed(variants))
        for label in order:
            spec, track = variants[label]
            wall, occ = run_once(dbs[label][0], store, spec, dbs[label][1], device, track)
            times[label].append(wall)
            occurrences = occ or occurrences
    with_t, without = statistics.median(times["with tracking"]), statistics.median(times["without"])
    ratios = [a / b for a, b in zip(times["with tracking"], times["without"])]
    print(f"{name}: {len(list(folder.glob('*.jpg')))} images, {rounds} rounds alternating: "
          f"with embeddings + tracking median {with_t:.2f} s, without {without:.2f} s -> "
          f"+{100 * (with_t / without - 1):.1f} % (per-round ratios "
          f"{', '.join(f'{x:.3f}' for x in ratios)}); {occurrences} occurrences")
    print(f"  rounds with: {', '.join(f'{t:.2f}' for t in times['with tracking'])}; "
          f"without: {', '.join(f'{t:.2f}' for t in times['without'])}")
    for db, _ in dbs.values():
        db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--models", choices=("builtin", "classifier", "both"), default="both")
    parser.add_argument("--weights", type=Path, default=REPO.parent / "bench-weights")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as name:
        tmp = Path(name)
        folder = folder_of(args.images, tmp)
        store = ModelStore(tmp / "models")
        if args.models in ("builtin", "both"):
            bench("builtin detector (descriptor)", dict(detector="builtin"), store, folder, tmp,
                  args.rounds, args.device)
        if args.models in ("classifier", "both"):
            if not (args.weights / WEIGHTS["moth_binary_resnet50_2024"][0]).is_file():
                print(f"classifier: no benchmark weights in {args.weights}; skipped")
                return
            for key, (weights, labels) in WEIGHTS.items():
                store.import_file(key, args.weights / weights,
                                  args.weights / labels if labels else None)
            bench("Faster R-CNN + moth/non-moth ResNet-50 (features)",
                  dict(detector="fasterrcnn_mobilenet_v3_2023", binary="moth_binary_resnet50_2024"),
                  store, folder, tmp, args.rounds, args.device)


if __name__ == "__main__":
    main()
