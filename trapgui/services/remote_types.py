"""Plain data the Remote tab receives from :class:`RemoteService` (cheap to import: no torch,
no requests, no SQLAlchemy)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ConnectionReport:
    ok: bool
    message: str  # a sentence for the user
    projects: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class PipelineChoice:
    slug: str
    ready: bool  # every model installed
    detail: str  # models it runs, or what is missing


@dataclass(frozen=True)
class RemoteJobRow:
    id: int
    pipeline_slug: str


@dataclass(frozen=True)
class RemoteRunStatus:
    """Progress of a remote run, like the local run's progress panel."""

    tasks_done: int
    failures: int
    posted: int
    waiting_to_post: int
    in_flight: int
    images_per_s: float
    eta_s: float | None
    state: str  # starting | working | idle | stopping | posting | stopped
    detections: int = 0
    last_error: str | None = None


@dataclass(frozen=True)
class RemoteRunMessage:
    level: str  # info | warning | error
    text: str


@dataclass(frozen=True)
class RemoteImagesProcessed:
    image_ids: list[int]  # catalogue ids: refresh views of these images


@dataclass(frozen=True)
class RemoteRunFinished:
    tasks_done: int
    failures: int
    posted: int
    unposted: int
    unfinished: int
    error: str | None
    elapsed_s: float
