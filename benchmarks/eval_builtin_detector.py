"""Precision, recall, calibration and speed of the built-in detector on hand-labelled photos.

    .venv/bin/python benchmarks/eval_builtin_detector.py [--split held-out|tune|all]
        [--sets photos,synthetic] [--baseline REV] [--threads 2] [--json OUT]

Scoring is point-in-box against tests/data/detector-labels (see benchmarks/detector_scoring.py):
a box is a true positive when it holds a labelled insect no better box has claimed, boxes that
hold only "unsure" specks are ignored, a labelled insect without a box is a miss. Printed per
image and overall at the detector's keep threshold, as a precision/recall table over thresholds,
the best precision at recall >= 0.95, a reliability table with the Brier score, false boxes per
kind of synthetic hard negative (benchmarks/synthetic_hard_negatives.py), and detection time per
4096x2160 image.

--baseline REV loads the detector of that git revision (trapgui/ml of REV, read with `git show`,
nothing checked out) and runs it on the same images in the same process, alternating image by
image with the current code, so before/after figures and the time ratio share one machine state.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_scoring import (  # noqa: E402
    BIG_INSECT,
    HELD_OUT_PHOTOS,
    NOT_SHEETS,
    TUNE_PHOTOS,
    ImageScore,
    Labels,
    load_labels,
    operating_point,
    pr_table,
    reliability,
    score_image,
    training_targets,
)
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402

SHARED = REPO.parent / "shared" / "trap-images"
DETECTOR_MODULES = (
    "base", "builtin_detector", "components", "insect_splitting", "morphology",
    "sheet_foreground", "box_features", "box_score", "sheet_artefacts", "box_cleanup",
)
THRESHOLDS = np.round(np.arange(0.05, 1.0, 0.05), 2)
FOUR_K = (2160, 4096)


def load_baseline(rev: str):
    """The BuiltinDetector class of git revision `rev`, imported from a temporary package."""
    root = Path(tempfile.mkdtemp(prefix="trapgui-baseline-"))
    atexit.register(shutil.rmtree, root, True)  # imported by then; nothing reads it again
    package = "baseline_ml_" + "".join(c for c in rev if c.isalnum())
    (root / package).mkdir()
    (root / package / "__init__.py").write_text("")
    present = []
    for name in DETECTOR_MODULES:
        show = subprocess.run(
            ["git", "show", f"{rev}:trapgui/ml/{name}.py"], cwd=REPO, capture_output=True, text=True
        )
        if show.returncode == 0:
            present.append((name, show.stdout))
    if not any(name == "builtin_detector" for name, _ in present):
        sys.exit(f"revision {rev} has no trapgui/ml/builtin_detector.py")
    for name, text in present:
        for other, _ in present:
            text = text.replace(f"trapgui.ml.{other} ", f"{package}.{other} ")
            text = text.replace(f"trapgui.ml.{other}\n", f"{package}.{other}\n")
        (root / package / f"{name}.py").write_text(text)
    sys.path.insert(0, str(root))
    return importlib.import_module(f"{package}.builtin_detector").BuiltinDetector


@dataclass
class Item:
    name: str
    image: np.ndarray  # uint8 (H, W, 3)
    labels: Labels
    group: str  # "photos" | "synthetic" | "not a sheet"
    negatives: list = field(default_factory=list)
    pasted: list = field(default_factory=list)


def photo_items(split: str, labels: dict[str, Labels]) -> list[Item]:
    names = {"tune": TUNE_PHOTOS, "held-out": HELD_OUT_PHOTOS}.get(split, TUNE_PHOTOS + HELD_OUT_PHOTOS)
    items = []
    for rel in list(names) + list(NOT_SHEETS):
        with Image.open(SHARED / rel) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        group = "not a sheet" if rel in NOT_SHEETS else "photos"
        items.append(Item(rel, rgb, labels[rel], group))
    return items


def synthetic_items(split: str) -> list[Item]:
    from benchmarks.synthetic_hard_negatives import generate

    splits = ["tune", "held-out"] if split == "all" else [split]
    return [
        Item(s.name, s.image, s.labels, "synthetic", s.negatives, s.pasted)
        for sp in splits
        for s in generate(sp)
    ]


class Runner:
    """Runs detectors in one worker thread (the engine's set-up: a worker thread's OpenMP pool
    behaves, the main thread's is oversubscribed on a loaded CPU) and times each call."""

    def __init__(self, threads: int, explain: bool):
        self.threads = threads
        # explain() also measures every candidate below min_score; only --json needs that, and
        # timing it against the baseline's plain detect() would not compare like with like.
        self.explain = explain

    def run(self, detector, tensor: torch.Tensor) -> tuple[object, float, object]:
        box = {}

        def work():
            torch.set_num_threads(self.threads)
            start = time.perf_counter()
            if self.explain and hasattr(detector, "explain"):
                explained = detector.explain([tensor])[0]
                box["out"] = explained.output
                box["features"] = explained
            else:
                box["out"] = detector.detect([tensor])[0]
            box["t"] = time.perf_counter() - start

        t = threading.Thread(target=work)
        t.start()
        t.join()
        return box["out"], box["t"], box.get("features")


def _fmt(v: float) -> str:
    return f"{v:5.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out", "all"), default="held-out")
    parser.add_argument("--sets", default="photos,synthetic")
    parser.add_argument("--baseline", default=None, help="git revision to compare against")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="write per-box records here")
    parser.add_argument("--min-recall", type=float, default=0.95)
    parser.add_argument("--param", action="append", default=[],
                        help="NAME=VALUE for the current detector (analysis), e.g. artefact_rules=0")
    args = parser.parse_args()

    labels = load_labels()
    sets = set(args.sets.split(","))
    items: list[Item] = []
    if "photos" in sets:
        items += photo_items(args.split, labels)
    if "synthetic" in sets:
        items += synthetic_items(args.split)

    overrides = dict(_parse_param(item) for item in args.param)
    detectors = {"new": BuiltinDetector(device="cpu", **overrides)}
    if args.baseline:
        detectors = {"base": load_baseline(args.baseline)(device="cpu"), **detectors}
    runner = Runner(args.threads, explain=args.json is not None)
    warm = torch.from_numpy(items[0].image.copy()).permute(2, 0, 1).float() / 255.0
    for det in detectors.values():
        runner.run(det, warm)  # first-call allocations

    results: dict[str, list] = {k: [] for k in detectors}
    times: dict[str, list[float]] = {k: [] for k in detectors}
    records = []
    order = list(detectors)
    for n, item in enumerate(items):
        tensor = torch.from_numpy(item.image.copy()).permute(2, 0, 1).float() / 255.0
        # Alternate which detector goes first so slow drifts of the machine hit both alike.
        for key in order if n % 2 == 0 else order[::-1]:
            out, seconds, explained = runner.run(detectors[key], tensor)
            boxes, scores = out.boxes.numpy(), out.scores.numpy()
            results[key].append((boxes, scores, item.labels))
            if tuple(item.image.shape[:2]) == FOUR_K:
                times[key].append(seconds)
            if key == "new" and args.json is not None and explained is not None:
                all_boxes = explained.all_boxes.numpy()
                records.append({
                    "image": item.name, "group": item.group,
                    "boxes": all_boxes.round(1).tolist(),
                    "scores": explained.all_scores.numpy().round(5).tolist(),
                    "targets": training_targets(all_boxes, item.labels).tolist(),
                    "feature_names": list(explained.feature_names),
                    "features": explained.all_features.numpy().round(6).tolist(),
                    "negatives": [[n.kind, n.style, list(map(float, n.box))] for n in item.negatives],
                    "pasted": [[kind, list(map(float, box))] for kind, box in item.pasted],
                })
        print(f"  [{n + 1}/{len(items)}] {item.name}", file=sys.stderr, flush=True)

    threshold = detectors["new"].score_threshold
    print(f"built-in detector evaluation: split {args.split}, sets {args.sets}, keep threshold "
          f"{threshold:.2f}, {args.threads} torch threads, cpu")
    groups = sorted({i.group for i in items}, key=["photos", "synthetic", "not a sheet"].index)
    for group in groups:
        idx = [i for i, item in enumerate(items) if item.group == group]
        print(f"\n== {group} ({len(idx)} images, "
              f"{sum(len(items[i].labels.insects) for i in idx)} labelled insects) ==")
        head = f"{'image':58s} {'ins':>4s}"
        for key in detectors:
            head += f" | {key + ' boxes':>9s} {'TP':>4s} {'FP':>4s} {'ign':>4s} {'miss':>4s}"
        print(head)
        totals = {k: ImageScore() for k in detectors}
        for i in idx:
            line = f"{items[i].name[:58]:58s} {len(items[i].labels.insects):4d}"
            for key in detectors:
                boxes, scores, lab = results[key][i]
                s = score_image(boxes, scores, lab, threshold)
                totals[key] += s
                line += (f" | {int((scores >= threshold).sum()):9d} {s.tp:4d} {s.fp:4d}"
                         f" {s.ignored:4d} {s.missed:4d}")
            print(line)
        for key in detectors:
            t = totals[key]
            print(f"  {key:4s} at {threshold:.2f}: precision {_fmt(t.precision)}  recall "
                  f"{_fmt(t.recall)}  (TP {t.tp}, FP {t.fp}, ignored {t.ignored}, missed "
                  f"{t.missed} of {t.insects}); recall of insects >= {BIG_INSECT} px "
                  f"{_fmt(t.big_recall)} ({t.big_found} of {t.big})")
        if group == "not a sheet":
            continue
        per = {k: [results[k][i] for i in idx] for k in detectors}
        tables = {k: pr_table(per[k], THRESHOLDS) for k in detectors}
        print("  threshold " + " ".join(
            f"| {k:>4s} prec recall r>={BIG_INSECT}px boxes" for k in detectors))
        for row in range(len(THRESHOLDS)):
            line = f"  {THRESHOLDS[row]:9.2f} "
            for key in detectors:
                t, s = tables[key][row]
                line += (f"| {'':4s} {_fmt(s.precision)} {_fmt(s.recall)} {_fmt(s.big_recall):>9s}"
                         f" {s.tp + s.fp:5d} ")
            print(line)
        for key in detectors:
            op = operating_point(tables[key], args.min_recall)
            if op is None:
                best = max(s.recall for _, s in tables[key])
                print(f"  {key}: recall {args.min_recall} is not reached at any threshold "
                      f"(highest recall {_fmt(best)})")
            else:
                t, s = op
                print(f"  {key}: best precision at recall >= {args.min_recall}: {_fmt(s.precision)}"
                      f" at threshold {t:.2f} (recall {_fmt(s.recall)})")
            big_rows = [(t, s) for t, s in tables[key] if s.big_recall >= args.min_recall]
            if big_rows:
                t, s = max(big_rows, key=lambda r: (r[1].precision, r[0]))
                print(f"  {key}: best precision at recall >= {args.min_recall} of insects >= "
                      f"{BIG_INSECT} px: {_fmt(s.precision)} at threshold {t:.2f} (recall of "
                      f"those {_fmt(s.big_recall)}, of all {_fmt(s.recall)})")
            else:
                print(f"  {key}: recall {args.min_recall} of insects >= {BIG_INSECT} px is not "
                      f"reached at any threshold")
        for key in detectors:
            scores = np.concatenate([r[1] for r in per[key]]) if per[key] else np.zeros(0)
            targets = np.concatenate([training_targets(r[0], r[2]) for r in per[key]])
            edges = np.linspace(0, 1, 11)
            rows, brier = reliability(scores, targets, edges)
            print(f"  reliability of {key} scores (boxes with only unsure specks left out):")
            print("    score bin    boxes  mean score  insects")
            for lo, hi, count, mean, frac in rows:
                if count:
                    print(f"    {lo:.1f}-{hi:.1f} {count:9d} {mean:11.3f} {frac:8.3f}")
            print(f"    Brier score {brier:.4f} over {int((targets >= 0).sum())} boxes")
        if group == "synthetic":
            _report_kinds([items[i] for i in idx], {k: [results[k][i] for i in idx] for k in detectors}, threshold)

    print("\n== detection time per 4096x2160 image (decode excluded) ==")
    for key in detectors:
        if times[key]:
            print(f"  {key:4s}: mean {1000 * np.mean(times[key]):7.0f} ms, median "
                  f"{1000 * np.median(times[key]):7.0f} ms over {len(times[key])} images")
    if "base" in times and times["base"]:
        ratio = np.array(times["new"]) / np.array(times["base"])
        print(f"  new / base time: mean of per-image ratios {ratio.mean():.3f}, ratio of medians "
              f"{np.median(times['new']) / np.median(times['base']):.3f}")
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(records))
        print(f"per-box records: {args.json}")


