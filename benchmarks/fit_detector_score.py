"""Fit the built-in detector's score model (trapgui/ml/box_score.py) on the tuning split.

    .venv/bin/python benchmarks/eval_builtin_detector.py --split tune --json OUT.json
    .venv/bin/python benchmarks/fit_detector_score.py OUT.json [--write]

Reads the per-box records the evaluation writes (every candidate box with its measurements and
its training target from benchmarks/detector_scoring.training_targets: insect, not an insect,
or don't-care), fits an L2-regularised logistic regression on standardised, clipped features by
Newton's method (float64 numpy; no extra dependency), chooses the regularisation by
leave-one-photo-out log-loss, prints the coefficients, and with --write replaces the fitted
block in trapgui/ml/box_score.py. Only ever run it on the tuning split: the held-out photos and
synthetics are for reporting.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trapgui.ml.box_features import FEATURE_NAMES  # noqa: E402

SCORE_FILE = REPO / "trapgui" / "ml" / "box_score.py"
# Every measurement but two. The darkest pixel is the strongest single separator on the tuning
# photos (their false boxes are faint grain, their insects dark somewhere); with it the model
# learnt that a flat pale insect seen by its colour alone (a pale buff or yellow moth) is a
# smudge, and mean contrast (darkness or colour distance) keeps the information without that
# bias. The darkness at the centroid is the fixture cue (a ring's or a dome's bright middle):
# a pale moth with a dark head has it too, and the fixture rule already uses it where it is
# safe (only on round, grey, dark regions).
EXCLUDED = ("dark_max", "centre")
USED = tuple(n for n in FEATURE_NAMES if n not in EXCLUDED)
LAMBDAS = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


def base_photo(name: str) -> str:
    """The labelled photo an image is (or was composited on): folds and duplicates follow it."""
    if not name.startswith("synthetic-"):
        return name
    stem = name.split("/", 1)[1].rsplit("-v", 1)[0]
    trap, rest = stem.split("-", 1)
    return f"{trap}/{rest}.jpg"


def _on_added(box, rec) -> bool:
    """Whether a box of a synthetic composite lies on something the generator added."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    added = [n[2] for n in rec.get("negatives", [])] + [p[1] for p in rec.get("pasted", [])]
    for x1, y1, x2, y2 in added:
        mx, my = 0.1 * (x2 - x1) + 4, 0.1 * (y2 - y1) + 4
        if x1 - mx <= cx <= x2 + mx and y1 - my <= cy <= y2 + my:
            return True
    return False


