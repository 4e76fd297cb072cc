"""Events the engine emits while it runs: plain dataclasses, no Qt.

They are emitted from the engine's worker and writer threads, never from the thread that
called ``Engine.run``: the consumer must be thread-safe (see docs/engine.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class DeviceStatus:
    device: str  # "cuda:0", "cpu", "cpu#2" for a second CPU worker
    name: str  # "NVIDIA GeForce RTX 4090", "CPU (4 threads)"
    state: str  # loading | working | waiting | paused | idle | stopped | error
    batch_size: int
    images_per_s: float = 0.0
    images_done: int = 0


@dataclass
class RunSummary:
    run_id: int
    pipeline_id: int
    status: str  # finished | cancelled | crashed
    done: int
    failed: int
    detections: int
    elapsed_s: float
    images_per_s: float
    remaining: int
    devices: list[DeviceStatus] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


@dataclass
class Progress:
    done: int
    failed: int
    total: int
    detections: int
    images_per_s: float
    eta_s: float | None
    devices: list[DeviceStatus] = field(default_factory=list)
    paused: bool = False


@dataclass
class BatchCommitted:
    image_ids: list[int]
    detections: int
    device: str = ""


@dataclass
class ImageFailed:
    image_id: int
    path: str
    reason: str


@dataclass
class Log:
    level: str  # info | warning | error
    message: str


@dataclass
class Finished:
    summary: RunSummary


Event = Progress | BatchCommitted | ImageFailed | Log | Finished
