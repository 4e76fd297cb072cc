"""The engine: joins ml and db; turns queued images into results. No Qt.

``Engine`` and ``PipelineSpec`` are imported lazily (the engine pulls in torch)."""

from __future__ import annotations

__all__ = ["Engine", "PipelineSpec"]


def __getattr__(name: str):
    if name == "Engine":
        from trapgui.pipeline.engine import Engine

        return Engine
    if name == "PipelineSpec":
        from trapgui.pipeline.spec import PipelineSpec

        return PipelineSpec
    raise AttributeError(name)
