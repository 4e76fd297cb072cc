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
from trapgui.ml.components import component_stats, label_components, merge_overlapping
from trapgui.ml.insect_splitting import split_touching
from trapgui.ml.morphology import binary_close, binary_open
from trapgui.ml.sheet_foreground import SheetParams, measure_foreground


@dataclass
class BuiltinDetectorParams:
    working_max_side: int = 1536
    high_threshold: float = 8.0  # seed pixels, in units of the image's own noise
    low_threshold: float = 4.0  # pixels joined to a seed's region
    min_seed_pixels: int = 3  # a seed must be more than a hot pixel
    close_radius: int = 2  # working pixels: joins wing fragments of pale moths
    open_radius: int = 1  # removes legs, antennae, sheet fibres
    min_length_fraction: float = 0.004  # major axis vs. longest side (~16 px at 4096)
    min_area_fraction: float = 1.5e-5  # pixels vs. image area
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
    pad_fraction: float = 0.1  # of the box's longer side, on each side
    pad_pixels: float = 3.0  # working pixels, on each side
    merge_containment: float = 0.9  # of the smaller unpadded box inside the larger one
    # On the CPU images run one at a time: the iterative steps (labelling, distance map, core
    # growth) would run the batch's worst-case iteration count for every image, and large
    # tensors fall out of cache; measured 2x slower per image at batch 4. Accelerators batch.
    cpu_chunk: int = 1
    min_score: float = 0.2  # boxes below are not returned at all (margin ~0.7)
    sheet: SheetParams = field(default_factory=SheetParams)


class BuiltinDetector:
    key = "builtin"
    name = "Built-in sheet detector (no weights)"

    def __init__(self, device: str | torch.device = "cpu", score_threshold: float = 0.5, **params):
        self.device = torch.device(device)
        self.score_threshold = score_threshold
        sheet_names = {f.name for f in fields(SheetParams)}
        sheet_kwargs = {k: params.pop(k) for k in list(params) if k in sheet_names}
        known = {f.name for f in fields(BuiltinDetectorParams)}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"unknown built-in detector parameter(s): {', '.join(unknown)}")
        self.params = BuiltinDetectorParams(**params, sheet=SheetParams(**sheet_kwargs))
        self.working_max_side = self.params.working_max_side

    @torch.inference_mode()
    def detect(self, images: list[torch.Tensor]) -> list[DetectorOutput]:
        results: list[DetectorOutput | None] = [None] * len(images)
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
                for i, output in zip(part, self._detect_same_size(batch, h, w)):
                    results[i] = output
        return results  # type: ignore[return-value]

    def _detect_same_size(self, batch: torch.Tensor, h: int, w: int) -> list[DetectorOutput]:
        scale = min(1.0, self.params.working_max_side / max(h, w))
        wh, ww = max(8, round(h * scale)), max(8, round(w * scale))
        work = batch if (wh, ww) == (h, w) else F.interpolate(batch, size=(wh, ww), mode="area")
        boxes, scores, refused = self._detect_working(work.clamp(0.0, 1.0))
        sx, sy = w / ww, h / wh
        factor = torch.tensor([sx, sy, sx, sy], device=batch.device)
        limit = torch.tensor([w, h, w, h], device=batch.device, dtype=torch.float32)
        out = []
        for b, s, why in zip(boxes, scores, refused):
            b = torch.minimum((b * factor).clamp(min=0), limit)
            out.append(DetectorOutput(boxes=b.float().contiguous(), scores=s.float().contiguous(),
                                      refused=why))
        return out

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

    def _detect_working(
        self, images: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor], list[str | None]]:
        p = self.params
        bsz, _, h, w = images.shape
        longest = max(h, w)
        fg = measure_foreground(images, p.sheet)
        raw = (fg.score > p.low_threshold).float()
        low = binary_open(binary_close(raw, p.close_radius), p.open_radius)
        high = (fg.score > p.high_threshold).float() * low
        labels = label_components(low[:, 0] > 0.5)
        if p.split:
            labels = split_touching(
                labels,
                min_core_fraction=p.min_length_fraction,
                shape_mask=binary_close(raw, 1)[:, 0] > 0.5,
            )
        values = torch.cat([fg.score, high, torch.maximum(fg.darkness, fg.chroma)], dim=1)
        st = component_stats(labels, values)

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

        # Confidence grows with how far contrast and significance exceed what the size demands.
        margin = torch.minimum(
            contrast / (p.min_contrast * smallness), mean_score / (p.min_mean_score * smallness)
        )
        score = torch.sigmoid(4.0 * torch.log(margin.clamp(min=1e-3)))  # 0.5 where margin is 1
        keep &= score >= p.min_score

        boxes = torch.stack([st.x1, st.y1, st.x2 + 1, st.y2 + 1], dim=1)
        limit = torch.tensor([w, h, w, h], device=images.device, dtype=torch.float32)

        out_boxes, out_scores = [], []
        for i in range(bsz):
            sel = keep & (st.image == i)
            b, s = merge_overlapping(boxes[sel], score[sel], p.merge_containment)
            # Margin so a crop holds the whole insect (antennae and legs were opened away).
            longer = torch.maximum(b[:, 2] - b[:, 0], b[:, 3] - b[:, 1])
            pad = p.pad_fraction * longer + p.pad_pixels
            b = torch.minimum((b + torch.stack([-pad, -pad, pad, pad], dim=1)).clamp(min=0), limit)
            order = torch.argsort(s, descending=True, stable=True)
            out_boxes.append(b[order].reshape(-1, 4))
            out_scores.append(s[order])
        return out_boxes, out_scores, self._refusals(fg)
