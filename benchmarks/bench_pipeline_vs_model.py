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
   - cold bare: the bare forward passes again, in a new process that first imports torch and
     torchvision and loads the three models (the least any program doing this work pays:
     imported the way trapgui imports them, so the bare side gets trapgui's faster start),
     its first forward passes cold as the pipeline's are; only reading the prepared inputs
     from a file is left out.
   Two ratios: pipeline / bare forward passes (warm, in this process), and pipeline / cold
   bare process: the same work from a new process on both sides.

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


def cold_bare(root: Path, device: str, threads: int) -> tuple[float, float]:
    """(wall seconds, of which the start-up) of the bare forward passes in a new process."""
    t = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--cold-bare", str(root), device,
                           str(threads), repr(time.time())], env=app_env(root), check=True,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t
    reading, start_up = (float(x) for x in done.stdout.split()[-2:])
    return wall - reading, start_up


def cold_bare_child(root: Path, device: str, threads: int, launched: float) -> None:
    """The new process of cold_bare: print seconds spent reading inputs, and the start-up
    (from its launch to the models loaded)."""
    import os

    store = ModelStore(root / "data" / "models")
    bare = Bare.__new__(Bare)
    bare.device, bare.threads = torch.device(device), threads
    bare.detector = registry.load_detector(DETECTOR, device, store)
    bare.binary = registry.load_classifier(BINARY, device, store)
    bare.species = registry.load_classifier(SPECIES, device, store)
    start_up = time.time() - launched
    t = time.perf_counter()
    saved = torch.load(root / "bare-inputs.pt", weights_only=True)
    bare.images, bare.crops = saved["images"], [tuple(c) for c in saved["crops"]]
    bare.det_batch, bare.bin_batch, bare.sp_batch = saved["sizes"]
    reading = time.perf_counter() - t
    bare.run()
    print(reading, start_up, flush=True)
    os._exit(0)


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

    def save(self, path: Path) -> None:
        """The prepared inputs, for the cold bare process."""
        torch.save({"images": self.images, "crops": [list(c) for c in self.crops],
                    "sizes": [self.det_batch, self.bin_batch, self.sp_batch]}, path)

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
    bare.save(root / "bare-inputs.pt")
    rows = []
    for r in range(args.rounds):
        times = bare.run()
        cold, start = cold_bare(root, args.device, choice.threads or 0)
        wall, _ = trapgui_process(root, root / "trap", "--requeue")
        rows.append((times["total"], cold, wall))
        print(f"round {r + 1}: bare models {times['total']:.1f} s (detector "
              f"{times['detector']:.1f}, binary {times['binary']:.1f}, species "
              f"{times['species']:.1f}); cold bare process {cold:.1f} s (start-up "
              f"{start:.1f} s); `trapgui process` {wall:.1f} s -> "
              f"{wall / times['total']:.3f}x the forward passes, {wall / cold:.3f}x the "
              f"cold bare process  [load {load_average()}]")
    n = len(rows)
    for label, ratios in (("bare forward passes", [w / b for b, _, w in rows]),
                          ("cold bare process", [w / c for _, c, w in rows])):
        print(f"ratio pipeline / {label}: mean {sum(ratios) / n:.3f}x, "
              f"min {min(ratios):.3f}x, max {max(ratios):.3f}x over {n} rounds")
    print(f"per image: bare forward passes {sum(b for b, _, _ in rows) / n / len(files):.2f} s, "
          f"cold bare process {sum(c for _, c, _ in rows) / n / len(files):.2f} s, "
          f"pipeline {sum(w for _, _, w in rows) / n / len(files):.2f} s")
    check = stored_boxes(root / "data" / "trapgui.sqlite3")
    same = sum(len(v[1]) for v in check.values()) == n_bin and \
        sum(len(v[2]) for v in check.values()) == n_sp
    print("same boxes classified in every run: " + ("yes" if same else "NO"))


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "--cold-bare":
        cold_bare_child(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
    else:
        main()
