"""Classify, on demand, the stored boxes a run left unclassified (below its classification
floor): a ``core.jobs`` job, ``job(emit, control) -> ClassifySummary``.

A run stores every box at or above the detector's storage floor and classifies only those at
or above the classification floor. When the user lowers the detection threshold below that
floor, this job classifies the stored boxes between the new threshold and the floor: it reads
them from the catalogue (``db.unclassified``), decodes their images at full resolution, cuts
and classifies them with the pipeline's own classifiers and settings through the engine's
device step (``BatchProcessor.classify_detections``: the same crops, the same binary gate,
the same top-k) and writes the classifications as the run would have. Nothing is detected
again, nothing else changes: the counts then match a run made with the lower floor.

Pause and cancel act between batches of images; what was written stays written, the rest is
simply still "not classified yet" (run the job again to go on). An image that can no longer
be read is reported and skipped.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from trapgui.core.errors import UserInputError
from trapgui.core.geometry import Box
from trapgui.core.jobs import (BatchCommitted, Emit, ItemFailed, JobControl, LogLine,
                               RunProgress, safe_emit)
from trapgui.core.types import DetectionResult
from trapgui.db import jobqueue, unclassified
from trapgui.ml.devices import resolve_devices
from trapgui.pipeline.batch_tuning import BatchTuner
from trapgui.pipeline.loader import Decoder, ImageLoader
from trapgui.pipeline.model_set import ModelSet
from trapgui.pipeline.processor import BatchProcessor
from trapgui.version import __version__

TASK = unclassified.CLASSIFY_BELOW_FLOOR  # processing_runs.settings["task"] of these jobs


@dataclass(frozen=True)
class ClassifySummary:
    status: str  # finished | cancelled | nothing to do
    pipeline_id: int
    min_score: float
    classified: int  # detections classified by this job
    images: int  # images whose boxes were classified
    failed_images: int  # could not be read
    remaining: int  # detections at or above min_score still not classified
    elapsed_s: float
    run_id: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)


def classifier_loader(store, config: dict) -> Callable:
    """device -> ModelSet with the pipeline's classifiers only (no detector is loaded)."""

    def load(device) -> ModelSet:
        from trapgui.ml import registry

        def one(key):
            return registry.load_classifier(key, device, store) if key else None

        return ModelSet(detector=None, binary=one(config.get("binary")),
                        species=one(config.get("species")), order=one(config.get("order")))

    return load


