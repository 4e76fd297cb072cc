"""The built-in detector: finds insects on a lit white sheet without any model weights.

Pipeline (all torch ops, batched per image size, on the device of the input tensors):
downsample to `working_max_side` -> sheet estimate and noise-normalised darkness/colour
difference (`sheet_foreground`) -> hysteresis threshold (strong seeds grown into weaker
surroundings so pale wings stay attached to the body) -> closing/opening -> connected components
-> shape filters (specks, sheet grain, folds, cables, frame edges) -> splitting of
touching insects (`insect_splitting`) -> padded boxes with a contrast/size score -> merge of
nested duplicates. Boxes are returned in the pixels of the tensors passed in.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import torch
import torch.nn.functional as F

from trapgui.ml.base import DetectorOutput
from trapgui.ml.box_features import (
    FEATURE_NAMES,
    host_of_parts,
    region_features,
    region_maps,
    region_stats,
    thickness,
)
from trapgui.ml.box_score import insect_probability
from trapgui.ml.components import label_components, merge_overlapping_members
from trapgui.ml.insect_splitting import split_touching
from trapgui.ml.morphology import binary_close, binary_open
from trapgui.ml.sheet_artefacts import KEPT, PART, REASONS, ArtefactParams, reject
from trapgui.ml.sheet_foreground import SheetParams, measure_foreground


@dataclass
class BuiltinDetectorParams:
    working_max_side: int = 1536
    high_threshold: float = 8.0  # seed pixels, in units of the image's own noise
    low_threshold: float = 4.0  # pixels joined to a seed's region
    min_seed_pixels: int = 3  # a seed must be more than a hot pixel
    close_radius: int = 2  # working pixels: joins wing fragments of pale moths
    open_radius: int = 1  # removes legs, antennae, sheet fibres
    min_length_fraction: float = 0.0033  # major axis vs. longest side (~14 px at 4096)
    min_area_fraction: float = 1.0e-5  # pixels vs. image area
    # Small regions must stand out more than large ones: a speck of dirt or a clump of sheet
    # grain is small and faint, a small fly is small and dark, a pale moth is faint but large.
    # Required contrast = base * sqrt(1 + reference_area / area).
    min_contrast: float = 0.07  # relative darkness or colour distance from the sheet
    min_mean_score: float = 5.0  # mean noise-normalised score
    contrast_reference_area: float = 1.2e-4  # as a fraction of the image area
    max_foreground_fraction: float = 0.4  # more "foreground" than this: not a sheet photo
    max_area_fraction: float = 0.2
    max_elongation: float = 7.0  # major/minor axis: longer and thinner is a fold or cable
    min_fill: float = 0.1  # area / major^2: thin curved lines fall below
    border_max_extent: float = 0.4  # touching the border and longer than this: frame, not insect
    # Photos that are not of a lit sheet (soil, foliage, a dark room) get no boxes rather than
    # hundreds of meaningless ones: the "sheet" must be bright and smooth.
    min_sheet_level: float = 0.25
    max_sheet_noise: float = 0.12  # robust spread of relative darkness; trap sheets are < 0.03
    split: bool = True
    split_min_core: float = 0.004  # a core of a touching insect: depth vs. longest side
    split_levels: tuple[float, ...] = (0.3, 0.45, 0.55)  # of a component's deepest point
    split_peak_level: float = 0.5  # a core's own peak, of the component's deepest point
    split_neck_ratio: float = 0.7  # the neck's depth at most this share of each core's peak
    pad_fraction: float = 0.1  # of the box's longer side, on each side
    pad_pixels: float = 3.0  # working pixels, on each side
    merge_containment: float = 0.9  # of the smaller unpadded box inside the larger one
    # On the CPU images run one at a time: the iterative steps (labelling, distance map, core
    # growth) would run the batch's worst-case iteration count for every image, and large
    # tensors fall out of cache; measured 2x slower per image at batch 4. Accelerators batch.
    cpu_chunk: int = 1
    # Regions whose contrast margin (what `min_contrast`/`min_mean_score` demand for their
    # size, see above) is below this are not considered at all; the rest are scored.
    min_margin: float = 0.5
    min_score: float = 0.05  # boxes whose insect probability is below are not returned
    # Faint foreground that joins the parts of one insect (a pale wing between a wing tip and
    # the body), in noise units, found at half the working resolution.
    weak_threshold: float = 2.5
    part_share: float = 0.6  # of a part's box inside its host's box
    part_area_ratio: float = 0.35  # a part has at most this share of its host's area
    # Thicker than this share of the longest side (16 px at 1536, ~43 px at 4096), a region has
    # a body of its own: never a part of a bigger insect, nor a nested duplicate of its box.
    part_max_thickness: float = 0.0104
    artefact_rules: bool = True  # False: keep printed marks, fixtures, text, stains (analysis)
    merge_parts: bool = True
    sheet: SheetParams = field(default_factory=SheetParams)
    artefacts: ArtefactParams = field(default_factory=ArtefactParams)


class BuiltinDetector:
    key = "builtin"
    name = "Built-in sheet detector (no weights)"

    def __init__(self, device: str | torch.device = "cpu", score_threshold: float = 0.5, **params):
        self.device = torch.device(device)
        self.score_threshold = score_threshold
        sheet_names = {f.name for f in fields(SheetParams)}
        sheet_kwargs = {k: params.pop(k) for k in list(params) if k in sheet_names}
        artefact_names = {f.name for f in fields(ArtefactParams)}
        artefact_kwargs = {k: params.pop(k) for k in list(params) if k in artefact_names}
        known = {f.name for f in fields(BuiltinDetectorParams)} - {"sheet", "artefacts"}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"unknown built-in detector parameter(s): {', '.join(unknown)}")
        self.params = BuiltinDetectorParams(
            **params, sheet=SheetParams(**sheet_kwargs), artefacts=ArtefactParams(**artefact_kwargs)
        )
        self.working_max_side = self.params.working_max_side

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor]) -> list[DetectorOutput]:
        return [e.output for e in self._run(images, explain=False)]

    @torch.inference_mode()
    def explain(self, images: list[torch.Tensor]) -> list[ExplainedDetection]:
        """`detect` plus, per returned box, the measurements its score was computed from, and
        every candidate box with its measurements whatever its score (for fitting the score
        model offline: benchmarks/fit_detector_score.py)."""
        return self._run(images, explain=True)

    def _run(self, images: list[torch.Tensor], explain: bool) -> list[ExplainedDetection]:
        results: list[ExplainedDetection | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, image in enumerate(images):
            if image.dim() != 3 or image.shape[0] != 3:
                shape = tuple(image.shape)
                raise ValueError(f"expected a (3, H, W) image tensor, got shape {shape}")
            groups.setdefault((int(image.shape[1]), int(image.shape[2])), []).append(i)
        chunk = self.params.cpu_chunk if self.device.type == "cpu" else None
        for (h, w), indices in groups.items():
            step = chunk or len(indices)
            for start in range(0, len(indices), step):
                part = indices[start : start + step]
                batch = torch.stack([images[i] for i in part]).to(self.device, torch.float32)
                for i, output in zip(part, self._detect_same_size(batch, h, w, explain)):
                    results[i] = output
        return results  # type: ignore[return-value]

    def _detect_same_size(
        self, batch: torch.Tensor, h: int, w: int, explain: bool
    ) -> list[ExplainedDetection]:
        work = self.working_image(batch)
        wh, ww = work.shape[-2:]
        per_image, refused = self._detect_working(work)
        sx, sy = w / ww, h / wh
        factor = torch.tensor([sx, sy, sx, sy], device=batch.device)
        limit = torch.tensor([w, h, w, h], device=batch.device, dtype=torch.float32)

        def to_input(b: torch.Tensor) -> torch.Tensor:
            return torch.minimum((b * factor).clamp(min=0), limit).float().contiguous()

        out = []
        for (boxes, scores, features, dropped, reasons), why in zip(per_image, refused):
            b, s, f = self._finish(boxes, scores, features, self.params.min_score, wh, ww)
            result = ExplainedDetection(DetectorOutput(boxes=to_input(b), scores=s.float().contiguous(),
                                                         refused=why))
            if explain:
                result.features = f
                ab, as_, af = self._finish(boxes, scores, features, 0.0, wh, ww)
                result.all_boxes, result.all_scores, result.all_features = to_input(ab), as_, af
                result.rejected_boxes = to_input(dropped)
                result.rejected_reasons = [REASONS[int(r)] for r in reasons]
            out.append(result)
        return out

    def working_image(self, batch: torch.Tensor) -> torch.Tensor:
        """A (B, 3, H, W) batch reduced (area averaging) to the working size, in [0, 1]: every
        measurement is made at this size."""
        h, w = batch.shape[-2:]
        scale = min(1.0, self.params.working_max_side / max(h, w))
        wh, ww = max(8, round(h * scale)), max(8, round(w * scale))
        work = batch if (wh, ww) == (h, w) else F.interpolate(batch, size=(wh, ww), mode="area")
        return work.clamp(0.0, 1.0)

    def regions(self, images: torch.Tensor):
        """Of a working-size batch: the foreground measures, the region mask (B, 1, H, W) and
        the regions' labels (B, H, W), touching insects split, before any filter or rule."""
        p = self.params
        fg = measure_foreground(images, p.sheet)
        raw = (fg.score > p.low_threshold).float()
        low = binary_open(binary_close(raw, p.close_radius), p.open_radius)
        labels = label_components(low[:, 0] > 0.5)
        if p.split:
            labels = split_touching(
                labels,
                min_core_fraction=p.split_min_core,
                core_levels=tuple(p.split_levels),
                peak_level=p.split_peak_level,
                neck_ratio=p.split_neck_ratio,
                shape_mask=binary_close(raw, 1)[:, 0] > 0.5,
            )
        return fg, low, labels

    def _refusals(self, fg) -> list[str | None]:
        """Per image: why it is not a trap sheet (None where it is one)."""
        p = self.params
        out = []
        for level, noise in zip(fg.sheet_level.tolist(), fg.sheet_noise.tolist()):
            if level < p.min_sheet_level:
                out.append(f"not a trap sheet: the background is too dark for a lit sheet "
                           f"(brightness {level:.2f}, a sheet has at least "
                           f"{p.min_sheet_level:.2f}); the built-in detector only finds "
                           "insects on a lit sheet")
            elif noise > p.max_sheet_noise:
                out.append(f"not a trap sheet: the background is too uneven for a sheet "
                           f"(texture {noise:.2f}, a sheet has at most {p.max_sheet_noise:.2f}); "
                           "the built-in detector only finds insects on a lit sheet")
            else:
                out.append(None)
        return out

    def _finish(self, boxes, scores, features, min_score: float, h: int, w: int):
        """One image's kept regions -> merged, padded boxes in descending score order."""
        p = self.params
        sel = scores >= min_score
        boxes, scores, features = boxes[sel], scores[sel], features[sel]
        order = torch.argsort(scores, descending=True, stable=True)
        boxes, scores, features = boxes[order], scores[order], features[order]
        apart = thickness(features) > p.part_max_thickness * max(h, w)
        b, s, member = merge_overlapping_members(boxes, scores, p.merge_containment, apart)
        f = features[member]
        # Margin so a crop holds the whole insect (antennae and legs were opened away).
        longer = torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
        pad = p.pad_fraction * longer + p.pad_pixels
        limit = torch.tensor([w, h, w, h], device=b.device, dtype=torch.float32)
        b = torch.minimum((b + torch.stack([-pad, -pad, pad, pad], dim=1)).clamp(min=0), limit)
        order = torch.argsort(s, descending=True, stable=True)
        return b[order].reshape(-1, 4), s[order], f[order]

    def _weak_labels(self, score: torch.Tensor) -> torch.Tensor:
        """Regions of faint foreground (B, 1, H, W) int64 (-1 = sheet), labelled at half the
        working resolution: the parts of one insect lie in one of them."""
        _, _, h, w = score.shape
        small = F.avg_pool2d(score, 2, ceil_mode=True)
        mask = binary_close((small > self.params.weak_threshold).float(), 1)[:, 0] > 0.5
        labels = label_components(mask)
        up = labels.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)[:, :h, :w]
        return up[:, None]

    def measure(self, fg, low: torch.Tensor, labels: torch.Tensor):
        """Measurements of every region of `labels` (from `regions`): its statistics, features,
        whether it passes the size, shape and contrast gates, which rule removes it (KEPT where
        none does) and its unpadded box."""
        p = self.params
        bsz, _, h, w = low.shape
        longest = max(h, w)
        high = (fg.score > p.high_threshold).float() * low
        st = region_stats(labels, region_maps(fg, high, self._weak_labels(fg.score)))

        area = st.area
        seeds = st.sums[:, 1]
        mean_score = st.sums[:, 0] / area
        contrast = st.sums[:, 2] / area
        smallness = (1.0 + p.contrast_reference_area * h * w / area).sqrt()
        foreground_fraction = low.view(bsz, -1).mean(dim=1)
        bw = st.x2 - st.x1 + 1
        bh = st.y2 - st.y1 + 1
        elongation = st.major / st.minor.clamp(min=1.0)
        fill = area / (st.major.clamp(min=1.0) ** 2)
        touches = (st.x1 <= 0) | (st.y1 <= 0) | (st.x2 >= w - 1) | (st.y2 >= h - 1)
        extent = torch.maximum(bw / w, bh / h)
        keep = seeds >= p.min_seed_pixels
        keep &= st.major >= p.min_length_fraction * longest
        keep &= area >= p.min_area_fraction * h * w
        keep &= area <= p.max_area_fraction * h * w
        keep &= (elongation <= p.max_elongation) & (fill >= p.min_fill)
        keep &= ~(touches & (extent > p.border_max_extent))
        is_sheet = (fg.sheet_level >= p.min_sheet_level) & (fg.sheet_noise <= p.max_sheet_noise)
        keep &= is_sheet[st.image]
        keep &= (foreground_fraction <= p.max_foreground_fraction)[st.image]
        # How far contrast and significance exceed what the region's size demands.
        margin = torch.minimum(
            contrast / (p.min_contrast * smallness), mean_score / (p.min_mean_score * smallness)
        )
        keep &= margin >= p.min_margin

        boxes = torch.stack([st.x1, st.y1, st.x2 + 1, st.y2 + 1], dim=1)
        features = region_features(st, fg.darkness, margin, keep, h, w)
        reason = torch.zeros_like(keep, dtype=torch.long)
        if p.artefact_rules:
            reason = torch.where(keep, reject(features, boxes, area, h, w, p.artefacts), reason)
            keep &= reason == KEPT
        return st, features, keep, reason, boxes

    def _detect_working(
        self, images: torch.Tensor
    ) -> tuple[list[tuple[torch.Tensor, ...]], list[str | None]]:
        """Per image: unpadded boxes (working pixels), insect probabilities and features of the
        regions that pass the shape filters and the artefact rules, parts merged into hosts;
        and per image why it is not a trap sheet (None where it is one)."""
        p = self.params
        bsz, _, h, w = images.shape
        longest = max(h, w)
        fg, low, labels = self.regions(images)
        st, features, keep, reason, boxes = self.measure(fg, low, labels)
        # Parts of an insect (a wing tip beyond a pale wing) widen their host's box instead.
        host = host_of_parts(st, features, keep, p.part_share, p.part_area_ratio,
                             p.part_max_thickness * longest)
        is_part = keep & (host >= 0) & p.merge_parts
        if bool(is_part.any()):
            target = host[is_part]
            boxes = boxes.clone()
            boxes[:, :2] = boxes[:, :2].scatter_reduce(
                0, target[:, None].expand(-1, 2), boxes[is_part, :2], reduce="amin"
            )
            boxes[:, 2:] = boxes[:, 2:].scatter_reduce(
                0, target[:, None].expand(-1, 2), boxes[is_part, 2:], reduce="amax"
            )
        reason = torch.where(is_part, torch.full_like(reason, PART), reason)
        part_boxes = torch.stack([st.x1, st.y1, st.x2 + 1, st.y2 + 1], dim=1)
        keep &= ~is_part
        score = insect_probability(features.values)

        out = []
        for i in range(bsz):
            sel = keep & (st.image == i)
            dropped = (reason > 0) & (st.image == i)
            out.append((boxes[sel], score[sel], features.values[sel],
                        part_boxes[dropped], reason[dropped]))
        return out, self._refusals(fg)


@dataclass
class ExplainedDetection:
    output: DetectorOutput
    features: torch.Tensor | None = None  # (N, F) for output.boxes
    all_boxes: torch.Tensor | None = None  # every candidate, whatever its score
    all_scores: torch.Tensor | None = None
    all_features: torch.Tensor | None = None
    feature_names: tuple[str, ...] = FEATURE_NAMES
    # Regions the rules removed, and parts merged into their insect's box, with the reason.
    rejected_boxes: torch.Tensor | None = None
    rejected_reasons: list[str] = field(default_factory=list)
