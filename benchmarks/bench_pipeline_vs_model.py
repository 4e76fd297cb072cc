"""`trapgui process` end to end against the bare models' time for the same boxes, in one run.

Models: the realistic benchmark weights (--weights, made with ../shared/bench-weights/) of
MobileNet Faster R-CNN 2023 + moth/non-moth ResNet-50 + Quebec-Vermont timm ResNet-50,
installed in a fresh data folder with the shipped settings (only the three models and the
device chosen). Images: --images copies of the shared 4096x2160 trap images.

1. First use: one `trapgui process` that also measures the batch sizes (reported apart).
2. The boxes: what that run stored and classified (read from its catalogue).
3. Rounds, alternating:
   - bare: only the models' forward passes on inputs prepared beforehand: the detector as
     its publisher calls it (``model([float image])``: torchvision's transform inside), on
     the same images in batches of the measured size; the binary classifier on exactly the
     crops the run classified with it, the species classifier on exactly its crops, in
     sub-batches of the measured sizes. Decoding, float conversion and cropping are
     excluded. Run on a worker thread with the engine's torch thread count.
   - pipeline: `trapgui process FOLDER --requeue` in a new process: interpreter and torch
     start-up, scan, queue, model loading, decoding, detection, crops, classifiers, database
     writes, all of it (wall time of the process).
   - bare start-up: a new process that only imports torch and torchvision and loads the three
     models (the least any program doing this work pays before its first forward pass;
     imported the way trapgui imports them, so the bare side gets trapgui's faster start).
   Two ratios: pipeline / bare forward passes, and pipeline / (bare start-up + bare forward
   passes), the same work from a cold process on both sides.

    .venv/bin/python benchmarks/bench_pipeline_vs_model.py [--weights DIR] [--images 20]
        [--rounds 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import trapgui  # noqa: E402,F401  (first: the bare models get the thread policy trapgui sets)
import torch  # noqa: E402
from sqlalchemy import select  # noqa: E402

from bench_weights import (BINARY, DETECTOR, SPECIES, app_env, copy_trap,  # noqa: E402
                           load_average, set_up_app, trapgui_process)
from trapgui.db import open_database  # noqa: E402
from trapgui.db.tables import Classification, Detection, Image  # noqa: E402
from trapgui.ml import registry  # noqa: E402
from trapgui.ml.crops import stack_crops  # noqa: E402
from trapgui.ml.devices import resolve_devices  # noqa: E402
from trapgui.ml.store import ModelStore  # noqa: E402
from trapgui.pipeline.batch_size_cache import BatchSizeCache  # noqa: E402
from trapgui.pipeline.batch_tuning import cache_key, device_identity  # noqa: E402
from trapgui.pipeline.loader import decode_image  # noqa: E402

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent.parent / "bench-weights"


def stored_boxes(db_path: Path):
    """Per image path: (all stored boxes, binary-classified boxes, species-classified boxes)."""
    db = open_database(db_path)
    try:
        with db.session() as s:
            rows = s.execute(select(Image.rel_path, Detection.id, Detection.x1, Detection.y1,
                                    Detection.x2, Detection.y2, Detection.binary_label)
                             .join(Image, Image.id == Detection.image_id)
                             .order_by(Image.rel_path, Detection.id)).all()
            species = set(s.execute(select(Classification.detection_id)
                                    .where(Classification.model == SPECIES)).scalars())
    finally:
        db.close()
    out: dict[str, tuple[list, list, list]] = {}
    for rel, det_id, *box, binary in rows:
        stored, binary_boxes, species_boxes = out.setdefault(rel, ([], [], []))
        stored.append(box)
        if binary is not None:
            binary_boxes.append(box)
        if det_id in species:
            species_boxes.append(box)
    return out


BARE_START_UP = """
import os, sys
from trapgui.ml import registry  # torch and torchvision, as trapgui imports them
from trapgui.ml.store import ModelStore
store = ModelStore(sys.argv[1])
for load, key in ((registry.load_detector, {det!r}), (registry.load_classifier, {binary!r}),
                  (registry.load_classifier, {species!r})):
    load(key, sys.argv[2], store)
