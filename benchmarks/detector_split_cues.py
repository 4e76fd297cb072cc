"""Would a split by appearance (or at faint bridges, or at gaps) separate merged insects
without cutting single ones? (a probe)

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

    .venv/bin/python benchmarks/detector_split_cues.py --bridges 16,80,4 [eval args]

the same with a second cue instead: two dark cores joined only by faint foreground (a cricket
whose leg reaches a moth's halo). A core is a connected part of the region whose score is above
T noise units (the detector's seed level is 8), after an opening, of at least AREA working
pixels and DEPTH pixels from its edge; a region with two or more cores is divided among them
(each pixel joins the nearest core), unless a rule removes the region as a whole (a printed
card cut into its squares would escape the printed-mark rule).

    .venv/bin/python benchmarks/detector_split_cues.py --gaps 40,6 [eval args]

a third: the gaps the detector's closing bridges. A region that is two or more separate parts
of the unclosed foreground (score above the detector's low threshold), each of at least AREA
working pixels with SEEDS pixels above the seed level, is divided among them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from scipy import ndimage

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.detector_scoring import HELD_OUT_PHOTOS, TUNE_PHOTOS, load_labels  # noqa: E402
from benchmarks.eval_builtin_detector import SHARED  # noqa: E402
from trapgui.ml.builtin_detector import BuiltinDetector  # noqa: E402

FOUR = ndimage.generate_binary_structure(2, 1)
MIN_AREA = 300  # working pixels: the merged pairs are large


def regions(detector: BuiltinDetector, path: Path):
    """The detector's own region labels of a photo at the working size, its darkness and
    chroma maps, and the working scale."""
    with Image.open(path) as im:
        rgb = np.array(im.convert("RGB"))
    batch = torch.from_numpy(rgb).permute(2, 0, 1).float()[None] / 255
    work = detector.working_image(batch)
    fg, _, labels = detector.regions(work)
    scale = work.shape[-1] / batch.shape[-1]
    return labels[0].numpy(), fg.darkness[0, 0].numpy(), fg.chroma[0, 0].numpy(), scale


def candidate_cuts(lab: np.ndarray, dark: np.ndarray, chroma: np.ndarray, min_area: int):
    """Per region of at least `min_area` pixels that divides in two: (label, top-left corner,
    region mask in its box, part A, part B, share, contact, separation)."""
    ids, areas = np.unique(lab[lab >= 0], return_counts=True)
    for cid in ids[areas >= min_area]:
        ys, xs = np.nonzero(lab == cid)
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        region = lab[y0:y1, x0:x1] == cid
        found = two_parts(region, dark[y0:y1, x0:x1], chroma[y0:y1, x0:x1])
        if found is not None:
            a, b, separation = found
            share, contact = measure_cut(region, a, b)
            yield int(cid), (y0, x0), region, a, b, share, contact, separation


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


def measure_cut(region: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Smaller part's share of the region; contact between the parts over its outline."""
    outline = min((a & ~ndimage.binary_erosion(a, FOUR)).sum(),
                  (b & ~ndimage.binary_erosion(b, FOUR)).sum())
    contact = (a & ndimage.binary_dilation(b, FOUR, iterations=2)).sum()
    return min(a.sum(), b.sum()) / region.sum(), contact / max(1, outline)


def divide_among(labels: np.ndarray, seeds: np.ndarray, skip: np.ndarray | None = None):
    """The piece masks of every region of one image's `labels` that holds two or
    more seeds (`seeds`: one positive id per seed, 0 elsewhere) and no pixel `skip` marks; each
    pixel of the region joins the nearest seed."""
    for cid in np.unique(labels[seeds > 0]):
        inside = (seeds > 0) & (labels == cid)
        if len(np.unique(seeds[inside])) < 2 or (skip is not None and skip[inside].any()):
            continue
        region = labels == cid
        _, (iy, ix) = ndimage.distance_transform_edt(~inside, return_indices=True)
        nearest = np.where(region, seeds[iy, ix], 0)
        yield [region & (nearest == k) for k in np.unique(nearest[region])]


def relabel_pieces(labels: torch.Tensor, per_image_seeds) -> torch.Tensor:
    """Labels (B, H, W) with the regions `divide_among` divides relabelled piece by piece (a
    new label is a pixel index of its piece, as elsewhere). `per_image_seeds(i, lab)` gives
    one image's seeds and skip mask."""
    out = labels.clone()
    flat = np.arange(labels[0].numel()).reshape(labels.shape[1:])
    for i in range(labels.shape[0]):
        lab = labels[i].numpy()
        seeds, skip = per_image_seeds(i, lab)
        for pieces in divide_among(lab, seeds, skip):
            for piece in pieces:
                out[i][torch.from_numpy(piece)] = int(flat[piece].min())
    return out


