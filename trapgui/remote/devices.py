"""One device worker per device for remote jobs: the same ``BatchProcessor`` as local runs.

Each runner owns its models (one ``BatchProcessor`` per pipeline slug, loaded before any task
is claimed so a missing model is a clear error, not a pile of failed tasks), sets its torch
threads and ``inference_mode`` inside its own thread, and writes results through the local
processing queue (``jobqueue.enqueue/claim/complete``) so the app shows remote images like local
ones, then hands the posted JSON to the worker.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from trapgui.db import jobqueue
from trapgui.ml.devices import DeviceChoice, resolve_devices
from trapgui.pipeline.loader import decode_image
from trapgui.pipeline.model_set import ModelSet, registry_loader
from trapgui.pipeline.processor import BatchProcessor, DecodedImage, describe_error
from trapgui.remote.pipelines import RemotePipeline, algorithm_refs
from trapgui.remote.schemas import error_result, pipeline_results_response
from trapgui.version import __version__

if TYPE_CHECKING:
    from trapgui.remote.worker import RemoteWorker, _Item

log = logging.getLogger(__name__)
LEASE_S = 600.0


@dataclass
class ProcessedTask:
    item: Any  # worker._Item
    result: dict  # PipelineResultsResponse or error result
    error: str | None
    local_image_id: int | None
    detections: int


def default_model_loader(pipeline: RemotePipeline, device: torch.device, store, config) -> ModelSet:
    """The engine's own loader (``pipeline.model_set.registry_loader``) for the slug's models."""
    spec = pipeline.spec(classification_batch_size=config.classification_batch_size,
                         top_k=config.top_k)
    return registry_loader(store, spec)(device)


class DeviceRunner:
    def __init__(self, worker: "RemoteWorker", choice: DeviceChoice):
        self.worker = worker
        self.choice = choice
        self.label = choice.label
        self.alive = True
        self.notes: list[str] = []
        self.processors: dict[str, BatchProcessor] = {}
        self.pipeline_ids: dict[str, int] = {}
        self.run_ids: dict[str, int] = {}
        self.counts = {"done": 0, "failed": 0}
        self.queue_worker = f"{worker.worker_name}:{choice.label}"

    def decode(self, path: Path) -> DecodedImage:
        """The engine's decoder, at the resolution the processors need (runs on a download
        thread, so decoding overlaps the device's work). A file it cannot decode comes back
        with ``error`` set and is answered with that reason."""
        first = next(iter(self.processors.values()))
        full = any(p.needs_full_resolution for p in self.processors.values())
        return decode_image(-1, str(path), max_side=first.detection_max_side,
                            full_resolution=full, pin_memory=self.choice.device.type == "cuda")

    def load(self) -> None:
        w = self.worker
        loader = w.model_loader or default_model_loader
        for slug, pipe in w.pipelines.items():
            spec = pipe.spec(classification_batch_size=w.config.classification_batch_size,
                             top_k=w.config.top_k)
            models: ModelSet = loader(pipe, self.choice.device, w.store, w.config)
            self.processors[slug] = BatchProcessor(
                models.detector, models.binary, models.species, models.order,
                classification_batch_size=spec.classification_batch_size, top_k=spec.top_k,
                score_floor=spec.detection_score_floor, crop_fill=spec.crop_fill)
            pid = jobqueue.get_or_create_pipeline(w.db, spec.key, spec.display_name,
                                               spec.result_config())
            self.pipeline_ids[slug] = pid
            self.run_ids[slug] = jobqueue.start_run(
                w.db, pid, models=models.describe(w.store),
                devices=[self.label], settings={"remote": w.client.base_url, "slug": slug},
                app_version=__version__)

    def loop(self) -> None:
        if self.choice.threads:
            torch.set_num_threads(self.choice.threads)
        try:
            with torch.inference_mode():
                while True:
                    batch = self.worker.next_batch()
                    if batch is None:
                        return
                    self.worker.batch_done(batch, self.process(batch), self.label)
        finally:
            self.alive = False
            status = "cancelled" if self.worker.stopping else "finished"
            for slug, run_id in self.run_ids.items():
                try:
                    jobqueue.finish_run(self.worker.db, run_id, status=status,
                                     images_done=self.counts["done"],
                                     images_failed=self.counts["failed"],
                                     notes=self.processors[slug].notes)
                except Exception:  # noqa: BLE001 - bookkeeping only
                    log.exception("Could not close processing run %s", run_id)

    def process(self, batch: list["_Item"]) -> list[ProcessedTask]:
        out: list[ProcessedTask] = []
        groups: dict[tuple[int, str], list] = {}
        for item in batch:
            d = item.download
            if d is None or d.error is not None or d.path is None:
                out.append(self.worker.error_for(item, d.error if d else "The image was not downloaded."))
            else:
                groups.setdefault((item.job_id, item.slug), []).append(item)
        for (job_id, slug), items in groups.items():
            try:
                out.extend(self._process_group(job_id, slug, items))
            except Exception as exc:  # noqa: BLE001 - answered with the reason, never dropped
                log.exception("Processing a batch of job %s failed", job_id)
                reason = f"Processing failed on {self.label}: {describe_error(exc)}"
                out.extend(self.worker.error_for(i, reason) for i in items)
        for p in out:
            self.counts["failed" if p.error else "done"] += 1
        return out

    def _process_group(self, job_id: int, slug: str, items: list) -> list[ProcessedTask]:
        w = self.worker
        pipe = w.pipelines[slug]
        pid = self.pipeline_ids[slug]
        ids = w.images.register(job_id, slug, [i.download.path for i in items])
        jobqueue.enqueue(w.db, pid, ids, requeue=True)
        jobqueue.claim(w.db, pid, self.queue_worker, len(ids), LEASE_S, image_ids=ids)
        decoded = [replace(i.download.payload, image_id=image_id) for i, image_id in zip(items, ids)]
        start = time.perf_counter()
        processed = self.processors[slug].process_with_scores(decoded)
        per_image = (time.perf_counter() - start) / max(1, len(items))
        jobqueue.complete(w.db, pid, self.run_ids[slug], self.queue_worker,
                       [p.result for p in processed])
        refs = algorithm_refs(pipe, w.store.model_catalogue if w.store is not None else None)
        out = []
        for item, image_id, p in zip(items, ids, processed):
            task = item.task
            if p.result.error is not None:
                out.append(ProcessedTask(item, error_result(p.result.error, task.image_id),
                                         p.result.error, image_id, 0))
                continue
            body = pipeline_results_response(
                pipeline_slug=slug, source_image_id=task.image_id, source_image_url=task.image_url,
                result=p.result, scores=p.scores, logits=p.logits, algorithms=refs,
                terminal_model=pipe.terminal, total_time=per_image + item.download.seconds)
            out.append(ProcessedTask(item, body, None, image_id, len(p.result.detections)))
        return out


def make_runners(worker: "RemoteWorker", devices) -> list[DeviceRunner]:
    """One runner per device, models loaded (raises ModelError / ModelNotInstalledError)."""
    choices, messages = resolve_devices(devices)
    for message in messages:
        worker._emit_log("warning", message)
    runners = [DeviceRunner(worker, c) for c in choices]
    errors: list[BaseException] = []

    def load(r: DeviceRunner):
        try:
            r.load()
        except BaseException as exc:  # noqa: BLE001 - re-raised below on the caller's thread
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(r,), daemon=True) for r in runners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return runners
