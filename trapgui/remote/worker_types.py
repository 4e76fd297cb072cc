"""Configuration, progress events and the summary of a remote-jobs worker (plain data)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorkerConfig:
    batch_size: int = 8  # tasks per claim and images per device batch
    batch_timeout_s: float = 0.5
    download_threads: int = 8
    devices: str | list[str] = "auto"
    classification_batch_size: int = 64
    top_k: int = 5
    job_ids: list[int] | None = None  # only these jobs (the GUI processes one job)
    exit_when_idle: bool = False  # return when no job has work (GUI) instead of polling (CLI)
    poll_min_s: float = 1.0
    poll_max_s: float = 30.0
    max_image_bytes: int = 200 * 1024 * 1024
    download_timeout: tuple[float, float] = (5.0, 20.0)
    download_deadline_s: float = 120.0
    final_post_timeout_s: float = 60.0
    prefetch_batches: int = 1  # claimed beyond the batch being processed


@dataclass
class RemoteProgress:
    """Like the local engine's ``Progress``: emitted after every batch and about every second."""

    tasks_done: int  # answered this session (results and error results)
    failures: int  # error results among them
    posted: int
    waiting_to_post: int
    in_flight: int  # claimed, not yet processed
    images_per_s: float
    eta_s: float | None  # the contract does not give a job's size: None unless known
    jobs: list[int]
    state: str  # "working" | "idle" | "stopping" | "posting" | "stopped"
    detections: int = 0
    last_error: str | None = None


@dataclass
class RemoteSummary:
    tasks_done: int
    failures: int
    posted: int
    unposted: int
    unfinished: int  # claimed but not processed (abort): processed on the next start
    elapsed_s: float
    images_per_s: float
    error: str | None = None
    notes: list[str] = field(default_factory=list)
