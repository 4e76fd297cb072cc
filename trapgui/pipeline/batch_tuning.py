"""Batch sizes per device and model, from a short measurement on first use (then cached).

No fixed default suits every device: on a 2-core CPU a ResNet-50 at 128 px classifies ~34
crops/s in batches of 20 and ~22 in batches of 64 (caches overflow), while a GPU wants
hundreds. So the first run on a device times each model's forward pass at a few batch sizes
on synthetic input of the real shape (a few seconds per model), with each size's peak memory
(``pipeline.batch_memory``: sizes over the device's cap are not used, nor larger ones tried),
keeps the fastest (a smaller one within ``WITHIN`` of it: less memory, smoother progress),
and stores it in the data folder (``pipeline.batch_size_cache``) for later runs. Detectors that work one image at a
time on this device (the built-in detector on a CPU) are not measured.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from trapgui.pipeline.batch_memory import PeakMemory, batch_memory_cap_mb
from trapgui.pipeline.batch_size_cache import BatchSizeCache, TunedEntry, now_text
from trapgui.pipeline.processor import free_device_cache, is_out_of_memory

log = logging.getLogger(__name__)

WITHIN = 0.05  # a smaller batch this close to the fastest wins
# Ascending; measuring stops after two sizes in a row that are not faster than the best.
DETECTION_SIZES = {"cpu": (1, 2, 4), "cuda": (1, 2, 4, 8, 16), "mps": (1, 2, 4, 8)}
CLASSIFICATION_SIZES = {"cpu": (4, 8, 16, 32, 64),
                        "cuda": (16, 32, 64, 128, 256, 512), "mps": (16, 32, 64, 128, 256)}
BUDGET_S = {"cpu": 12.0, "cuda": 6.0, "mps": 8.0}  # per model: stop measuring larger sizes
TRAP_IMAGE = (2160, 4096)  # height, width of the usual AMI trap camera (detector input)
_DEVICE_LOCKS: dict[str, threading.Lock] = {}  # CPU workers must not measure at the same time
_LOCKS_LOCK = threading.Lock()


@dataclass
class BatchPlan:
    """What one device worker uses: images per detector batch, crops per classifier batch
    (per classifier key), and where each number came from (for the run record)."""

    detection: int
    classification: dict[str, int] = field(default_factory=dict)
    source: dict[str, str] = field(default_factory=dict)  # model key -> measured|cache|settings
    measured_s: float = 0.0  # time spent measuring in this run (0 when all came from the cache)
    memory_mb: dict[str, float] = field(default_factory=dict)  # model key -> one batch's peak

    def as_record(self) -> dict:
        return {"detection": self.detection, "classification": dict(self.classification),
                "source": dict(self.source), "measured_s": round(self.measured_s, 1),
                "batch_memory_mb": {k: round(v) for k, v in self.memory_mb.items()}}


def device_identity(device: torch.device, threads: int | None) -> str:
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        cap = torch.cuda.get_device_capability(index)
        return f"cuda:{index} ({torch.cuda.get_device_name(index)}, sm_{cap[0]}{cap[1]})"
    if device.type == "cpu":
        return f"cpu ({_cpu_model()}, {threads or torch.get_num_threads()} threads)"
    return f"{device.type}"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine() or "CPU"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps" and hasattr(torch, "mps"):
        torch.mps.synchronize()


@dataclass
class Timings:
    """What ``measure`` found: items per second and (where it can be read) the peak memory of
    one batch, MB, per batch size tried."""

    rates: dict[int, float]
    memory_mb: dict[int, float] = field(default_factory=dict)


def choose(rates: dict[int, float], memory_mb: dict[int, float] | None = None,
           cap_mb: float | None = None) -> int:
    """The smallest batch size within WITHIN of the fastest, among the sizes whose batches
    stay under ``cap_mb`` (the smallest size always qualifies: there is nothing smaller)."""
    memory_mb = memory_mb or {}
    smallest = min(rates)
    allowed = {n: r for n, r in rates.items() if n == smallest or cap_mb is None
               or memory_mb.get(n, 0.0) <= cap_mb}
    best = max(allowed.values())
    return min(n for n, r in allowed.items() if r >= (1 - WITHIN) * best)


def measure(run: Callable[[int], None], sizes: tuple[int, ...], device: torch.device,
            budget_s: float, cap_mb: float | None = None) -> Timings:
    """Items per second and peak memory for each size (ascending), after one warm-up at the
    smallest; stops after two sizes in a row that are not faster than the best, at a size
    whose batch goes over ``cap_mb`` (larger ones would take more), at a size the device has
    no memory for (not kept), or when the budget is spent.

    Each size is timed twice and the faster kept: the first call at a new shape also pays
    for allocating its buffers and building its kernels, which once decided the choice by
    more than the sizes differed (ResNet-50@128 on 2 cores: 4, 8 or 16 between first uses).
    The first call's peak memory is kept (it allocates what the size needs)."""
    run(sizes[0])
    _sync(device)
    peak = PeakMemory(device)
    found = Timings({})
    worse, started = 0, time.perf_counter()
    for n in sizes:
        best = float("inf")
        try:
            for attempt in range(2):
                if attempt == 0:
                    peak.start()
                t = time.perf_counter()
                run(n)
                _sync(device)
                best = min(best, time.perf_counter() - t)
                if attempt == 0 and (mb := peak.stop()) is not None:
                    found.memory_mb[n] = mb
        except Exception as exc:  # a GPU another program also uses: larger would fail too
            if not is_out_of_memory(exc):
                raise
            found.memory_mb.pop(n, None)
            free_device_cache(device)
            break
        found.rates[n] = n / max(best, 1e-9)
        worse = worse + 1 if found.rates[n] < max(found.rates.values()) else 0
        over = cap_mb is not None and found.memory_mb.get(n, 0.0) > cap_mb
        if worse >= 2 or over or time.perf_counter() - started > budget_s:
            break
    return found