sys.stdout.flush()
os._exit(0)
"""


def bare_start_up(root: Path, device: str) -> float:
    """Wall seconds of a new process that imports torch and torchvision and loads the models."""
    code = BARE_START_UP.format(det=DETECTOR, binary=BINARY, species=SPECIES)
    t = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, str(root / "data" / "models"), device],
                   env=app_env(root), check=True, capture_output=True)
    return time.perf_counter() - t


class Bare:
    """The models' forward passes only, on prepared inputs, with the run's batch sizes."""

    def __init__(self, store, device, threads, files):
        self.device, self.threads, self.files = device, threads, files
        self.detector = registry.load_detector(DETECTOR, device, store)
        self.binary = registry.load_classifier(BINARY, device, store)
        self.species = registry.load_classifier(SPECIES, device, store)
        self.images = [decode_image(i, str(f)).tensor for i, f in enumerate(files)]

    def prepare(self, boxes, sizes) -> None:
        """Crops of exactly the run's boxes, grouped by detection batch as the run groups them."""
        files = self.files
        self.det_batch, self.bin_batch, self.sp_batch = sizes
        info = self.binary.info
        self.crops = []  # per detection batch: (binary crops, species crops)
        for start in range(0, len(files), self.det_batch):
            part = range(start, min(start + self.det_batch, len(files)))
            cut = []
            for k in (1, 2):
                cut.append(stack_crops(
                    [self.images[i] for i in part],
                    [torch.tensor(boxes[files[i].name][k], dtype=torch.float32).reshape(-1, 4)
                     for i in part], info.input_size, info.resize_mode, info.mean,
                    info.std).crops)
            self.crops.append(tuple(cut))

    def run(self) -> dict[str, float]:
        out = []
        worker = threading.Thread(target=lambda: out.append(self._forwards()))
        worker.start()
        worker.join()
        return out[0]

    def _forwards(self) -> dict[str, float]:
        if self.threads:
            torch.set_num_threads(self.threads)
        times = {"detector": 0.0, "binary": 0.0, "species": 0.0}
        with torch.inference_mode():
            for k, start in enumerate(range(0, len(self.images), self.det_batch)):
                batch = [x.to(self.device).float().div_(255.0)
                         for x in self.images[start:start + self.det_batch]]
                t = time.perf_counter()
                self.detector.model(batch)  # the publisher's call: its transform inside
                times["detector"] += time.perf_counter() - t
                del batch
                for name, clf, crops, n in (("binary", self.binary, self.crops[k][0], self.bin_batch),
                                            ("species", self.species, self.crops[k][1], self.sp_batch)):
                    t = time.perf_counter()
                    for c in range(0, len(crops), n):
                        clf.predict(crops[c:c + n])
                    times[name] += time.perf_counter() - t
        times["total"] = sum(times.values())
        return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS),
                    help="folder of the benchmark weights (default: %(default)s)")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="trapgui-bench-"))
    try:
        run(args, root)
    finally:
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args, root: Path) -> None:
    print(f"load average at start: {load_average()}")
    set_up_app(root, args.weights, device=args.device)
    files = copy_trap(root / "trap", args.images)
    first, output = trapgui_process(root, root / "trap")
    print(f"first use: `trapgui process` {first:.1f} s (includes measuring the batch sizes)")
    for line in output.splitlines():
        if "Batch sizes for" in line or "done" in line:
            print("  " + line.strip())
    boxes = stored_boxes(root / "data" / "trapgui.sqlite3")
    n_stored = sum(len(v[0]) for v in boxes.values())
    n_bin = sum(len(v[1]) for v in boxes.values())
    n_sp = sum(len(v[2]) for v in boxes.values())
    choice = resolve_devices(args.device)[0][0]
    identity = device_identity(choice.device, choice.threads)
    store = ModelStore(root / "data" / "models")
    cache = BatchSizeCache(root / "data" / "batch_sizes.json")
    bare = Bare(store, choice.device, choice.threads, files)
    sizes = []
    for model, role in ((bare.detector, "detection"), (bare.binary, "classification"),
                        (bare.species, "classification")):
        entry = cache.get(cache_key(identity, model, role))
        sizes.append(entry.batch_size if entry else {"detection": 4}.get(role, 64))
    bare.prepare(boxes, tuple(sizes))
    print(f"{len(files)} images 4096x2160; boxes stored {n_stored}, classified by the binary "
          f"model {n_bin}, by the species model {n_sp}; device {identity}; batch sizes "
          f"(measured): detector {sizes[0]}, binary {sizes[1]}, species {sizes[2]}")
    rows = []
    for r in range(args.rounds):
        start = bare_start_up(root, args.device)
        times = bare.run()
        wall, _ = trapgui_process(root, root / "trap", "--requeue")
        rows.append((times["total"], start, wall))
        print(f"round {r + 1}: bare models {times['total']:.1f} s (detector "
              f"{times['detector']:.1f}, binary {times['binary']:.1f}, species "
              f"{times['species']:.1f}), bare start-up {start:.1f} s; `trapgui process` "
              f"{wall:.1f} s -> {wall / times['total']:.3f}x the forward passes, "
              f"{wall / (start + times['total']):.3f}x start-up and forward passes  "
              f"[load {load_average()}]")
    n = len(rows)
    for label, ratios in (("bare forward passes", [w / b for b, _, w in rows]),
                          ("bare start-up + forward passes", [w / (b + s) for b, s, w in rows])):
        print(f"ratio pipeline / {label}: mean {sum(ratios) / n:.3f}x, "
              f"min {min(ratios):.3f}x, max {max(ratios):.3f}x over {n} rounds")
    print(f"per image: bare forward passes {sum(b for b, _, _ in rows) / n / len(files):.2f} s, "
          f"pipeline {sum(w for _, _, w in rows) / n / len(files):.2f} s; bare start-up "
          f"{sum(s for _, s, _ in rows) / n:.2f} s")
    check = stored_boxes(root / "data" / "trapgui.sqlite3")
    same = sum(len(v[1]) for v in check.values()) == n_bin and \
        sum(len(v[2]) for v in check.values()) == n_sp
    print("same boxes classified in every run: " + ("yes" if same else "NO"))


if __name__ == "__main__":
    main()
