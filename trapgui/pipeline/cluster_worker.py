"""What runs on a Dask worker: the same device step as a local device worker.

The client sends a :class:`ClusterPipeline` (the pipeline spec and a picklable model loader)
with every batch; each worker process loads its model set once per pipeline (cached under the
pipeline's key) and keeps it for the rest of its life, so the first batch pays for loading and
every later one does not. Images are read and decoded here, from the storage the worker shares
with the client (``decode_image``, exactly as a local run decodes them), and only the compact
``ImageResult``s go back.

A worker may run several batches at once (its threads): they decode in parallel, and one
device step at a time runs on the worker's device (a lock per model set), like a local device
worker that decodes ahead. Nothing raised here reaches the client as an exception: failures
come back as data (a failed result naming the worker, or ``load_error``), because exceptions
with constructor arguments do not survive pickling.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from trapgui.core.types import ImageResult
from trapgui.pipeline.spec import PipelineSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClusterPipeline:
    """What a Dask worker needs to process a batch (sent with every task: it is small)."""

    spec: PipelineSpec
    loader: Callable  # (torch.device) -> ModelSet; picklable (a module-level class or function)
    key: str  # cache key: the pipeline's result key and the loader
    device: str = "auto"  # the worker's device setting: auto = its first GPU, else the CPU
    torch_threads: int | None = None  # None: the worker's thread count (CPU devices)


@dataclass(frozen=True)
class CatalogueModels:
    """The catalogue's models, loaded on the worker from ``models_dir`` (shared storage, or
    the same path on every node)."""

    models_dir: str
    spec: PipelineSpec

    def store(self):
        from trapgui.ml.store import ModelStore

        return ModelStore(Path(self.models_dir))

    def __call__(self, device):
        from trapgui.pipeline.model_set import registry_loader

        return registry_loader(self.store(), self.spec)(device)

    def describe(self, models) -> dict:
        return models.describe(self.store())


@dataclass(frozen=True)
class WorkerReport:
    """A Dask worker and the device its models run on."""

    address: str
    host: str
    pid: int
    device: str  # "cuda:0", "cpu"
    device_name: str  # "NVIDIA A100-SXM4-80GB", "CPU (4 threads)"
    threads: int | None
    models: dict = field(default_factory=dict)  # ModelSet.describe()
    notes: tuple[str, ...] = ()

    @property
    def where(self) -> str:
        return f"Dask worker {self.address} on {self.host}"


@dataclass
class BatchOutcome:
    results: list[ImageResult]
    worker: WorkerReport | None
    seconds: float = 0.0  # decode + device step, on the worker
    load_error: str | None = None  # the models could not be loaded there: nothing was done
    address: str = ""  # the worker's address (also when its models did not load)


class _Loaded:
    def __init__(self, processor, decoder, report: WorkerReport):
        self.processor = processor
        self.decoder = decoder
        self.report = report
        self.device_lock = threading.Lock()


KEEP_PIPELINES = 2  # model sets kept per worker process (the oldest goes first)
_CACHE: dict[str, _Loaded] = {}
_CACHE_LOCK = threading.Lock()


def _worker_identity() -> tuple[str, int]:
    try:
        from distributed import get_worker

        worker = get_worker()
        return worker.address, int(worker.state.nthreads)
    except (ImportError, ValueError, AttributeError):  # called outside a worker (tests)
        return f"pid {os.getpid()}", 1


def _load(pipeline: ClusterPipeline) -> _Loaded:
    with _CACHE_LOCK:  # one load per process and pipeline, however many threads ask
        loaded = _CACHE.get(pipeline.key)
        if loaded is not None:
            return loaded
        import torch

        from trapgui.ml.devices import resolve_devices
        from trapgui.pipeline.loader import Decoder
        from trapgui.pipeline.processor import BatchProcessor

        address, nthreads = _worker_identity()
        choices, messages = resolve_devices(pipeline.device)
        choice = choices[0]
        threads = None
        if choice.device.type == "cpu":
            threads = pipeline.torch_threads or nthreads
            torch.set_num_threads(threads)
        models = pipeline.loader(choice.device)
        spec = pipeline.spec
        processor = BatchProcessor(
            models.detector, models.binary, models.species, models.order,
            # batch sizes left to be measured (None) are not tuned on cluster workers yet
            classification_batch_size=spec.classification_batch_size or 64, top_k=spec.top_k,
            score_floor=spec.storage_floor, classification_floor=spec.classification_floor,
            crop_fill=spec.crop_fill, embeddings=getattr(spec, "embeddings", True))
        describe = getattr(pipeline.loader, "describe", None)
        report = WorkerReport(
            address=address, host=socket.gethostname(), pid=os.getpid(),
            device=str(choice.device) if choice.device.type != "cpu" else "cpu",
            device_name=(choice.name if choice.device.type != "cpu" else
                         f"CPU ({threads} thread{'s' if threads != 1 else ''})"),
            threads=threads,
            models=describe(models) if describe else models.describe(),
            notes=tuple(messages))
        decoder = Decoder.for_processors(processor, pin_memory=choice.device.type == "cuda")
        while len(_CACHE) >= KEEP_PIPELINES:  # a long-lived worker serving many configurations
            _CACHE.pop(next(iter(_CACHE)))
        loaded = _CACHE[pipeline.key] = _Loaded(processor, decoder, report)
        return loaded


def _describe(exc: BaseException) -> str:
    from trapgui.pipeline.processor import describe_error

    return describe_error(exc)


def _try_load(pipeline: ClusterPipeline) -> tuple[_Loaded | None, BatchOutcome | None]:
    from trapgui.core.errors import TrapguiError

    try:
        return _load(pipeline), None
    except Exception as exc:  # noqa: BLE001 - reported to the client as data
        address, _ = _worker_identity()
        log.exception("Loading the models failed")
        why = str(exc) if isinstance(exc, TrapguiError) else _describe(exc)
        return None, BatchOutcome([], None, address=address, load_error=(
            f"Dask worker {address} on {socket.gethostname()} cannot load the models: {why}"))


def load_models(pipeline: ClusterPipeline) -> BatchOutcome:
    """Load (or find loaded) the pipeline's models on this worker: the run's first task on
    every worker, so a model that cannot load stops the run before any image is claimed."""
    loaded, failed = _try_load(pipeline)
    return failed or BatchOutcome([], loaded.report, address=loaded.report.address)


def process_batch(pipeline: ClusterPipeline,
                  items: list[tuple[int, str, tuple[int | None, int | None]]]) -> BatchOutcome:
    """Decode and process ``items`` ((image id, path, (width, height)) each) here; failed
    images come back with a reason that names this worker."""
    loaded, failed = _try_load(pipeline)
    if failed is not None:
        return failed
    where = loaded.report.where
    start = time.perf_counter()
    try:
        images = [loaded.decoder(image_id, path, size) for image_id, path, size in items]
        for image in images:
            if image.error is not None:
                image.error = f"{image.error.rstrip('.')} ({where})."
        with loaded.device_lock:
            results = loaded.processor.process(images)
    except Exception as exc:  # noqa: BLE001 - like a local device worker: the batch fails
        reason = f"Processing failed on {where}: {_describe(exc)}"
        log.warning("%s (batch of %d images)", reason, len(items), exc_info=True)
        results = [ImageResult(image_id, error=reason) for image_id, _, _ in items]
    return BatchOutcome(results, loaded.report, time.perf_counter() - start,
                        address=loaded.report.address)


def worker_devices() -> dict:
    """What a worker can run on (Test connection): its torch devices, without loading models."""
    from trapgui.ml.devices import probe_devices

    probe = probe_devices()
    gpus = [d for d in probe.devices if d.kind == "cuda" and d.usable]
    address, nthreads = _worker_identity()
    return {"address": address, "host": socket.gethostname(), "pid": os.getpid(),
            "threads": nthreads, "gpus": [f"{d.id} ({d.name})" for d in gpus],
            "messages": list(probe.messages)}