def cut_regions(labels: torch.Tensor, darkness: torch.Tensor, chroma: torch.Tensor,
                share: float, contact: float, separation: float) -> torch.Tensor:
    """Labels (B, H, W) with every region that meets the cut divided in two (each remaining
    pixel joins the nearer part)."""
    def parts(i: int, lab: np.ndarray):
        seeds = np.zeros(lab.shape, np.int64)
        for n, (_, (y0, x0), region, a, b, s, c, apart) in enumerate(candidate_cuts(
                lab, darkness[i, 0].numpy(), chroma[i, 0].numpy(), MIN_AREA)):
            if s >= share and c <= contact and apart >= separation:
                window = seeds[y0:y0 + region.shape[0], x0:x0 + region.shape[1]]
                window[a] = 2 * n + 1
                window[b] = 2 * n + 2
        return seeds, None

    return relabel_pieces(labels, parts)


def _keep_parts(mask: np.ndarray, structure, test) -> np.ndarray:
    """Connected parts of `mask` (ids from 1), those failing `test(parts, n, index)` set to 0."""
    parts, n = ndimage.label(mask, structure)
    if n < 2:
        return np.zeros_like(parts)
    index = np.arange(1, n + 1)
    keep = np.zeros(n + 1, bool)
    keep[1:] = test(parts, index)
    return np.where(keep[parts], parts, 0)


def cut_at_bridges(labels: torch.Tensor, score: torch.Tensor, whole: torch.Tensor, level: float,
                   min_area: float, min_depth: float) -> torch.Tensor:
    """Labels (B, H, W) with every region that holds two or more dark cores divided among them
    (each pixel joins the nearest core), except those `whole` (B, H, W) marks."""
    def cores(i: int, lab: np.ndarray):
        strong = ndimage.binary_opening((score[i, 0].numpy() > level) & (lab >= 0), FOUR)
        depth = ndimage.distance_transform_cdt(strong)
        return _keep_parts(strong, FOUR, lambda parts, index: (
            (ndimage.sum(strong, parts, index) >= min_area)
            & (ndimage.maximum(depth, parts, index) >= min_depth))), whole[i].numpy()

    return relabel_pieces(labels, cores)


def cut_at_gaps(labels: torch.Tensor, score: torch.Tensor, low: float, high: float,
                min_area: float, min_seeds: float) -> torch.Tensor:
    """Labels (B, H, W) with every region that the closing made of two or more separate
    objects (connected parts of the unclosed foreground, each of at least `min_area` pixels
    with `min_seeds` pixels above the seed level) divided among them."""
    def objects(i: int, lab: np.ndarray):
        sc = score[i, 0].numpy()
        raw = (sc > low) & (lab >= 0)
        return _keep_parts(raw, np.ones((3, 3), bool), lambda parts, index: (
            (ndimage.sum(raw, parts, index) >= min_area)
            & (ndimage.sum(sc > high, parts, index) >= min_seeds))), None

    return relabel_pieces(labels, objects)


def evaluate(cut: str, rest: list[str], bridges: bool = False, gaps: bool = False) -> None:
    import runpy

    limits = [float(v) for v in cut.split(",")]
    own_regions = BuiltinDetector.regions

    def regions_then_cut(self, images):
        fg, mask, labels = own_regions(self, images)
        if gaps:
            p = self.params
            return fg, mask, cut_at_gaps(labels, fg.score, p.low_threshold, p.high_threshold,
                                         *limits)
        if bridges:
            # A region a rule removes as a whole (a printed card, a fixture, text) stays whole.
            st, _, _, reason, _ = self.measure(fg, mask, labels)
            ruled = (reason > 0)[st.inverse.clamp(min=0)] & (st.inverse >= 0)
            return fg, mask, cut_at_bridges(labels, fg.score, ruled.view(labels.shape), *limits)
        return fg, mask, cut_regions(labels, fg.darkness, fg.chroma, *limits)

    BuiltinDetector.regions = regions_then_cut  # in this process only
    sys.argv = [str(REPO / "benchmarks" / "eval_builtin_detector.py"), *rest]
    runpy.run_path(sys.argv[0], run_name="__main__")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--evaluate":
        evaluate(sys.argv[2], sys.argv[3:])
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--gaps":
        evaluate(sys.argv[2], sys.argv[3:], gaps=True)
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--bridges":
        evaluate(sys.argv[2], sys.argv[3:], bridges=True)
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split", choices=("tune", "held-out"), default="tune")
    parser.add_argument("--min-area", type=int, default=MIN_AREA, help="working pixels")
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
            for _, (y0, x0), region, a, b, share, contact, separation in candidate_cuts(
                    lab, dark, chroma, args.min_area):
                h, w = region.shape
                inside = [(y - y0, x - x0) for y, x in points
                          if y0 <= y < y0 + h and x0 <= x < x0 + w and region[y - y0, x - x0]]
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