class ClassifyBelowFloor:
    """``ClassifyBelowFloor(db, store, pipeline_id, min_score)(emit, control)``.

    ``image_ids`` (ids, or a select of them) limits it to some images (the nights on screen); ``devices`` as for the
    engine (the first usable one is used); ``model_loader(device) -> ModelSet`` replaces the
    catalogue (tests); ``batch_images`` images are decoded and classified together;
    ``classification_batch_size``: the settings' fixed size, or None to use the sizes measured
    for this device (measuring them on first use), as a run does."""

    def __init__(self, db, store, pipeline_id: int, min_score: float, *,
                 image_ids: Sequence[int] | None = None, devices="auto",
                 model_loader: Callable | None = None, batch_images: int = 4,
                 loader_threads: int = 2, batch_size_cache=None,
                 classification_batch_size: int | None = None):
        if not 0.0 <= float(min_score) <= 1.0:
            raise UserInputError(f"The detection threshold must be between 0 and 1, not {min_score}.")
        self.db = db
        self.store = store
        self.pipeline_id = pipeline_id
        self.min_score = float(min_score)
        # a list of ids, or a select of them (``db.unclassified``: any number of images)
        self.image_ids = (image_ids if image_ids is None or hasattr(image_ids, "subquery")
                          else sorted(set(image_ids)))
        self.devices = devices
        self.config = unclassified.pipeline_config(db, pipeline_id)
        if self.config is None:
            raise UserInputError("That model configuration is not in this catalogue.")
        self.model_loader = model_loader or classifier_loader(store, self.config)
        self.batch_images = max(1, int(batch_images))
        self.loader_threads = max(1, int(loader_threads))
        self.batch_size_cache = batch_size_cache
        self.classification_batch_size = classification_batch_size

    def __call__(self, emit: Emit | None = None, control: JobControl | None = None) -> ClassifySummary:
        emit = safe_emit(emit)
        control = control or JobControl()
        started = time.monotonic()
        total_images, total_boxes = unclassified.count_unclassified_images(
            self.db, self.pipeline_id, self.min_score, self.image_ids)
        if not unclassified.has_classifiers(self.config) or total_boxes == 0:
            return self._summary("nothing to do", 0, 0, 0, started, None, ())
        if control.cancelled:
            return self._summary("cancelled", 0, 0, 0, started, None, ())
        choice = resolve_devices(self.devices)[0][0]
        emit(LogLine("info", f"Classifying {total_boxes} boxes of {total_images} images that "
                             f"score {self.min_score:.2f} or more but were not classified "
                             f"(loading the classifiers on {choice.label})."))
        models = self.model_loader(choice.device)
        processor = self._processor(models, choice, emit)
        run_id = jobqueue.start_run(
            self.db, self.pipeline_id, models=models.describe(self.store),
            devices=[{"device": choice.label, "name": choice.name, "threads": choice.threads}],
            settings={"task": TASK, "min_score": self.min_score,
                      "storage_floor": unclassified.floors_of(self.config)[0],
                      "classification_floor": unclassified.floors_of(self.config)[1],
                      "top_k": processor.top_k, "crop_fill": processor.crop_fill,
                      "images": (None if self.image_ids is None else
                                 self.image_ids if isinstance(self.image_ids, list)
                                 else "a selection"),
                      "batch_sizes": {choice.label: {
                          "classification": dict(processor.classification_batch_sizes)}},
                      "process": {"host": socket.gethostname(), "pid": os.getpid()}},
            app_version=__version__)
        status, done, failed, classified = "crashed", 0, 0, 0
        loader = ImageLoader(Decoder(full_resolution=True), self.loader_threads)
        try:
            done, failed, classified = self._work(processor, loader, choice, emit, control,
                                                  total_images, total_boxes, started)
            status = "cancelled" if control.cancelled else "finished"
        finally:
            loader.close()
            jobqueue.finish_run(self.db, run_id, status=status, images_done=done,
                                images_failed=failed, notes=list(processor.notes))
        return self._summary(status, classified, done, failed, started, run_id,
                             tuple(processor.notes))

    # -- steps --------------------------------------------------------------------------
    def _processor(self, models: ModelSet, choice, emit) -> BatchProcessor:
        tuner = BatchTuner(self.batch_size_cache, log_line=lambda lv, msg: emit(LogLine(lv, msg)))
        plan = tuner.plan(models, choice.device, choice.threads, detection=1,
                          classification=self.classification_batch_size)
        return BatchProcessor(None, models.binary, models.species, models.order,
                              classification_batch_sizes=plan.classification,
                              top_k=int(self.config.get("top_k", 5)),
                              crop_fill=float(self.config.get("crop_fill", 0.0)),
                              device=choice.device)

    def _work(self, processor, loader, choice, emit, control, total_images, total_boxes,
              started) -> tuple[int, int, int]:
        import torch

        if choice.threads:
            torch.set_num_threads(choice.threads)
        done = failed = classified = 0
        pending = unclassified.unclassified_images(self.db, self.pipeline_id, self.min_score,
                                                   self.image_ids)
        batch = self._submit(loader, pending)
        while batch:
            if control.paused:
                control.wait_while_paused(0.2)
                continue
            if control.cancelled:
                for _, future in batch:
                    future.cancel()
                break
            upcoming = self._submit(loader, pending)  # decoded while this batch classifies
            decoded = [future.result() for _, future in batch]
            for (item, _), image in zip(batch, decoded):
                if image.error is not None:
                    failed += 1
                    emit(ItemFailed(item.image_id, item.abs_path, image.error))
            detections = [[DetectionResult(Box(b.x1, b.y1, b.x2, b.y2), b.score, "")
                           for b in item.boxes] for item, _ in batch]
            processor.classify_detections(decoded, detections)
            results = {b.detection_id: d.classifications
                       for (item, _), dets in zip(batch, detections)
                       for b, d in zip(item.boxes, dets) if d.classifications}
            written = unclassified.record_classifications(self.db, self.pipeline_id, results)
            classified += written
            ok = [item.image_id for (item, _), image in zip(batch, decoded) if image.error is None]
            done += len(ok)
            emit(BatchCommitted(tuple(ok), written, choice.label))
            elapsed = time.monotonic() - started
            rate = (done + failed) / elapsed if elapsed > 0 else 0.0
            emit(RunProgress(done=done, total=total_images, unit="images", failed=failed,
                             rate=rate, eta_s=(total_images - done - failed) / rate if rate
                             else None, detections=classified, state="working",
                             message=f"Classified {classified} of {total_boxes} boxes"))
            batch = upcoming
        return done, failed, classified

    def _submit(self, loader: ImageLoader, pending) -> list:
        batch = []
        for item in pending:
            batch.append((item, loader.submit(item.image_id, item.abs_path,
                                              (item.width, item.height))))
            if len(batch) >= self.batch_images:
                break
        return batch

    def _summary(self, status, classified, images, failed, started, run_id, notes):
        _images, remaining = unclassified.count_unclassified_images(
            self.db, self.pipeline_id, self.min_score, self.image_ids)
        return ClassifySummary(status=status, pipeline_id=self.pipeline_id,
                               min_score=self.min_score, classified=classified, images=images,
                               failed_images=failed, remaining=remaining,
                               elapsed_s=time.monotonic() - started, run_id=run_id,
                               notes=notes)
