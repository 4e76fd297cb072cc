"""Processing the local queue on a Dask cluster: ``Engine`` with the device workers replaced.

Everything that makes a local run safe stays: the pipeline configuration is registered and
images are queued the same way, the work of dead trapgui processes is taken over at the start,
claims carry leases (renewed while held), the run is recorded in ``processing_runs``, and the
results go through the one writer in one transaction a batch. Only the device step moves: a
:class:`~trapgui.pipeline.cluster_pool.ClusterPool` sends the claimed batches to Dask workers.

    engine = ClusterEngine(db, store, spec, parse_cluster("local:2"))
    engine.enqueue_deployment(deployment_id)
    summary = run_job(engine.job(), emit, control)   # RunSummary, as for local runs
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from trapgui.core.jobs import Emit, JobControl, LogLine, RunSummary
from trapgui.core.tracking_params import TrackingParams
from trapgui.pipeline.cluster_config import ClusterTarget, JobqueueSettings
from trapgui.pipeline.cluster_connect import ClusterConnection, attach, open_cluster
from trapgui.pipeline.cluster_pool import ClusterPool
from trapgui.pipeline.cluster_source import ClusterSink, ClusterSource
from trapgui.pipeline.cluster_worker import CatalogueModels, ClusterPipeline
from trapgui.pipeline.engine import Engine
from trapgui.pipeline.spec import PipelineSpec

log = logging.getLogger(__name__)


class ClusterEngine(Engine):
    def __init__(self, db, store, spec: PipelineSpec, cluster, *,
                 jobqueue: JobqueueSettings | None = None, model_loader: Callable | None = None,
                 worker_device: str = "auto", torch_threads: int | None = None,
                 max_in_flight: int | None = None, tracking: TrackingParams | None = None):
        """``cluster``: a :class:`ClusterTarget` (opened for the run and closed after it), or a
        ``distributed.Client`` the caller keeps. ``model_loader(device) -> ModelSet`` runs on
        the workers and must be picklable (default: the catalogue's models from the store's
        folder, which the workers must see at the same path). ``worker_device``: the workers'
        device setting (auto = each worker's GPU, else its CPU); ``torch_threads``: torch
        threads of a CPU worker (default: its Dask thread count)."""
        super().__init__(db, store, spec, devices="cpu", model_loader=model_loader,
                         tracking=tracking)
        self.cluster = cluster
        self.jobqueue = jobqueue
        loader = model_loader or CatalogueModels(str(store.models_dir), spec)
        try:
            from dask.base import tokenize
        except ImportError:  # open_cluster says what is missing, in a sentence
            tokenize = repr
        self.pipeline = ClusterPipeline(spec, loader, key=f"{spec.key}:{tokenize(loader)}",
                                        device=worker_device, torch_threads=torch_threads)
        self.max_in_flight = max_in_flight

    def _connect(self, emit: Emit) -> ClusterConnection:
        if isinstance(self.cluster, ClusterTarget):
            emit(LogLine("info", f"Connecting to {self.cluster.description}."))
            connection = open_cluster(self.cluster, self.jobqueue)
        else:
            connection = attach(self.cluster)
        dashboard = connection.dashboard
        emit(LogLine("info", f"Dask dashboard: {dashboard}" if dashboard else
                     f"Connected to the Dask scheduler at {connection.address}; it serves no "
                     "dashboard (install bokeh where the scheduler runs to get one)."))
        return connection

    def _run(self, emit: Emit, control: JobControl, scope, recorder) -> RunSummary:
        # the recorder stays empty: nothing is decoded or run here, so a crash of this process
        # is never an image's fault
        with self._connect(emit) as connection:
            source = ClusterSource(self.db, self.pipeline_id, scope=scope,
                                   lease_s=self.spec.lease_s)
            sink = ClusterSink(self.db, self.pipeline_id, source, self.spec, self.store)
            pool = ClusterPool(connection.client, source, sink, self.pipeline,
                               batch_size=self.spec.detection_batch_size or 4,
                               cluster_info=connection.describe(),
                               max_in_flight=self.max_in_flight)
            outcome = pool.run(emit, control)
        return self._finish(outcome, source, sink, emit, control)
