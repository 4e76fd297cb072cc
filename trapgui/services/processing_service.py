"""Processing for the GUI: what to run (settings → pipeline spec), on which images, and the
controls of the run in progress. Wraps :class:`trapgui.pipeline.engine.Engine`.

``run`` blocks until the run ends: the GUI calls it from a thread of its own and passes a
``thread_factory`` so each device worker is hosted the way the GUI wants (QThreads). torch is
imported here only when a run starts, never at import time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import text

from trapgui.core.errors import Cancelled, UserInputError
from trapgui.services.processing_types import RunPlan, RunScope


class ProcessingService:
    def __init__(self, services):
        self._services = services
        self._lock = threading.Lock()
        self._engine = None
        from trapgui.core.jobs import JobControl

        self._control = JobControl()

    # ---- configuration ------------------------------------------------------------------
    def spec(self):
        from trapgui.pipeline.spec import PipelineSpec

        return PipelineSpec.from_settings(self._services.settings)

    def pipeline_key_for_settings(self) -> str:
        return self.spec().key

    def _pipeline_id(self) -> int | None:
        with self._services.db.session() as s:
            return s.execute(text("SELECT id FROM pipeline_configs WHERE key = :k"),
                             {"k": self.pipeline_key_for_settings()}).scalar()

    def unfinished(self) -> int:
        """Images still queued (pending, or claimed by a run that was interrupted) for the
        current settings: what "resume" would process."""
        pid = self._pipeline_id()
        if pid is None:
            return 0
        with self._services.db.session() as s:
            return int(s.execute(text(
                "SELECT COUNT(*) FROM jobs WHERE pipeline_id = :p AND state IN "
                "('pending', 'claimed')"), {"p": pid}).scalar() or 0)

    def missing_models(self) -> list[tuple[str, str]]:
        """(key, name) of the models the settings choose that are not installed."""
        return self._services.models.missing_for(self.spec())

    # ---- the run ------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._engine is not None

    def run(self, scope: RunScope, on_event: Callable, thread_factory=None,
            on_plan: Callable[[RunPlan], None] | None = None):
        """Queue the scope's images and process them; blocks; returns the RunSummary.

        Raises ModelNotInstalledError (a model the settings choose has no weights),
        UserInputError (nothing to process) or Cancelled (cancelled before the start)."""
        missing = self.missing_models()
        if missing:
            from trapgui.core.errors import ModelNotInstalledError

            key, name = missing[0]
            raise ModelNotInstalledError(key, name)
        services = self._services
        engine = self._cluster_engine()
        if engine is None:
            from trapgui.pipeline.engine import Engine

            engine = Engine(services.db, services.models.store, self.spec(),
                            devices=services.settings.device, thread_factory=thread_factory,
                            low_priority=True)
        with self._lock:
            control = self._control
            if control.cancelled:
                raise Cancelled("Processing was cancelled before it started.")
            self._engine = engine
        try:
            plan = self._queue(engine, scope)
            if on_plan is not None:
                on_plan(plan)
            control.raise_if_cancelled("Processing was cancelled before it started.")
            return engine.run(on_event, control, image_ids=plan.image_ids)
        finally:
            with self._lock:
                self._engine = None

    def _queue(self, engine, scope: RunScope) -> RunPlan:
        catalogue = self._services.catalogue
        name = engine.spec.display_name
        if scope.resume_only:
            return RunPlan(name, self.unfinished(), 0, None)
        if scope.image_ids:
            ids = list(scope.image_ids)
        else:
            ids = []
            for dep in scope.deployment_ids or (None,):
                ids += catalogue.image_ids(dep, list(scope.night_ids) or None,
                                           include_undated=scope.include_undated)
        if not ids:
            raise UserInputError("There are no readable images in the selection.",
                                 hint="Select a trap or nights that contain images.")
        queued = engine.enqueue_images(ids, requeue=scope.requeue)
        return RunPlan(name, len(ids), queued, ids)

    # ---- on a Dask cluster (Settings ▸ Process on a cluster) ---------------------------
    def _cluster_engine(self):
        from trapgui.services import cluster_service

        services = self._services
        choice = cluster_service.choice_from_settings(services.settings,
                                                      services.paths.config_dir)
        if choice is None:
            return None
        return cluster_service.make_engine(services.db, services.models.store, self.spec(),
                                           choice.value, choice.config_file)

    def test_cluster(self, mode: str | None = None, address: str | None = None, *,
                     local_workers: int | None = None, config_file: str | None = None,
                     timeout_s: float = 60.0, cancelled=lambda: False):
        """Test connection: the workers, threads, memory, GPUs and dashboard of the cluster
        the arguments (else the settings) choose, as a ``cluster_service.ClusterInfo``.
        Blocks (seconds to minutes): call it from a background thread."""
        import dataclasses

        from trapgui.services import cluster_service

        settings = dataclasses.replace(
            self._services.settings, cluster_mode=mode or self._services.settings.cluster_mode,
            **{k: v for k, v in (("cluster_address", address),
                                 ("cluster_local_workers", local_workers),
                                 ("cluster_config_file", config_file)) if v is not None})
        try:
            choice = cluster_service.choice_from_settings(settings,
                                                          self._services.paths.config_dir)
        except UserInputError as exc:
            return cluster_service.ClusterInfo(False, str(exc), mode=settings.cluster_mode)
        if choice is None:
            return cluster_service.ClusterInfo(False, "Processing on a cluster is off.",
                                               mode="off")
        return cluster_service.test_cluster(choice.value, choice.config_file,
                                            timeout_s=timeout_s, cancelled=cancelled)

    def pause(self) -> None:
        self._control.pause()

    def resume(self) -> None:
        self._control.resume()

    def cancel(self) -> None:
        """Stop within one batch; claims go back to the queue (nothing is lost)."""
        self._control.cancel()

    def reset_cancel(self) -> None:
        """A fresh control for the next run."""
        from trapgui.core.jobs import JobControl

        with self._lock:
            self._control = JobControl()
