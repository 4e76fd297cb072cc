"""Run the built-in detector on every shared trap image and save overlay PNGs to look at.

    .venv/bin/python benchmarks/detector_overlays.py [--images DIR] [--out DIR] [--device cpu]

Prints per-image box counts and detection time (ms/image, decode excluded). Overlays show each
box (green: score >= the detector's keep threshold, orange: below), its score, and the count in
the top-left corner, downscaled to 1600 px. With --rejected, regions the rejection rules removed
(printed mark, fixture, burnt-in text, stain) and parts merged into their insect's box are drawn
in red with the reason, so a person can see what the detector decided not to count and why.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402

OVERLAY_SIDE = 1600


def load(path: Path) -> torch.Tensor:
    with Image.open(path) as im:
        array = np.array(im.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array).permute(2, 0, 1).float().div_(255.0)


def draw_overlay(
    path: Path,
    boxes: torch.Tensor,
    scores: torch.Tensor,
    keep: float,
    out: Path,
    rejected: list[tuple[list[float], str]] = (),
) -> None:
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = min(1.0, OVERLAY_SIDE / max(im.size))
        im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
    draw = ImageDraw.Draw(im)
    for box, reason in rejected:
        x1, y1, x2, y2 = (v * scale for v in box)
        draw.rectangle((x1, y1, x2, y2), outline=(230, 0, 0), width=1)
        draw.text((x1 + 2, y2 + 1), reason, fill=(230, 0, 0))
    kept = 0
    for box, score in zip(boxes.tolist(), scores.tolist()):
        x1, y1, x2, y2 = (v * scale for v in box)
        colour = (0, 220, 0) if score >= keep else (255, 140, 0)
        kept += score >= keep
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=2)
        draw.text((x1 + 2, y1 + 1), f"{score:.2f}", fill=colour)
    label = f"{kept} kept / {len(scores)} boxes"
    draw.rectangle((0, 0, 8 + 7 * len(label), 18), fill=(0, 0, 0))
    draw.text((4, 3), label, fill=(255, 255, 0))
    out.parent.mkdir(parents=True, exist_ok=True)
    im.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=Path, default=REPO.parent / "shared" / "trap-images")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "out" / "overlays")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--match", default="", help="only images whose path contains this")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--rejected", action="store_true", help="draw what the rules removed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    detector = BuiltinDetector(device=args.device)
    suffixes = (".jpg", ".jpeg", ".png")
    paths = sorted(
        p for p in args.images.rglob("*") if p.suffix.lower() in suffixes and args.match in str(p)
    )
    if not paths:
        sys.exit(f"no images under {args.images}")
    detector.detect([load(paths[0]).to(detector.device)])  # warm-up: first-call allocations
    total_ms = 0.0
    print(f"{'image':60s} {'size':>10s} {'boxes':>5s} {'kept':>5s} {'ms':>7s}")
    for path in paths:
        image = load(path).to(detector.device)
        if detector.device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        explained = detector.explain([image])[0] if args.rejected else None
        result = explained.output if explained else detector.detect([image])[0]
        if detector.device.type == "cuda":
            torch.cuda.synchronize()
        ms = (time.perf_counter() - start) * 1000
        total_ms += ms
        name = f"{path.parent.name}_{path.stem}.png"
        boxes, scores = result.boxes.cpu(), result.scores.cpu()
        rejected = []
        if explained is not None:
            rejected = list(zip(explained.rejected_boxes.cpu().tolist(), explained.rejected_reasons))
        draw_overlay(path, boxes, scores, detector.score_threshold, args.out / name, rejected)
        kept = int((result.scores >= detector.score_threshold).sum())
        rel = str(path.relative_to(args.images))
        size = f"{image.shape[2]}x{image.shape[1]}"
        print(f"{rel:60s} {size:>10s} {len(result.scores):5d} {kept:5d} {ms:7.0f}")
    print(f"mean detection time: {total_ms / len(paths):.0f} ms/image on {detector.device} "
          f"(working side {detector.working_max_side}); overlays in {args.out}")


if __name__ == "__main__":
    main()
