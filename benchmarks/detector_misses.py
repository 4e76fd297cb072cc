"""Why the built-in detector misses the labelled insects it misses (a diagnostic to look at).

    .venv/bin/python benchmarks/detector_misses.py [--split tune] [--threshold 0.05]
        [--crops DIR] [--param NAME=VALUE ...]

For every labelled insect no box claims at the threshold (point-in-box scoring, as in
benchmarks/detector_scoring.py) it prints one line: "merged" (inside a box that claimed another
insect), "rejected: <rule>" (inside a region the rejection rules removed or a part merged into
a host), "low score" (inside a candidate box below the threshold) or "no box". With --crops,
an enlarged crop around each miss is written with the boxes drawn, for a person to look at.
Run it on the tuning split while changing the detector; the held-out split is for reporting.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_scoring import HELD_OUT_PHOTOS, TUNE_PHOTOS, load_labels  # noqa: E402
from benchmarks.eval_builtin_detector import SHARED, _parse_param  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402


def _inside(point, boxes: np.ndarray) -> np.ndarray:
    if len(boxes) == 0:
        return np.zeros(0, dtype=bool)
    return ((boxes[:, 0] <= point[0]) & (point[0] <= boxes[:, 2])
            & (boxes[:, 1] <= point[1]) & (point[1] <= boxes[:, 3]))


def claims(boxes: np.ndarray, scores: np.ndarray, insects: np.ndarray, threshold: float):
    """Per insect the index of the box that claims it (-1 none), as score_image decides."""
    owner = np.full(len(insects), -1)
    for i in np.argsort(-scores, kind="stable"):
        if scores[i] < threshold:
            continue
        box = boxes[i]
        free = np.flatnonzero((owner < 0) & np.array([_inside(p, box[None])[0] for p in insects],
                                                    dtype=bool))
        if len(free):
            centre = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2])
            d = np.linalg.norm(insects[free] - centre, axis=1)
            owner[free[int(np.argmin(d))]] = i
    return owner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out"), default="tune")
    parser.add_argument("--threshold", type=float, default=0.05)
    parser.add_argument("--crops", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--param", action="append", default=[])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = load_labels()
    detector = BuiltinDetector(device="cpu", **dict(_parse_param(p) for p in args.param))
    names = TUNE_PHOTOS if args.split == "tune" else HELD_OUT_PHOTOS
    kinds: Counter = Counter()
    if args.crops:
        args.crops.mkdir(parents=True, exist_ok=True)
    for name in names:
        with Image.open(SHARED / name) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.uint8)
        tensor = torch.from_numpy(rgb.copy()).permute(2, 0, 1).float() / 255.0
        ex = detector.explain([tensor])[0]
        boxes, scores = ex.all_boxes.numpy(), ex.all_scores.numpy()
        rejected = ex.rejected_boxes.numpy()
        lab = labels[name]
        owner = claims(boxes, scores, lab.insects, args.threshold)
        print(f"{name}: {len(lab.insects)} insects, {int((owner >= 0).sum())} claimed at "
              f"{args.threshold:.2f}, {int((scores >= args.threshold).sum())} boxes")
        for k in np.flatnonzero(owner < 0):
            p = lab.insects[k]
            ins = np.flatnonzero(_inside(p, boxes))
            above = [i for i in ins if scores[i] >= args.threshold]
            rej = np.flatnonzero(_inside(p, rejected))
            if above:
                kind = "merged"
            elif len(ins):
                kind = f"low score {max(scores[i] for i in ins):.3f}"
            elif len(rej):
                kind = "rejected: " + ex.rejected_reasons[int(rej[0])]
            else:
                kind = "no box"
            kinds[kind.split(" 0")[0]] += 1
            print(f"   ({p[0]:6.0f},{p[1]:6.0f}) size {lab.sizes[k]:4.0f}: {kind}")
            if args.crops:
                half = max(60, int(1.5 * lab.sizes[k]))
                x0, y0 = int(max(0, p[0] - half)), int(max(0, p[1] - half))
                crop = Image.fromarray(rgb[y0:int(p[1] + half), x0:int(p[0] + half)])
                zoom = max(1, 400 // max(crop.size))
                crop = crop.resize((crop.width * zoom, crop.height * zoom), Image.NEAREST)
                draw = ImageDraw.Draw(crop)
                for i, box in enumerate(boxes):
                    colour = (0, 200, 0) if scores[i] >= args.threshold else (255, 140, 0)
                    draw.rectangle([(box[0] - x0) * zoom, (box[1] - y0) * zoom,
                                    (box[2] - x0) * zoom, (box[3] - y0) * zoom],
                                   outline=colour, width=2)
                for box in rejected:
                    draw.rectangle([(box[0] - x0) * zoom, (box[1] - y0) * zoom,
                                    (box[2] - x0) * zoom, (box[3] - y0) * zoom],
                                   outline=(230, 0, 0), width=1)
                cx, cy = (p[0] - x0) * zoom, (p[1] - y0) * zoom
                draw.line([cx - 8, cy, cx + 8, cy], fill=(255, 0, 255), width=2)
                draw.line([cx, cy - 8, cx, cy + 8], fill=(255, 0, 255), width=2)
                stem = name.replace("/", "__").rsplit(".", 1)[0]
                crop.save(args.crops / f"{stem}-{int(p[0])}-{int(p[1])}.png")
    print("misses by kind:", dict(kinds))


if __name__ == "__main__":
    main()
