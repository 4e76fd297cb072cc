"""Configuration of a remote-jobs worker (plain data). Its progress and summary are the
engine's own (``core.jobs.RunProgress``, ``RunSummary``)."""

from __future__ import annotations

from dataclasses import dataclass


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
