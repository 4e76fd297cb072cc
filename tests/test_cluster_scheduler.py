"""A Dask scheduler that disappears mid-run (SIGKILL, in its own process): the run stops with
a clear sentence, results that arrived are kept, every claim goes back to the queue, and a
run on a new scheduler finishes the rest, each image once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from tests.cluster_helpers import START_TIMEOUT_S, DaskProcesses, exactly_once, job_states, wait_for
from tests.cluster_models import TinyModels
from tests.pipeline_helpers import make_tiny_trap
from trapgui.core.jobs import BatchCommitted, run_job
from trapgui.db import open_database
from trapgui.db.tables import ProcessingRun
from trapgui.ml.store import ModelStore
from trapgui.pipeline.cluster_config import ClusterError, parse_cluster
from trapgui.pipeline.cluster_engine import ClusterEngine
from trapgui.pipeline.spec import PipelineSpec
from trapgui.scan.indexer import scan_folder

distributed = pytest.importorskip("distributed")

SPEC = PipelineSpec(binary="darkness_binary", detection_batch_size=1, loader_threads=1)


@pytest.fixture
def dask_procs(tmp_path):
    procs = DaskProcesses(tmp_path / "dask")
    yield procs
    procs.stop()


def _workers(address: str) -> int:
    with distributed.Client(address, timeout=60, set_as_default=False) as client:
        return len(client.scheduler_info(n_workers=-1)["workers"])


def test_lost_scheduler_stops_the_run_cleanly_and_a_restart_resumes(tmp_path, dask_procs):
    folder = make_tiny_trap(tmp_path / "trap", side=256, limit=8,
                            folders=("vermont", "sequential"))
    db = open_database(tmp_path / "c.sqlite3")
    try:
        deployment = scan_folder(db, folder).deployment_id
        store = ModelStore(tmp_path / "models")
        address = dask_procs.start_scheduler()
        dask_procs.start_worker("w1")
        wait_for(lambda: _workers(address) == 1, START_TIMEOUT_S, "the worker", interval=1)

        engine = ClusterEngine(db, store, SPEC, parse_cluster(address),
                               model_loader=TinyModels(species=False))
        engine.enqueue_deployment(deployment)
        killed = threading.Event()

        def emit(event):
            if isinstance(event, BatchCommitted) and not killed.is_set():
                killed.set()
                dask_procs.kill_scheduler()

        with pytest.raises(ClusterError) as err:
            run_job(engine.job(), emit)
        assert killed.is_set()
        text = str(err.value)
        assert text.startswith(f"The connection to the Dask scheduler at {address} was lost; "
                               "the run stopped and the ")
        assert "went back to the queue.\nStart the cluster again and run the same command" \
               in text
        states = job_states(db, engine.pipeline_id)
        assert states.get("claimed", 0) == 0, states
        assert 1 <= states.get("done", 0) < 8 and states.get("failed", 0) == 0
        with db.session() as s:
            run = s.execute(select(ProcessingRun)).scalar_one()
        assert run.status == "crashed" and run.ended_at is not None
        assert run.images_done == states["done"]
        assert any("was lost" in note for note in run.notes)

        dask_procs.stop()  # the old worker, waiting for a scheduler that will not come back
        address = dask_procs.start_scheduler()
        dask_procs.start_worker("w2")
        wait_for(lambda: _workers(address) == 1, START_TIMEOUT_S, "the new worker", interval=1)
        again = ClusterEngine(db, store, SPEC, parse_cluster(address),
                              model_loader=TinyModels(species=False))
        summary = run_job(again.job(), None)
        assert summary.status == "finished" and summary.done == 8 - states["done"]
        assert exactly_once(db, engine.pipeline_id) == {"done": 8}
    finally:
        db.close()