def _parse_param(text: str) -> tuple[str, object]:
    """NAME=VALUE with VALUE converted to the type of the parameter's default."""
    name, value = text.split("=", 1)
    params = BuiltinDetector().params
    for holder in (params, params.sheet, params.artefacts):
        if hasattr(holder, name):
            default = getattr(holder, name)
            if isinstance(default, bool):
                return name, value.lower() in ("1", "true", "yes")
            if isinstance(default, tuple):
                return name, tuple(float(v) for v in value.split(","))
            return name, type(default)(value)
    sys.exit(f"unknown detector parameter {name}")


def _report_kinds(items: list[Item], results: dict[str, list], threshold: float) -> None:
    """For each kind of placed negative: how many have a kept box centred on them."""
    kinds: dict[str, dict[str, list[int]]] = {}
    for n, item in enumerate(items):
        for neg in item.negatives:
            x1, y1, x2, y2 = neg.box
            mx, my = 0.1 * (x2 - x1) + 4, 0.1 * (y2 - y1) + 4
            for key, per in results.items():
                boxes, scores, _ = per[n]
                kept = boxes[scores >= threshold]
                cx, cy = (kept[:, 0] + kept[:, 2]) / 2, (kept[:, 1] + kept[:, 3]) / 2
                hit = ((cx >= x1 - mx) & (cx <= x2 + mx) & (cy >= y1 - my) & (cy <= y2 + my)).sum()
                entry = kinds.setdefault(neg.kind, {}).setdefault(key, [0, 0, 0])
                entry[0] += 1
                entry[1] += int(hit > 0)
                entry[2] += int(hit)
    print(f"  placed hard negatives with a kept box on them (threshold {threshold:.2f}):")
    for kind, per in sorted(kinds.items()):
        line = f"    {kind:10s}"
        for key, (placed, boxed, count) in per.items():
            line += f" | {key}: {boxed:3d} of {placed:3d} boxed ({count} boxes)"
        print(line)
    # Pasted insects are the labels' last points, in the order of `pasted`.
    found: dict[str, dict[str, list[int]]] = {}
    for n, item in enumerate(items):
        first = len(item.labels.insects) - len(item.pasted)
        for key, per in results.items():
            boxes, scores, labels = per[n]
            claimed = score_image(boxes, scores, labels, threshold).claimed
            for k, (kind, _) in enumerate(item.pasted):
                entry = found.setdefault(kind, {}).setdefault(key, [0, 0])
                entry[0] += 1
                entry[1] += int(claimed[first + k])
    print(f"  pasted insects with a box of their own (threshold {threshold:.2f}):")
    for kind, per in sorted(found.items()):
        line = f"    {kind:17s}"
        for key, (pasted, claimed) in per.items():
            line += f" | {key}: {claimed:3d} of {pasted:3d}"
        print(line)


if __name__ == "__main__":
    main()