def load(paths: list[Path]) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Rows of every photo box, and of the boxes on added objects of synthetic composites (the
    rest of a composite repeats its base photo, which is already in)."""
    xs, ys, groups, names = [], [], [], []
    bases: list[str] = []
    for path in paths:
        for rec in json.loads(path.read_text()):
            if not rec["features"]:
                continue
            cols = [rec["feature_names"].index(n) for n in USED]
            f = np.asarray(rec["features"], dtype=np.float64)[:, cols]
            t = np.asarray(rec["targets"])
            keep = t >= 0
            if rec["image"].startswith("synthetic-"):
                keep &= np.array([_on_added(b, rec) for b in rec["boxes"]], dtype=bool)
            base = base_photo(rec["image"])
            if base not in bases:
                bases.append(base)
            xs.append(f[keep])
            ys.append(t[keep].astype(np.float64))
            groups += [bases.index(base)] * int(keep.sum())
            names.append(rec["image"])
    return np.concatenate(xs), np.concatenate(ys), np.asarray(groups), names


def fit_logistic(x: np.ndarray, y: np.ndarray, lam: float, iters: int = 50) -> np.ndarray:
    """Weights (bias first) of an L2-penalised logistic regression (bias not penalised)."""
    n, d = x.shape
    a = np.hstack([np.ones((n, 1)), x])
    w = np.zeros(d + 1)
    penalty = np.full(d + 1, lam)
    penalty[0] = 0.0
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(a @ w)))
        grad = a.T @ (p - y) + penalty * w
        hess = (a * (p * (1 - p))[:, None]).T @ a + np.diag(penalty) + 1e-9 * np.eye(d + 1)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-10:
            break
    return w


def log_loss(w: np.ndarray, x: np.ndarray, y: np.ndarray) -> float:
    z = w[0] + x @ w[1:]
    return float(np.mean(np.logaddexp(0, z) - y * z))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("records", type=Path, nargs="+")
    parser.add_argument("--write", action="store_true", help="update trapgui/ml/box_score.py")
    parser.add_argument("--calibrate", type=Path, nargs="+", default=None,
                        help="rules-on records of the tuning split: refit scale and offset")
    args = parser.parse_args()
    x, y, groups, names = load(args.records)
    if any("held-out" in n or n in _held_out() for n in names):
        sys.exit("these records include held-out images: fit on the tuning split only")
    low = np.percentile(x, 1, axis=0)
    high = np.percentile(x, 99, axis=0)
    xc = np.clip(x, low, high)
    mean = xc.mean(axis=0)
    scale = xc.std(axis=0)
    scale[scale < 1e-9] = 1.0
    xs = (xc - mean) / scale
    print(f"{len(y)} boxes from {len(names)} images: {int(y.sum())} insects, "
          f"{int((1 - y).sum())} not insects")
    best = None
    for lam in LAMBDAS:
        losses = []
        for g in np.unique(groups):
            train, test = groups != g, groups == g
            w = fit_logistic(xs[train], y[train], lam)
            losses.append(log_loss(w, xs[test], y[test]) * test.sum())
        loss = sum(losses) / len(y)
        print(f"  lambda {lam:5.1f}: leave-one-photo-out log-loss {loss:.4f}")
        if best is None or loss < best[1]:
            best = (lam, loss)
    lam = best[0]
    w = fit_logistic(xs, y, lam)
    print(f"chosen lambda {lam}; training log-loss {log_loss(w, xs, y):.4f}")
    for name, weight in sorted(zip(USED, w[1:]), key=lambda t: -abs(t[1])):
        print(f"  {name:16s} {weight:+.3f}")
    if args.calibrate:
        cx, cy, _, cnames = load(args.calibrate)
        if any(n in _held_out() or "held-out" in n for n in cnames):
            sys.exit("calibration records include held-out images")
        z = w[0] + ((np.clip(cx, low, high) - mean) / scale) @ w[1:]
        ab = fit_logistic(z[:, None], cy, 0.0)
        print(f"calibration on {len(cy)} rules-on boxes: logit -> {ab[1]:.4f} * logit "
              f"{ab[0]:+.4f}; log-loss {log_loss(np.array([0.0, 1.0]), z[:, None], cy):.4f} "
              f"-> {log_loss(ab, z[:, None], cy):.4f}")
        w = np.concatenate([[ab[1] * w[0] + ab[0]], ab[1] * w[1:]])
    block = _block(USED, mean, scale, low, high, w)
    print(block)
    if args.write:
        text = SCORE_FILE.read_text()
        pattern = re.compile(r"# --- fitted by .*?# --- end of fitted block ---\n", re.S)
        if not pattern.search(text):
            sys.exit(f"no fitted block in {SCORE_FILE}")
        SCORE_FILE.write_text(pattern.sub(lambda _: block, text))
        print(f"wrote {SCORE_FILE}")


def _held_out() -> set[str]:
    from benchmarks.detector_scoring import HELD_OUT_PHOTOS

    return set(HELD_OUT_PHOTOS)


def _block(names, mean, scale, low, high, w) -> str:
    def tup(values, fmt="{:.6g}"):
        return "(" + ", ".join(fmt.format(v) for v in values) + ("," if len(values) == 1 else "") + ")"

    return (
        "# --- fitted by benchmarks/fit_detector_score.py (do not edit by hand) ---\n"
        f"SCORE_FEATURES = {tup(names, '{!r}')}\n"
        f"SCORE_CLIP_LOW = {tup(low)}\n"
        f"SCORE_CLIP_HIGH = {tup(high)}\n"
        f"SCORE_MEAN = {tup(mean)}\n"
        f"SCORE_SCALE = {tup(scale)}\n"
        f"SCORE_WEIGHTS = {tup(w[1:])}\n"
        f"SCORE_BIAS = {w[0]:.6g}\n"
        "# --- end of fitted block ---\n"
    )


if __name__ == "__main__":
    main()
