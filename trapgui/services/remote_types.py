"""Plain data the Remote tab receives from :class:`RemoteService` (cheap to import: no torch,
no requests, no SQLAlchemy). A remote run reports with the ``core.jobs`` events, like a local
run; these are only the answers of the tab's own questions."""

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
