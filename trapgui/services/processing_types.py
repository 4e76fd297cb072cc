"""Plain values describing a processing request and its plan (no SQLAlchemy, no torch), so
the GUI can build them without importing the heavier services."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class RunScope:
    """What a run covers. ``image_ids`` wins; else ``night_ids`` of ``deployment_ids``; an
    empty scope means "finish what is already queued" (resuming an interrupted run)."""

    deployment_ids: tuple[int, ...] = ()
    night_ids: tuple[int, ...] = ()
    include_undated: bool = False
    image_ids: tuple[int, ...] = ()
    requeue: bool = False
    description: str = ""

    @property
    def resume_only(self) -> bool:
        return not (self.deployment_ids or self.night_ids or self.image_ids)


@dataclass
class RunPlan:
    """Decided before the run: how many images are in scope and which will be processed."""

    pipeline_name: str
    in_scope: int
    newly_queued: int
    image_ids: list[int] | None = field(default=None, repr=False)
