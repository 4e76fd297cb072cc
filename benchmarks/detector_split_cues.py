"""Would a split by appearance separate merged insects without cutting single ones? (a probe)

    .venv/bin/python benchmarks/detector_split_cues.py [--split tune] [--min-area 300]

Most insects the built-in detector misses lie in one region with a neighbour of another look (a
dark moth against a pale or orange one: docs/builtin-detector.md, "Why an insect is missed").
This probe takes the detector's regions after its own splitting, and in every region of at
least --min-area working pixels divides the pixels into two groups by darkness and colour
distance from the sheet (2-means), keeps the largest connected part of each group (after an
opening), and measures: the smaller part's share of the region, the contact between the two
parts over the smaller part's outline (two insects side by side touch along a short stretch; a
moth's dark body is wrapped in its wings), and how far apart the two groups' means are. It then
counts, for a grid of limits, how many regions the split would cut that hold two labelled
insects in different parts ("right") and how many it would cut that hold one insect or none
("wrong"). Nothing here changes the detector.

    .venv/bin/python benchmarks/detector_split_cues.py --evaluate 0.15,0.4,0.5 [eval args]

runs benchmarks/eval_builtin_detector.py (its arguments follow) with that cut (share, contact,
separation) applied to the detector's regions in this process, so the rest of the detector
(rules, the part rule, the score, the nested-box merge) decides what the cut pieces become.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_scoring import HELD_OUT_PHOTOS, TUNE_PHOTOS, load_labels  # noqa: E402
from benchmarks.eval_builtin_detector import SHARED  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402
from trapgui.ml.components import label_components  # noqa: E402
from trapgui.ml.insect_splitting import split_touching  # noqa: E402
from trapgui.ml.morphology import binary_close, binary_open  # noqa: E402
from trapgui.ml.sheet_foreground import measure_foreground  # noqa: E402

FOUR = ndimage.generate_binary_structure(2, 1)


def regions(detector: BuiltinDetector, path: Path):
    """Working-size image's region labels (as `_detect_working` makes them), darkness, chroma
    and the working scale."""
    p = detector.params
    with Image.open(path) as im:
        rgb = np.array(im.convert("RGB"))
    t = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    h, w = t.shape[-2:]
    s = min(1.0, p.working_max_side / max(h, w))
    work = F.interpolate(t, size=(round(h * s), round(w * s)), mode="area")
    fg = measure_foreground(work, p.sheet)
    raw = (fg.score > p.low_threshold).float()
    low = binary_open(binary_close(raw, p.close_radius), p.open_radius)
    labels = split_touching(
        label_components(low[:, 0] > 0.5), min_core_fraction=p.split_min_core,
        core_levels=tuple(p.split_levels), peak_level=p.split_peak_level,
        neck_ratio=p.split_neck_ratio, shape_mask=binary_close(raw, 1)[:, 0] > 0.5)
    return labels[0].numpy(), fg.darkness[0, 0].numpy(), fg.chroma[0, 0].numpy(), s


def two_parts(region: np.ndarray, darkness: np.ndarray, chroma: np.ndarray):
    """(part A, part B, separation of the two groups' means) or None."""
    z = np.stack([darkness[region], chroma[region]], axis=1)
    centres = np.quantile(z, [0.2, 0.8], axis=0)
    for _ in range(12):
        group = ((z[:, None, :] - centres[None]) ** 2).sum(-1).argmin(1)
        if group.min() == group.max():
            return None
        centres = np.stack([z[group == k].mean(0) for k in (0, 1)])
    assign = np.full(region.shape, -1)
    assign[region] = group
    parts = []
    for k in (0, 1):
        mask = ndimage.binary_opening(assign == k, iterations=2)
        lab, n = ndimage.label(mask)
        if n == 0:
            return None
        sizes = ndimage.sum(mask, lab, range(1, n + 1))
        parts.append(lab == 1 + int(np.argmax(sizes)))
    return parts[0], parts[1], float(np.abs(centres[0] - centres[1]).sum())


def cut_regions(labels: torch.Tensor, darkness: torch.Tensor, chroma: torch.Tensor,
                min_area: int, share: float, contact: float, separation: float) -> torch.Tensor:
    """Labels (B, H, W) with every region that meets the cut divided in two (each remaining
    pixel joins the nearer part). A new label is a pixel index of its part, as elsewhere."""
    out = labels.clone()
    for i in range(labels.shape[0]):
        lab, dark, chro = labels[i].numpy(), darkness[i, 0].numpy(), chroma[i, 0].numpy()
        width = lab.shape[1]
        ids, areas = np.unique(lab[lab >= 0], return_counts=True)
        for cid in ids[areas >= min_area]:
            ys, xs = np.nonzero(lab == cid)
            y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
            region = lab[y0:y1, x0:x1] == cid
            found = two_parts(region, dark[y0:y1, x0:x1], chro[y0:y1, x0:x1])
            if found is None:
                continue
            a, b, apart = found
            measured = measure_cut(region, a, b)
            if not (measured[0] >= share and measured[1] <= contact and apart >= separation):
                continue
            seeds = np.where(a, 1, np.where(b, 2, 0))
            _, (iy, ix) = ndimage.distance_transform_edt(seeds == 0, return_indices=True)
            for k in (2, 1):
                piece = region & (seeds[iy, ix] == k)
                fy, fx = np.nonzero(piece)
                flat = (fy + y0) * width + (fx + x0)
                if int(cid) not in set(flat.tolist()):
                    out[i, y0:y1, x0:x1][torch.from_numpy(piece)] = int(flat.min())
                    break
    return out


def measure_cut(region: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Smaller part's share of the region; contact between the parts over its outline."""
    outline = min((a & ~ndimage.binary_erosion(a, FOUR)).sum(),
                  (b & ~ndimage.binary_erosion(b, FOUR)).sum())
    contact = (a & ndimage.binary_dilation(b, FOUR, iterations=2)).sum()
    return min(a.sum(), b.sum()) / region.sum(), contact / max(1, outline)


def evaluate(cut: str, rest: list[str]) -> None:
    import runpy

    import trapgui.ml.builtin_detector as detector_module

    share, contact, separation = (float(v) for v in cut.split(","))
    measure, split = detector_module.measure_foreground, detector_module.split_touching
    seen = {}

    def measure_and_keep(images, params):
        seen["fg"] = measure(images, params)
        return seen["fg"]

    def split_then_cut(labels, **kwargs):
        fg = seen["fg"]
        return cut_regions(split(labels, **kwargs), fg.darkness, fg.chroma, 300,
                           share, contact, separation)

    detector_module.measure_foreground = measure_and_keep
    detector_module.split_touching = split_then_cut
    sys.argv = [str(REPO / "benchmarks" / "eval_builtin_detector.py"), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--evaluate":
        evaluate(sys.argv[2], sys.argv[3:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out"), default="tune")
    parser.add_argument("--min-area", type=int, default=300, help="working pixels")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    labels = load_labels()
    detector = BuiltinDetector()
    rows = []  # (share, contact, separation, holds two insects in different parts, insects)
    photos = TUNE_PHOTOS if args.split == "tune" else HELD_OUT_PHOTOS
    with torch.inference_mode():
        for rel in photos:
            if not labels[rel].sheet:
                continue
            lab, dark, chroma, s = regions(detector, SHARED / rel)
            points = [(int(y * s), int(x * s)) for x, y in labels[rel].insects]
            ids, areas = np.unique(lab[lab >= 0], return_counts=True)
            for cid in ids[areas >= args.min_area]:
                ys, xs = np.nonzero(lab == cid)
                y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
                region = lab[y0:y1, x0:x1] == cid
                inside = [(y - y0, x - x0) for y, x in points
                          if y0 <= y < y1 and x0 <= x < x1 and region[y - y0, x - x0]]
                found = two_parts(region, dark[y0:y1, x0:x1], chroma[y0:y1, x0:x1])
                if found is None:
                    continue
                a, b, separation = found
                share, contact = measure_cut(region, a, b)
                near_a = ndimage.binary_dilation(a, iterations=3)
                near_b = ndimage.binary_dilation(b, iterations=3)
                both = any(near_a[q] for q in inside) and any(near_b[q] for q in inside)
                rows.append((share, contact, separation,
                             len(inside) >= 2 and both, len(inside)))
                if len(inside) >= 2:
                    print(f"{rel}: region of {region.sum()} px with {len(inside)} insects: "
                          f"share {share:.2f}, contact {contact:.2f}, "
                          f"separation {separation:.2f}")
    r = np.array(rows, dtype=float)
    print(f"{len(r)} regions >= {args.min_area} working px, "
          f"{int((r[:, 4] >= 2).sum())} of them hold two or more labelled insects")
    print("min share  max contact  min separation |  right  wrong")
    for share in (0.1, 0.15, 0.2):
        for contact in (0.1, 0.2, 0.3, 0.4):
            for separation in (0.25, 0.5):
                cut = (r[:, 0] >= share) & (r[:, 1] <= contact) & (r[:, 2] >= separation)
                right = int((cut & (r[:, 3] > 0)).sum())
                print(f"   {share:5.2f}      {contact:5.2f}        {separation:5.2f}    |"
                      f"  {right:5d}  {int(cut.sum()) - right:5d}")


if __name__ == "__main__":
    main()
