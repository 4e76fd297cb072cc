"""Processing for the GUI: what to run (settings → pipeline spec), on which images, and the run
itself as a job. Wraps :class:`trapgui.pipeline.engine.Engine`.

``run_job(scope)`` returns a job ``(emit, control) -> RunSummary``; the caller runs it on a
thread of its own (the GUI's job runner). Pause and cancel live only in that job's
``JobControl``. torch is imported when a run starts, never at import time.
"""

from __future__ import annotations

import dataclasses

from trapgui.core.errors import UserInputError
from trapgui.core.jobs import Emit, JobControl, LogLine, RunPlanned, RunSummary
from trapgui.services.processing_types import RunScope


class ProcessingService:
    def __init__(self, services):
        self._services = services

    # ---- configuration ------------------------------------------------------------------
    def settings_spec(self):
        """The pipeline the settings choose, installed or not."""
        from trapgui.pipeline.spec import PipelineSpec

        return PipelineSpec.from_settings(self._services.settings)

    def spec(self):
        """The pipeline a run uses: the settings' one less the classifiers that are not
        installed (the CLI does the same), so that resume and the views look at the results
        a run actually stores."""
        return self.settings_spec().without_uninstalled_classifiers(
            self._services.models.store)[0]

    def left_out(self):
        """The settings' classifiers a run goes without (``pipeline.spec.LeftOut``)."""
        return self.settings_spec().without_uninstalled_classifiers(
            self._services.models.store)[1]

    def pipeline_key_for_settings(self) -> str:
        return self.spec().key

    def unfinished(self) -> int:
        """Images still queued (pending, or claimed by a run that was interrupted) for the
        current settings: what "resume" would process."""
        from trapgui.db import catalogue_queries, jobqueue

        pid = catalogue_queries.pipeline_id_for_key(self._services.db,
                                                    self.pipeline_key_for_settings())
        if pid is None:
            return 0
        counts = jobqueue.counts(self._services.db, pid)
        return counts["pending"] + counts["claimed"]

    def missing_models(self) -> list[tuple[str, str]]:
        """(key, name) of the models a run needs and cannot go without (the detector)."""
        return self._services.models.missing_for(self.spec())

    # ---- the run ------------------------------------------------------------------------
    def run_job(self, scope: RunScope):
        """A job that queues the scope's images and processes them; returns the RunSummary.
        Emits RunPlanned (naming the classifiers left out because they are not installed, also
        as warning LogLines), then RunProgress, BatchCommitted, ItemFailed and LogLine.

        Raises ModelNotInstalledError (the detector has no weights), UserInputError (nothing
        to process) or Cancelled (cancelled before the start)."""

        def job(emit: Emit, control: JobControl) -> RunSummary:
            missing = self.missing_models()
            if missing:
                from trapgui.core.errors import ModelNotInstalledError

                key, name = missing[0]
                raise ModelNotInstalledError(key, name)
            from trapgui.pipeline.engine import Engine

            services = self._services
            left_out = self.left_out()
            engine = Engine(services.db, services.models.store, self.spec(),
                            devices=services.settings.device, low_priority=True)
            control.raise_if_cancelled("Processing was cancelled before it started.")
            planned, image_ids = self._queue(engine, scope)
            emit(dataclasses.replace(planned, left_out=tuple(left_out)))
            for model in left_out:
                emit(LogLine("warning", model.sentence("get it in Tools ▸ Models…")))
            control.raise_if_cancelled("Processing was cancelled before it started.")
            return engine.run(emit, control, image_ids=image_ids)

        return job

    def _queue(self, engine, scope: RunScope) -> tuple[RunPlanned, list[int] | None]:
        """The run's plan, and the images it covers (None: whatever is queued)."""
        name = engine.spec.display_name
        if scope.resume_only:
            return RunPlanned(scope.description, name, self.unfinished(), 0), None
        if scope.image_ids:
            ids = list(scope.image_ids)
        else:
            ids = []
            for dep in scope.deployment_ids or (None,):
                ids += self._services.catalogue.image_ids(
                    dep, list(scope.night_ids) or None, include_undated=scope.include_undated)
        if not ids:
            raise UserInputError("There are no readable images in the selection.",
                                 hint="Select a trap or nights that contain images.")
        queued = engine.enqueue_images(ids, requeue=scope.requeue)
        return RunPlanned(scope.description, name, len(ids), queued), ids
