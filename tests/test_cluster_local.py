"""Processing on a real ``distributed.LocalCluster`` on loopback: two worker processes (one
thread each), the built-in detector and small real torch classifiers loaded on the workers,
results written here through the one writer. Same results as the in-process engine, failures
naming the worker, a worker SIGKILLed mid-run, bounded claims, pause and cancel."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading

import pytest
from sqlalchemy import func, select

from tests.cluster_helpers import (START_TIMEOUT_S, exactly_once, job_states, results_by_image,
                                   wait_for)
from tests.cluster_models import BrokenModels, TinyModels
from tests.pipeline_helpers import make_tiny_trap
from trapgui.core.jobs import BatchCommitted, EventLog, ItemFailed, LogLine, RunProgress, run_job
from trapgui.db import open_database
from trapgui.db.tables import Detection, Image, Job, Occurrence, ProcessingRun
from trapgui.ml.devices import cpu_threads
from trapgui.ml.store import ModelStore
from trapgui.pipeline.cluster_config import ClusterError
from trapgui.pipeline.cluster_engine import ClusterEngine
from trapgui.pipeline.engine import Engine
from trapgui.pipeline.spec import PipelineSpec
from trapgui.scan.indexer import scan_folder

distributed = pytest.importorskip("distributed")

SIDE = 256
SPEC = PipelineSpec(binary="darkness_binary", species="tiny_species", detection_batch_size=2,
                    classification_batch_size=16, loader_threads=1)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        client.wait_for_workers(2, timeout=START_TIMEOUT_S)
        yield client


@pytest.fixture(scope="module")
def trap_src(tmp_path_factory):
    return make_tiny_trap(tmp_path_factory.mktemp("tiny-cluster"), side=SIDE, limit=8,
                          folders=("vermont", "sequential"))


@pytest.fixture
def trap(tmp_path, trap_src):
    return shutil.copytree(trap_src, tmp_path / "trap")


@pytest.fixture
def store(tmp_path):
    return ModelStore(tmp_path / "models")


def _catalogue(path, folder):
    db = open_database(path)
    return db, scan_folder(db, folder).deployment_id


def _cluster_engine(db, store, client, spec=SPEC, **kw):
    kw.setdefault("model_loader", TinyModels())
    return ClusterEngine(db, store, spec, client, **kw)


@pytest.fixture(scope="module")
def both_runs(tmp_path_factory, trap_src, client):
    """The same folder processed by the in-process engine and on the cluster (both track
    their nights at the end, as every run does): (here, dask) as (db, engine, summary, events)."""
    folder = tmp_path_factory.mktemp("both")
    store = ModelStore(folder / "models")
    db_here, dep_here = _catalogue(folder / "here.sqlite3", trap_src)
    db_dask, dep_dask = _catalogue(folder / "dask.sqlite3", trap_src)
    try:
        here = Engine(db_here, store, SPEC, devices="cpu", model_loader=TinyModels())
        here.enqueue_deployment(dep_here)
        local = run_job(here.job(), EventLog())
        dask = _cluster_engine(db_dask, store, client, torch_threads=cpu_threads())
        dask.enqueue_deployment(dep_dask)
        events = EventLog()
        summary = run_job(dask.job(), events)
        yield (db_here, here, local, None), (db_dask, dask, summary, events)
    finally:
        db_here.close()
        db_dask.close()


def test_cluster_results_equal_the_in_process_engine(both_runs):
    """Same decoder, same BatchProcessor, same batches (claimed in job order, two images
    each), same torch thread count: the arithmetic is the same, so every box, score, label and
    top-k score is equal to the last bit."""
    (db_here, here, local, _), (db_dask, dask, summary, events) = both_runs
    assert local.status == summary.status == "finished"
    assert summary.done == local.done == 8 and summary.failed == 0
    assert summary.detections == local.detections > 0
    expected = results_by_image(db_here, here.pipeline_id)
    got = results_by_image(db_dask, dask.pipeline_id)
    assert got == expected
    classified = [d for dets in got.values() for d in dets if d[-1]]
    assert classified and any(len(d[-1]) == 2 for d in classified)  # binary + species
    exactly_once(db_dask, dask.pipeline_id)

    # the run as a local run reports it: progress per Dask worker, commits, the record
    devices = {d.device for p in events.of(RunProgress) for d in p.devices}
    assert devices and all(d.startswith("dask:tcp://127.0.0.1:") for d in devices)
    assert sum(len(b.image_ids) for b in events.of(BatchCommitted)) == 8
    final = events.of(RunProgress)[-1]
    assert final.done == 8 and final.total == 8 and final.detections == summary.detections
    lines = [e.message for e in events.of(LogLine)]
    assert any("Dask dashboard" in m or "serves no dashboard" in m for m in lines), lines
    with db_dask.session() as s:
        run = s.execute(select(ProcessingRun)).scalar_one()
    assert run.status == "finished" and run.images_done == 8
    assert run.settings["cluster"]["address"].startswith("tcp://127.0.0.1:")
    assert all(d["device"].startswith("dask:") for d in run.devices)
    assert set(run.models) == {"builtin", "darkness_binary", "tiny_species"}


def test_a_cluster_run_tracks_its_nights_as_an_in_process_run(both_runs):
    """Tracking runs here, where the catalogue is, once the run's results are in: the same
    nights, the same individuals, made of the same detections (embeddings computed on the
    workers, by the same forward)."""
    (db_here, here, local, _), (db_dask, dask, summary, _) = both_runs
    assert summary.tracking is not None and local.tracking is not None
    assert len(summary.tracking.nights) == len(local.tracking.nights) >= 1
    assert summary.tracking.occurrences == local.tracking.occurrences > 0
    assert not summary.tracking.problems
    here_tracks, dask_tracks = (_tracks(db, e.pipeline_id) for db, e in
                                ((db_here, here), (db_dask, dask)))
    assert len(dask_tracks) == summary.tracking.occurrences
    assert dask_tracks == here_tracks
    with db_dask.session() as s:
        untracked = s.execute(select(func.count()).select_from(Detection).where(
            Detection.pipeline_id == dask.pipeline_id,
            Detection.occurrence_id.is_(None))).scalar()
    assert untracked == 0


def _tracks(db, pipeline_id):
    """Each occurrence as its label, fixture flag and the (image, box) of its detections."""
    with db.session() as s:
        paths = dict(s.execute(select(Image.id, Image.rel_path)).all())
        occ = {o.id: (o.label, o.fixture) for o in s.execute(
            select(Occurrence).where(Occurrence.pipeline_id == pipeline_id)).scalars()}
        members: dict[int, list] = {}
        for d in s.execute(select(Detection).where(Detection.pipeline_id == pipeline_id,
                                                   Detection.occurrence_id.is_not(None))
                           ).scalars():
            members.setdefault(d.occurrence_id, []).append(
                (paths[d.image_id], d.x1, d.y1, d.x2, d.y2))
    return sorted((*occ[o], tuple(sorted(m))) for o, m in members.items())


def test_unreadable_image_fails_with_a_reason_naming_the_worker(tmp_path, trap, store, client):
    db, dep = _catalogue(tmp_path / "c.sqlite3", trap)
    try:
        gone = sorted(trap.glob("*.jpg"))[3]
        gone.unlink()  # catalogued, then gone: the worker cannot read it
        engine = _cluster_engine(db, store, client)
        engine.enqueue_deployment(dep)
        events = EventLog()
        summary = run_job(engine.job(), events)
        assert summary.status == "finished" and summary.done == 7 and summary.failed == 1
        failed = events.of(ItemFailed)
        assert len(failed) == 1 and failed[0].name.endswith(gone.name)
        with db.session() as s:
            error = s.execute(select(Job.error).where(Job.state == "failed")).scalar_one()
        assert error == failed[0].reason
        assert error.startswith("Unreadable image: the file no longer exists (Dask worker "
                                "tcp://127.0.0.1:")
        exactly_once(db, engine.pipeline_id)
    finally:
        db.close()


def test_claims_stay_bounded_by_the_batches_in_flight(tmp_path, trap, store, client):
    """At most ``max_in_flight`` batches on the cluster and as many waiting for the writer
    (plus the one being written): never the whole archive."""
    db, dep = _catalogue(tmp_path / "c.sqlite3", trap)
    try:
        spec = PipelineSpec(binary="darkness_binary", detection_batch_size=1, loader_threads=1)
        engine = _cluster_engine(db, store, client, spec, max_in_flight=1,
                                 model_loader=TinyModels(species=False))
        engine.enqueue_deployment(dep)
        claimed = []
        events = EventLog()

        def emit(event):
            events(event)
            if isinstance(event, BatchCommitted):
                claimed.append(job_states(db, engine.pipeline_id).get("claimed", 0))

        summary = run_job(engine.job(), emit)
        assert summary.status == "finished" and summary.done == 8
        assert len(claimed) == 8 and max(claimed) <= 3, claimed
        exactly_once(db, engine.pipeline_id)
    finally:
        db.close()


def test_pause_then_cancel_then_resume(tmp_path, trap, store, client):
    """Pause: the batches in flight finish and are written, nothing more is claimed. Cancel:
    the run ends with nothing claimed. The next run does the rest, each image once."""
    db, dep = _catalogue(tmp_path / "c.sqlite3", trap)
    try:
        spec = PipelineSpec(binary="darkness_binary", detection_batch_size=1, loader_threads=1)
        engine = _cluster_engine(db, store, client, spec, model_loader=TinyModels(species=False))
        engine.enqueue_deployment(dep)
        from trapgui.core.jobs import JobControl

        control = JobControl()
        events = EventLog()

        def emit(event):
            events(event)
            if isinstance(event, BatchCommitted):
                control.pause()

        result = {}
        thread = threading.Thread(target=lambda: result.update(s=engine.run(emit, control)))
        thread.start()
        try:
            wait_for(lambda: control.paused and events.of(RunProgress)
                     and events.of(RunProgress)[-1].paused
                     and job_states(db, engine.pipeline_id).get("claimed", 0) == 0,
                     START_TIMEOUT_S, "the pause to settle")
            done_paused = job_states(db, engine.pipeline_id).get("done", 0)
            assert 1 <= done_paused < 8
            control.cancel()
        finally:
            thread.join(timeout=START_TIMEOUT_S)
        assert not thread.is_alive()
        first = result["s"]
        assert first.status == "cancelled" and first.remaining == 8 - first.done
        states = job_states(db, engine.pipeline_id)
        assert states.get("claimed", 0) == 0 and states["done"] == first.done
        second = run_job(engine.job(), None)
        assert second.status == "finished" and first.done + second.done == 8
        exactly_once(db, engine.pipeline_id)
    finally:
        db.close()


def test_models_that_cannot_load_on_the_workers_stop_before_anything_is_claimed(
        tmp_path, trap, store, client):
    db, dep = _catalogue(tmp_path / "c.sqlite3", trap)
    try:
        engine = _cluster_engine(db, store, client, model_loader=BrokenModels())
        engine.enqueue_deployment(dep)
        with pytest.raises(ClusterError) as err:
            run_job(engine.job(), None)
        text = str(err.value)
        assert "cannot load the models" in text and "is not installed" in text
        assert "Dask worker tcp://127.0.0.1:" in text
        assert job_states(db, engine.pipeline_id) == {"pending": 8}
        with db.session() as s:
            assert s.execute(select(ProcessingRun)).first() is None
    finally:
        db.close()


def test_test_connection_lists_the_workers(client):
    from trapgui.services import cluster_service

    info = cluster_service.test_cluster(client.scheduler.address, timeout_s=START_TIMEOUT_S)
    assert info.ok, info.message
    assert len(info.workers) == 2 and info.threads == 2 and info.gpus == 0
    assert all(w.host and w.address.startswith("tcp://127.0.0.1:") for w in info.workers)
    assert info.message == f"2 workers, 2 threads, {info.memory_bytes / 2**30:.1f} GiB, no GPU."

    refused = cluster_service.test_cluster("tcp://127.0.0.1:9", timeout_s=5)
    assert not refused.ok
    assert refused.message.startswith("Could not connect to the Dask scheduler at "
                                      "tcp://127.0.0.1:9")


def test_cli_processes_a_folder_on_a_running_scheduler(tmp_path, trap, client):
    env = {**os.environ, "TRAPGUI_CONFIG_DIR": str(tmp_path / "cfg"),
           "TRAPGUI_DATA_DIR": str(tmp_path / "data")}
    cmd = [sys.executable, "-m", "trapgui", "--db", str(tmp_path / "c.sqlite3"), "process",
           str(trap), "--classifier", "none", "--quiet", "--cluster", client.scheduler.address]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr + done.stdout
    assert "finished: 8 images done, 0 failed" in done.stdout
    assert f"Connecting to the Dask scheduler at {client.scheduler.address}" in done.stderr
    assert "dashboard" in done.stderr

    bad = subprocess.run(cmd[:-1] + ["local:zero"], capture_output=True, text=True,
                         timeout=300, env=env)
    assert bad.returncode == 2
    assert "'local:zero' is not a local cluster" in bad.stderr


def test_a_worker_killed_mid_run_leaves_every_image_done_exactly_once(tmp_path, trap, store):
    """SIGKILL a worker process while it holds a batch: Dask runs the batch again on the
    other worker (and the nanny restarts the killed one); every image ends done once."""
    db, dep = _catalogue(tmp_path / "c.sqlite3", trap)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address="127.0.0.1:0") as cluster, \
            distributed.Client(cluster, set_as_default=False) as client:
        try:
            client.wait_for_workers(2, timeout=START_TIMEOUT_S)
            spec = PipelineSpec(binary="darkness_binary", detection_batch_size=1,
                                loader_threads=1)
            engine = _cluster_engine(db, store, client, spec,
                                     model_loader=TinyModels(species=False))
            engine.enqueue_deployment(dep)
            killed = {}

            def emit(event):
                if isinstance(event, BatchCommitted) and not killed:
                    busy = {w for w, keys in client.processing().items()
                            if any(str(k).startswith("trapgui-batch-") for k in keys)}
                    if not busy:
                        return  # nothing on a worker right now: try at the next commit
                    victim = sorted(busy)[0]
                    pid = client.run(os.getpid, workers=[victim])[victim]
                    os.kill(pid, signal.SIGKILL)
                    killed.update(address=victim, pid=pid)

            summary = run_job(engine.job(), emit)
            assert killed, "no batch was in flight after a commit: nothing was tested"
            assert summary.status == "finished" and summary.done == 8 and summary.failed == 0
            assert exactly_once(db, engine.pipeline_id) == {"done": 8}
            assert killed["address"] not in client.scheduler_info(n_workers=-1)["workers"]
        finally:
            db.close()