def _synthetic_image(device: torch.device) -> torch.Tensor:
    """A trap-sized uint8 image: a bright sheet with smooth shading and grain (deterministic;
    the measurement times the forward pass, not what it finds)."""
    h, w = TRAP_IMAGE
    g = torch.Generator().manual_seed(0)
    shade = torch.linspace(150, 230, w).expand(h, w)
    grain = torch.randint(-12, 13, (3, h, w), generator=g)
    return (shade + grain).clamp_(0, 255).to(torch.uint8).to(device)


class BatchTuner:
    """Looks up or measures the batch sizes of one device's models."""

    def __init__(self, cache: BatchSizeCache | None = None,
                 log_line: Callable[[str, str], None] | None = None):
        self.cache = cache or BatchSizeCache()
        self._log = log_line or (lambda level, message: None)

    def plan(self, models, device: torch.device, threads: int | None, *,
             detection: int | None, classification: int | None) -> BatchPlan:
        """``detection`` / ``classification``: the fixed sizes of the settings, or None to
        tune. Runs on the device's loading thread (inference mode, its thread count)."""
        with _device_lock(device):
            if threads and device.type == "cpu":
                torch.set_num_threads(threads)
            identity = device_identity(device, threads)
            started = time.perf_counter()
            plan = BatchPlan(detection=detection or 1)
            measuring = []
            detector = models.detector
            if detector is None:  # classification only (the on-demand job)
                pass
            elif detection is None:
                if _one_image_at_a_time(detector, device):
                    plan.detection = DETECTION_SIZES.get(device.type, (1, 2, 4))[-1]
                    plan.source[detector.key] = "one image at a time on this device"
                else:
                    entry = self._entry(identity, detector, device, "detection", measuring)
                    plan.detection = entry.batch_size
                    if entry.memory_mb is not None:
                        plan.memory_mb[detector.key] = entry.memory_mb
                    plan.source[detector.key] = "measured" if measuring else "cache"
            else:
                plan.source[getattr(detector, "key", "detector")] = "settings"
            for clf in [m for m in (models.binary, models.order, models.species) if m]:
                key = clf.info.key
                if classification is None:
                    before = len(measuring)
                    entry = self._entry(identity, clf, device, "classification", measuring)
                    plan.classification[key] = entry.batch_size
                    if entry.memory_mb is not None:
                        plan.memory_mb[key] = entry.memory_mb
                    plan.source[key] = "measured" if len(measuring) > before else "cache"
                else:
                    plan.classification[key] = classification
                    plan.source[key] = "settings"
            if measuring:
                plan.measured_s = time.perf_counter() - started
                self._log("info", f"Batch sizes for {identity}, measured once in "
                                  f"{plan.measured_s:.0f} s and kept for later runs: "
                                  + "; ".join(e.describe() for e in measuring) + ".")
            return plan

    def _entry(self, identity: str, model, device: torch.device, role: str,
               measuring: list[TunedEntry]) -> TunedEntry:
        key = cache_key(identity, model, role)
        entry = self.cache.get(key)
        if entry is not None:
            return entry
        name = getattr(model, "key", None) or model.info.key
        self._log("info", f"Measuring the best {role} batch size of {name} on {identity} "
                          "(once; a few seconds).")
        cap = batch_memory_cap_mb(device)
        with torch.inference_mode():
            found = (self._measure_detector(model, device, cap) if role == "detection"
                     else self._measure_classifier(model, device, cap))
        size = choose(found.rates, found.memory_mb, cap)
        entry = TunedEntry(device=identity, model=name, role=role, batch_size=size,
                           per_s=round(found.rates[size], 2), measured_at=now_text(),
                           measured={str(n): round(r, 2) for n, r in found.rates.items()},
                           memory_mb=_rounded(found.memory_mb.get(size)),
                           measured_memory={str(n): round(m, 1)
                                            for n, m in found.memory_mb.items()},
                           memory_cap_mb=_rounded(cap))
        self.cache.put(key, entry)
        measuring.append(entry)
        return entry

    @staticmethod
    def _measure_detector(detector, device: torch.device, cap_mb: float | None) -> Timings:
        sizes = DETECTION_SIZES.get(device.type, (1, 2, 4))
        image = _synthetic_image(device)
        if not getattr(detector, "accepts_uint8", False):
            image = image.float().div_(255.0)
        return measure(lambda n: detector.detect([image] * n), sizes, device,
                       BUDGET_S.get(device.type, 10.0), cap_mb)

    @staticmethod
    def _measure_classifier(clf, device: torch.device, cap_mb: float | None) -> Timings:
        sizes = CLASSIFICATION_SIZES.get(device.type, (8, 16, 32, 64))
        side = int(clf.info.input_size)
        g = torch.Generator().manual_seed(0)
        crops = torch.randn((sizes[-1], 3, side, side), generator=g).to(device)
        return measure(lambda n: clf.predict(crops[:n]), sizes, device,
                       BUDGET_S.get(device.type, 10.0), cap_mb)


def _rounded(mb: float | None) -> float | None:
    return None if mb is None else round(mb, 1)


def cache_key(identity: str, model, role: str) -> str:
    if role == "detection":
        name, shape = model.key, "x".join(map(str, TRAP_IMAGE))
    else:
        name, shape = model.info.key, f"{model.info.input_size}px"
    return f"{identity}|{role}|{name}|{shape}|torch {torch.__version__}"


def _one_image_at_a_time(detector, device: torch.device) -> bool:
    """The built-in detector runs images one by one on a CPU (its own ``cpu_chunk``): its
    batch size only sets how many images are claimed and decoded together."""
    params = getattr(detector, "params", None)
    return device.type == "cpu" and getattr(params, "cpu_chunk", None) == 1


def _device_lock(device: torch.device) -> threading.Lock:
    name = str(device)
    with _LOCKS_LOCK:
        return _DEVICE_LOCKS.setdefault(name, threading.Lock())
