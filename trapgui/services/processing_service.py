"""Processing for the GUI: what to run (settings → pipeline spec), on which images, and the run
itself as a job. Wraps :class:`trapgui.pipeline.engine.Engine`.

``run_job(scope)`` returns a job ``(emit, control) -> RunSummary``; the caller runs it on a
thread of its own (the GUI's job runner). Pause and cancel live only in that job's
``JobControl``. torch is imported when a run starts, never at import time.

Floors: a run stores boxes from the detector's storage floor and classifies those from its
classification floor. For the detection threshold control the GUI asks
:meth:`ProcessingService.classification_coverage` (off the GUI thread) how many boxes at the
threshold are "not classified yet", and runs :meth:`classify_below_floor_job` (a
``core.jobs`` job) to classify them on demand.
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

    def floors(self) -> tuple[float, float]:
        """(storage floor, classification floor) the settings give: the detector's defaults
        from the model catalogue unless the settings override them. No torch."""
        spec = self.spec()
        return spec.storage_floor, spec.classification_floor

    def floor_defaults(self) -> dict[str, tuple[float, float]]:
        """Detector key -> (storage floor, classification floor) from the model catalogue
        (the Settings dialog's "detector's default"). No torch."""
        from trapgui.ml.model_catalogue import detector_floors, load_model_catalogue

        catalogue = load_model_catalogue()
        return {spec.key: detector_floors(spec.key, catalogue) for spec in catalogue.detectors()}

    def batch_size_cache(self):
        from trapgui.pipeline.batch_size_cache import CACHE_FILE, BatchSizeCache

        return BatchSizeCache(self._services.paths.data_dir / CACHE_FILE)

    def tuned_batch_sizes(self) -> list:
        """The batch sizes measured on this computer for the settings' models (every device),
        as ``pipeline.batch_size_cache.TunedEntry``: what the Settings dialog shows. Reads a
        small JSON file; no torch."""
        spec = self.settings_spec()  # what the settings choose, installed or not
        keys = [k for k in (spec.detector, spec.binary, spec.order, spec.species) if k]
        return self.batch_size_cache().entries(keys)

    def forget_tuned_batch_sizes(self) -> None:
        """Measure again at the next run (a new GPU driver, a busy machine at the time)."""
        self.batch_size_cache().clear()

    # ---- boxes below the classification floor ---------------------------------------------
    def classification_coverage(self, detection_threshold: float, *,
                                night_ids=(), deployment_id: int | None = None,
                                pipeline_id: int | None = None):
        """For the detection threshold control: ``db.unclassified.ClassificationCoverage`` of
        the settings' model configuration (or ``pipeline_id``) at this threshold, over these
        nights (or this trap, or everything): ``unclassified`` boxes show as "not classified
        yet" until :meth:`classify_below_floor_job` has run. One indexed count; call it off
        the GUI thread."""
        from trapgui.db import unclassified

        pid = pipeline_id if pipeline_id is not None else self._pipeline_id()
        return unclassified.coverage(self._services.db, pid, detection_threshold,
                                     self._image_scope(night_ids, deployment_id))

    def classify_below_floor_job(self, detection_threshold: float, *, night_ids=(),
                                 deployment_id: int | None = None,
                                 pipeline_id: int | None = None):
        """A ``core.jobs`` job ``(emit, control) -> pipeline.classify_below_floor.
        ClassifySummary`` that classifies the stored boxes scoring at least
        ``detection_threshold`` that were not classified (below the classification floor), of
        these nights / this trap / everything. Emits ``RunProgress`` (images),
        ``BatchCommitted`` (refresh those images), ``ItemFailed`` and ``LogLine``. Raises
        UserInputError when nothing was processed with the settings' models yet."""
        from trapgui.pipeline.classify_below_floor import ClassifyBelowFloor

        pid = pipeline_id if pipeline_id is not None else self._pipeline_id()
        if pid is None:
            raise UserInputError("Nothing has been processed with the current models yet.",
                                 hint="Process the images first.")
        services = self._services
        job = ClassifyBelowFloor(services.db, services.models.store, pid, detection_threshold,
                                 image_ids=self._image_scope(night_ids, deployment_id),
                                 devices=services.settings.device,
                                 loader_threads=services.settings.loader_threads,
                                 batch_size_cache=self.batch_size_cache(),
                                 # the settings' fixed size, or None: measured, as in a run
                                 classification_batch_size=self.spec().classification_batch_size)
        return job

    def _image_scope(self, night_ids, deployment_id):
        from trapgui.db.export_queries import ExportScope, scope_images

        if night_ids:
            return scope_images(ExportScope.of(night_ids=list(night_ids)))
        if deployment_id is not None:
            return scope_images(ExportScope.of(deployment_ids=[deployment_id]))
        return None

    def _pipeline_id(self) -> int | None:
        from trapgui.db.catalogue_queries import pipeline_id_for_key

        return pipeline_id_for_key(self._services.db, self.pipeline_key_for_settings())

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
            engine = self._cluster_engine() or Engine(
                services.db, services.models.store, self.spec(),
                devices=services.settings.device, low_priority=True,
                batch_size_cache=self.batch_size_cache(),
                tracking=services.settings.tracking_params())
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

    # ---- on a Dask cluster (Settings ▸ Process on a cluster) ---------------------------
    def _cluster_engine(self):
        from trapgui.services import cluster_service

        services = self._services
        choice = cluster_service.choice_from_settings(services.settings,
                                                      services.paths.config_dir)
        if choice is None:
            return None
        return cluster_service.make_engine(services.db, services.models.store, self.spec(),
                                           choice.value, choice.config_file,
                                           tracking=services.settings.tracking_params())

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
