"""The device-side step: decoded images in, ``ImageResult``s out (no database, no threads).

Shared by the engine's device workers, the remote-jobs worker and the on-demand
classification job. Per batch: detection (published Faster R-CNNs get the full-resolution
image and resize it with their own transform, exactly as their publishers do; other
detectors get the image reduced on the device to their working size), boxes mapped back to
original pixels; boxes below the storage floor dropped; those at or above the classification
floor cut from the full-resolution tensors (``ml.crops``), the binary classifier on every
crop, species/order classifiers only on its positives, in sub-batches of at most the
classifier's batch size; on out-of-memory the sub-batch is halved and retried. Boxes between
the two floors are returned without classifications ("not classified yet").

Every classifier forward pass goes through :meth:`BatchProcessor._predict` (one place: the
tracking work takes embeddings from it).

Embeddings for tracking come without a second pass: the penultimate features of the
classifier that sees every crop (the binary one), caught during its normal forward
(``ml.appearance.FeatureClassifier``) and projected to 128 values; with no classifier (or one
without a final linear layer), the cheap appearance descriptor of the same stacked crops.
Stored as float16 bytes with each detection, with the crop's sharpness. Boxes below the
classification floor get neither.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from trapgui.core.embedding_kind import EMBEDDING_DIM, PROJECTION_SEED, embedding_kind
from trapgui.core.geometry import Box
from trapgui.core.types import ClassificationResult, DetectionResult, ImageResult
from trapgui.ml.appearance import FeatureClassifier, appearance_descriptors, crop_sharpness
from trapgui.ml.crops import clean_boxes, stack_crops

log = logging.getLogger(__name__)

DESCRIPTOR_CROP = 64  # crop side for the appearance descriptor (it works at 64 px)


@dataclass
class DecodedImage:
    image_id: int
    path: str
    tensor: torch.Tensor | None  # uint8 (3, h, w); CPU (pinned with CUDA) or on the device
    orig_size: tuple[int, int]  # (width, height), EXIF-orientated
    scale: float = 1.0  # tensor pixels per original pixel
    error: str | None = None


@dataclass
class ProcessedImage:
    result: ImageResult
    # model key -> one entry per detection: the full softmax vector, or None if not classified
    scores: dict[str, list[np.ndarray | None]] = field(default_factory=dict)
    logits: dict[str, list[np.ndarray | None]] = field(default_factory=dict)


def is_out_of_memory(exc: BaseException) -> bool:
    oom = getattr(torch, "OutOfMemoryError", None)
    return (oom is not None and isinstance(exc, oom)) or "out of memory" in str(exc).lower()


def free_device_cache(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.empty_cache()


def describe_error(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class BatchProcessor:
    """``score_floor``: the storage floor; ``classification_floor``: stored boxes scoring below
    it are not classified. ``classification_batch_sizes``: per classifier key (tuned), else
    ``classification_batch_size``. ``detector`` may be None for classification only
    (:meth:`classify_detections`), then ``device`` says where. ``stage_seconds``: a dict to
    accumulate time per stage into (benchmarks; synchronises the device, so off by default)."""

    def __init__(self, detector, binary=None, species=None, order=None, *,
                 classification_batch_size: int = 64, top_k: int = 5,
                 score_floor: float = 0.0, crop_fill: float = 0.0,
                 classification_floor: float | None = None,
                 classification_batch_sizes: dict[str, int] | None = None,
                 device: str | torch.device | None = None,
                 stage_seconds: dict[str, float] | None = None, embeddings: bool = True):
        self.detector = detector
        self.binary = binary
        self.followers = [c for c in (order, species) if c is not None]
        self.classification_batch_size = max(1, int(classification_batch_size))
        self.classification_batch_sizes = {k: max(1, int(v)) for k, v in
                                           (classification_batch_sizes or {}).items()}
        self.top_k = max(1, int(top_k))
        self.score_floor = float(score_floor)
        self.classification_floor = max(self.score_floor, float(classification_floor or 0.0))
        self.crop_fill = float(crop_fill)
        if device is None:
            device = detector.device if detector is not None else (
                self.classifiers[0].device if self.classifiers else "cpu")
        self.device = torch.device(device)
        self.stage_seconds = stage_seconds
        self.notes: list[str] = []
        self._detect_batch: int | None = None  # lowered after an OOM
        if binary is not None and not binary.info.positive_labels:
            log.warning("Binary classifier %s names no positive labels: every crop passes.",
                        binary.info.key)
        # the classifier that sees every crop gives the embeddings (one space for the night)
        self.embeddings = bool(embeddings)
        self._feature_model = binary if binary is not None else (self.followers[0] if self.followers else None)
        self._features: FeatureClassifier | None = None
        if self.embeddings and self._feature_model is not None:
            try:
                self._features = FeatureClassifier(self._feature_model.model, EMBEDDING_DIM,
                                                   PROJECTION_SEED)
            except (AttributeError, TypeError) as exc:  # no network / no final linear layer
                # (catalogue classifiers all have one: this is for hand-made test models)
                log.warning("%s gives no features (%s); embeddings come from the appearance "
                            "descriptor", self._feature_model.info.key, exc)

    @property
    def classifiers(self) -> list:
        return ([self.binary] if self.binary is not None else []) + self.followers

    @property
    def needs_full_resolution(self) -> bool:
        return bool(self.classifiers)

    @property
    def detection_batch_limit(self) -> int | None:
        """Images per detector call after out-of-memory halvings (None = not limited)."""
        return self._detect_batch

    @property
    def embedding_kind(self) -> str | None:
        """What the stored embeddings are (``core.embedding_kind``); None: none are made."""
        if not self.embeddings:
            return None
        return embedding_kind(self._feature_model.info.key if self._features else None)

    @property
    def detection_max_side(self) -> int | None:
        """How far the image may be reduced before detection (None: not at all)."""
        if self.full_resolution_detection:
            return None
        return getattr(self.detector, "working_max_side", None)

    @property
    def full_resolution_detection(self) -> bool:
        """The detector reduces the image itself (published Faster R-CNNs: their own
        transform on the full-resolution image is the reference)."""
        return bool(getattr(self.detector, "full_resolution_input", False))

    def batch_size_for(self, clf) -> int:
        return self.classification_batch_sizes.get(clf.info.key, self.classification_batch_size)

    def _timed(self, stage: str, started: float) -> None:
        if self.stage_seconds is not None:
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.stage_seconds[stage] = (self.stage_seconds.get(stage, 0.0)
                                         + time.perf_counter() - started)

    # -- public -------------------------------------------------------------------------
    def process(self, images: list[DecodedImage]) -> list[ImageResult]:
        return [p.result for p in self._run(images, keep_scores=False)]

    def process_with_scores(self, images: list[DecodedImage]) -> list[ProcessedImage]:
        return self._run(images, keep_scores=True)

    @torch.inference_mode()
    def classify_detections(self, images: list[DecodedImage],
                            detections: list[list[DetectionResult]]) -> int:
        """Classify given (stored) detections of decoded images, whatever their score: their
        ``classifications`` are filled in place exactly as a run would have (the on-demand
        job for boxes below the classification floor). Boxes in original-image pixels.
        Returns how many detections were classified (a crop that cannot be cut is not)."""
        outs, flat, full, crop_boxes = [], [], [], []
        for im, dets in zip(images, detections):
            if im.error is not None or im.tensor is None or not dets:
                continue
            pos = len(full)
            full.append(im.tensor.to(self.device, non_blocking=True))
            result = ImageResult(im.image_id, detections=list(dets))
            outs.append(ProcessedImage(result))
            boxes = torch.tensor([d.box.as_tuple() for d in dets], dtype=torch.float32)
            crop_boxes.append(boxes.to(self.device) * im.scale)
            flat.extend((pos, d, r) for r, d in enumerate(dets))
        if not flat or not self.classifiers:
            return 0
        before = [len(d.classifications) for _, d, _ in flat]
        self._classify_all(full, crop_boxes, flat, outs, keep_scores=False)
        return sum(len(d.classifications) > n for (_, d, _), n in zip(flat, before))

    # -- steps --------------------------------------------------------------------------
    @torch.inference_mode()
    def _run(self, images: list[DecodedImage], keep_scores: bool) -> list[ProcessedImage]:
        out = [ProcessedImage(ImageResult(im.image_id, error=im.error)) for im in images]
        good = [i for i, im in enumerate(images)
                if im.error is None and im.tensor is not None]
        if not good:
            return out
        started = time.perf_counter()
        full = [images[i].tensor.to(self.device, non_blocking=True) for i in good]
        det_inputs, det_scales = [], []
        for i, t in zip(good, full):
            small, factor = self._detection_input(t)
            det_inputs.append(small)
            det_scales.append(images[i].scale * factor)
        outputs = self._detect(det_inputs)
        del det_inputs
        self._timed("detector", started)
        crop_boxes: list[torch.Tensor] = []
        # (position in `good`, detection, its row in that image's detections): the ones
        # at or above the classification floor, in crop order
        flat: list[tuple[int, DetectionResult, int]] = []
        key = getattr(self.detector, "key", "detector")
        for pos, (i, o, s) in enumerate(zip(good, outputs, det_scales)):
            im = images[i]
            w, h = im.orig_size
            refused = getattr(o, "refused", None)
            if refused:
                # not processed (with the reason), rather than "0 insects": a failed image
                out[i].result.error = refused
                crop_boxes.append(torch.zeros((0, 4), device=self.device))
                continue
            boxes = o.boxes.detach().to(torch.float32).reshape(-1, 4) / s
            scores = o.scores.detach().to(torch.float32).reshape(-1)
            floor = scores >= self.score_floor
            boxes, scores = boxes[floor], scores[floor]
            clipped, keep, _ = clean_boxes(boxes, w, h)
            out[i].result.skipped_boxes = int((~keep).sum())
            clipped, scores = clipped[keep], scores[keep]
            classify = (scores >= self.classification_floor).cpu().tolist()
            detections = out[i].result.detections
            for b, sc, c in zip(clipped.cpu().tolist(), scores.cpu().tolist(), classify):
                det = DetectionResult(Box(*b), float(sc), key)
                if c:
                    flat.append((pos, det, len(detections)))
                detections.append(det)
            chosen = torch.tensor(classify, dtype=torch.bool, device=clipped.device)
            crop_boxes.append(clipped[chosen].to(self.device) * im.scale)
        if flat and self.classifiers:
            self._classify_all(full, crop_boxes, flat, [out[i] for i in good], keep_scores)
        elif flat and self.embeddings:  # no classifier cuts crops: cut small ones for the descriptor
            batch = stack_crops(full, crop_boxes, DESCRIPTOR_CROP)
            self._attach_appearance(batch.crops, self._flat_rows(flat, batch.owner), flat, None, None)
        return out

    @staticmethod
    def _flat_rows(flat, owner: torch.Tensor) -> list[int]:
        """Flat detection index of each crop of a stack_crops batch over every box."""
        index, offsets = {}, {}
        for g, (pos, *_) in enumerate(flat):
            index[(pos, offsets.get(pos, 0))] = g
            offsets[pos] = offsets.get(pos, 0) + 1
        return [index[(p, r)] for p, r in owner.tolist()]

    def _attach_appearance(self, crops, rows, flat, info, features) -> None:
        """Embeddings (projected classifier features, else the descriptor of ``crops``) and
        the sharpness of each crop, onto its detection."""
        if not rows:
            return
        mean, std = (info.mean, info.std) if info is not None else (None, None)
        if features is not None:
            vectors = self._features.embed(features)
        else:
            vectors = appearance_descriptors(crops, mean, std)
        vectors = vectors.cpu().numpy().astype("<f2")
        sharp = crop_sharpness(crops, mean, std).cpu().tolist()
        for row, g in enumerate(rows):
            det = flat[g][1]
            det.embedding = vectors[row].tobytes()
            det.sharpness = float(sharp[row])

    def _detection_input(self, t: torch.Tensor) -> tuple[torch.Tensor, float]:
        if self.full_resolution_detection and getattr(self.detector, "accepts_uint8", False):
            return t, 1.0  # converted by the detector one image at a time
        x = t.to(torch.float32).div_(255.0) if t.dtype == torch.uint8 else t.to(torch.float32)
        side = self.detection_max_side
        h, w = int(x.shape[-2]), int(x.shape[-1])
        if not side or max(h, w) <= side:
            return x, 1.0
        f = side / max(h, w)
        size = (max(1, round(h * f)), max(1, round(w * f)))
        small = F.interpolate(x[None], size=size, mode="bilinear", antialias=True,
                              align_corners=False)[0]
        return small, size[0] / h

    def _detect(self, inputs: list[torch.Tensor]) -> list:
        outputs: list = []
        start = 0
        while start < len(inputs):
            n = min(self._detect_batch or len(inputs), len(inputs) - start)
            try:
                outputs.extend(self.detector.detect(inputs[start:start + n]))
                start += n
            except Exception as exc:
                if not is_out_of_memory(exc) or n == 1:
                    raise
                free_device_cache(self.device)
                self._detect_batch = max(1, n // 2)
                self._note(f"out of memory in detection, batch {n} -> {self._detect_batch}")
        return outputs

    def _predict(self, clf, crops: torch.Tensor, want_logits: bool
                 ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Every classifier forward pass of trapgui: sub-batches of at most the classifier's
        batch size; halves it on OOM. Also returns the penultimate features of the same
        forward when ``clf`` gives the embeddings."""
        probs, logits, features = [], [], []
        catch = self._features if clf is self._feature_model else None
        start = 0
        while start < crops.shape[0]:
            n = min(self.batch_size_for(clf), crops.shape[0] - start)
            chunk = crops[start:start + n]
            try:
                if want_logits and hasattr(clf, "predict_logits"):
                    lg = clf.predict_logits(chunk)
                    p = torch.softmax(lg.float(), dim=1)
                else:
                    p = clf.predict(chunk).float()
                    lg = torch.log(p.clamp_min(1e-30)) if want_logits else None
                if catch is not None:
                    features.append(catch.take_features())
                probs.append(p)
                if lg is not None:
                    logits.append(lg.float())
                start += n
            except Exception as exc:
                if not is_out_of_memory(exc) or n == 1:
                    raise
                free_device_cache(self.device)
                smaller = max(1, n // 2)
                if clf.info.key in self.classification_batch_sizes:
                    self.classification_batch_sizes[clf.info.key] = smaller
                else:
                    self.classification_batch_size = smaller
                self._note(f"out of memory classifying with {clf.info.key}, "
                           f"batch {n} -> {smaller}")
        return (torch.cat(probs), (torch.cat(logits) if logits else None),
                torch.cat(features) if features else None)

    def _classify_all(self, full, crop_boxes, flat, outs: list[ProcessedImage], keep_scores: bool):
        everyone = list(range(len(flat)))
        cache: dict[tuple, tuple[torch.Tensor, dict[int, int]]] = {}
        selected = everyone
        if self.binary is not None:
            probs, got = self._classify(self.binary, full, crop_boxes, flat, everyone, outs,
                                        keep_scores, cache)
            positive = self.binary.info.positive_labels
            if positive and probs is not None:
                labels = self.binary.info.labels
                best = probs.argmax(dim=1).tolist()
                selected = [g for g, b in zip(got, best) if labels[b] in positive]
            else:
                selected = got
        for clf in self.followers:
            if selected:
                self._classify(clf, full, crop_boxes, flat, selected, outs, keep_scores, cache)

    def _crops(self, clf, full, crop_boxes, flat, rows: list[int], cache) -> tuple[torch.Tensor, list[int]]:
        info = clf.info
        spec = (info.input_size, info.resize_mode, tuple(info.mean), tuple(info.std))
        if spec in cache:
            crops, where = cache[spec]
            have = [g for g in rows if g in where]
            index = torch.tensor([where[g] for g in have], device=crops.device, dtype=torch.long)
            return crops.index_select(0, index), have
        per_image: list[list[int]] = [[] for _ in full]
        for g in rows:
            per_image[flat[g][0]].append(g)
        local = {}  # (image position, row within image) -> flat index
        boxes = []
        offsets = self._offsets(flat)
        for pos, gs in enumerate(per_image):
            idx = torch.tensor([offsets[g] for g in gs], dtype=torch.long, device=self.device)
            boxes.append(crop_boxes[pos].index_select(0, idx) if gs else
                         torch.zeros((0, 4), device=self.device))
            for r, g in enumerate(gs):
                local[(pos, r)] = g
        batch = stack_crops(full, boxes, info.input_size, info.resize_mode, info.mean, info.std,
                            fill=self.crop_fill)
        got = [local[(p, r)] for p, r in batch.owner.tolist()]
        for p, r, reason in batch.skipped:
            log.debug("crop skipped for %s: %s", info.key, reason)
        if len(rows) == len(flat):  # crops of every box: later models with the same input reuse them
            cache[spec] = (batch.crops, {g: k for k, g in enumerate(got)})
        return batch.crops, got

    @staticmethod
    def _offsets(flat) -> list[int]:
        """Position of each flat detection within its own image's box tensor."""
        counters: dict[int, int] = {}
        result = []
        for pos, *_ in flat:
            result.append(counters.get(pos, 0))
            counters[pos] = result[-1] + 1
        return result

    def _classify(self, clf, full, crop_boxes, flat, rows, outs, keep_scores, cache):
        started = time.perf_counter()
        crops, got = self._crops(clf, full, crop_boxes, flat, rows, cache)
        self._timed("crops", started)
        if not got:  # zero crops: no forward call
            return None, got
        started = time.perf_counter()
        probs, logits, features = self._predict(clf, crops, keep_scores)
        self._timed(f"classifier {clf.info.key}", started)
        info = clf.info
        if clf is self._feature_model and self.embeddings:
            self._attach_appearance(crops, got, flat, info, features)
        k = min(self.top_k, probs.shape[1])
        top_p, top_i = probs.topk(k, dim=1)
        top_p, top_i = top_p.cpu().tolist(), top_i.cpu().tolist()
        if keep_scores:
            probs_np = probs.cpu().numpy()
            logits_np = logits.cpu().numpy() if logits is not None else None
            for o in outs:
                n = len(o.result.detections)
                o.scores.setdefault(info.key, [None] * n)
                o.logits.setdefault(info.key, [None] * n)
        for row, g in enumerate(got):
            pos, det, index = flat[g]
            labels = [info.labels[j] for j in top_i[row]]
            det.classifications.append(ClassificationResult(
                model=info.key, rank=info.rank, label=labels[0], score=float(top_p[row][0]),
                top_labels=labels, top_scores=[float(x) for x in top_p[row]]))
            if keep_scores:
                outs[pos].scores[info.key][index] = probs_np[row]
                if logits_np is not None:
                    outs[pos].logits[info.key][index] = logits_np[row]
        return probs, got

    def _note(self, text: str) -> None:
        message = f"{self.device}: {text}"
        self.notes.append(message)
        log.warning(message)
