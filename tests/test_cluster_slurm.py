"""The dask-jobqueue path against a real one-node SLURM (Debian's slurm-wlm and munge, set up
and started by ``scripts/slurm_test_setup.sh`` in a folder of its own): `trapgui process
--cluster slurm` submits the Dask workers as batch jobs, processes the folder on them, and
cancels the jobs at the end; Test connection starts one job and lists its worker.

Skipped, with the script's reason, where SLURM cannot run (not root, no apt-get, a daemon
that does not start)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster_helpers import START_TIMEOUT_S, exactly_once, results_by_image, wait_for
from tests.pipeline_helpers import make_tiny_trap
from trapgui.db import open_database
from trapgui.ml.devices import cpu_threads

pytest.importorskip("dask_jobqueue")

REPO = Path(__file__).resolve().parent.parent
SCRIPT = REPO / "scripts" / "slurm_test_setup.sh"


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    if not sys.platform.startswith("linux"):
        pytest.skip("the one-node SLURM of these tests runs on Linux only")
    if not os.environ.get("TRAPGUI_TEST_SLURM"):
        # installing and starting slurm-wlm and munge takes minutes: opt in
        pytest.skip("set TRAPGUI_TEST_SLURM=1 to set up a one-node SLURM and test on it")
    state = tmp_path_factory.mktemp("slurm")
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True,
                             text=True, timeout=1200)
    last = (started.stdout.strip().splitlines() or [""])[-1]
    if started.returncode == 77:
        pytest.skip(last.removeprefix("skip: "))
    assert started.returncode == 0, started.stdout + started.stderr
    conf = last.removeprefix("SLURM_CONF=")
    previous = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = conf  # sbatch / squeue / scancel of dask-jobqueue find it
    try:
        yield state
    finally:
        if previous is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = previous
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], timeout=120)


def _jobs() -> list[str]:
    out = subprocess.run(["squeue", "-h", "-o", "%i %j %T"], capture_output=True, text=True,
                         timeout=60)
    return [line for line in out.stdout.splitlines() if line.strip()]


def _config(path: Path, state: Path, jobs: int = 1, cores: int = 1) -> Path:
    path.write_text(f"""
[slurm]
queue = "trapgui"
cores = {cores}
processes = 1
memory = "4GB"
walltime = "00:20:00"
jobs = {jobs}
log_directory = "{state / 'dask-logs'}"
""", encoding="utf-8")
    return path


def test_process_on_slurm_through_dask_jobqueue(tmp_path, slurm):
    folder = make_tiny_trap(tmp_path / "trap", side=256, limit=6,
                            folders=("vermont", "sequential"))
    # each worker gets as many torch threads as the local run has (all cores; the test
    # partition lets jobs share them), so the arithmetic is the same to the last bit
    config = _config(tmp_path / "cluster.toml", slurm, jobs=2, cores=cpu_threads())
    env = {**os.environ, "TRAPGUI_CONFIG_DIR": str(tmp_path / "cfg"),
           "TRAPGUI_DATA_DIR": str(tmp_path / "data")}
    db_path = tmp_path / "c.sqlite3"
    base = [sys.executable, "-m", "trapgui", "--db", str(db_path), "process", str(folder),
            "--classifier", "none", "--quiet", "--device", "cpu", "--batch-size", "2"]
    done = subprocess.run(base + ["--cluster", "slurm", "--cluster-config", str(config)],
                          capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stdout + done.stderr + "\n".join(
        p.read_text(errors="replace")[-2000:] for p in (slurm / "dask-logs").glob("*.err"))
    assert "finished: 6 images done, 0 failed" in done.stdout
    assert "Connecting to a SLURM cluster (dask-jobqueue)." in done.stderr
    assert "Dask worker tcp://" in done.stderr  # a batch job's worker joined and got ready
    scripts = list((slurm / "dask-logs").glob("*.out")) + list((slurm / "dask-logs").glob("*.err"))
    assert scripts, "no batch job ran"
    wait_for(lambda: not _jobs(), START_TIMEOUT_S, "the batch jobs to be cancelled", 1)

    # the same images processed here, in the same batches with the same thread count, give
    # the same detections
    local_db = tmp_path / "here.sqlite3"
    here = subprocess.run([*base[:4], str(local_db), *base[5:], "--cluster", "off"],
                          capture_output=True, text=True, timeout=900, env=env)
    assert here.returncode == 0, here.stderr
    a, b = open_database(db_path), open_database(local_db)
    try:
        assert exactly_once(a, 1) == {"done": 6}
        assert results_by_image(a, 1) == results_by_image(b, 1)
    finally:
        a.close()
        b.close()


def test_test_connection_starts_one_job_and_lists_its_worker(tmp_path, slurm):
    from trapgui.services import cluster_service

    config = _config(tmp_path / "cluster.toml", slurm, jobs=3)  # a test starts only one
    info = cluster_service.test_cluster("slurm", config, timeout_s=START_TIMEOUT_S)
    assert info.ok, info.message
    assert info.mode == "slurm" and len(info.workers) == 1
    assert info.workers[0].threads == 1 and info.gpus == 0
    assert info.message.startswith("1 worker, 1 thread, ")
    wait_for(lambda: not _jobs(), START_TIMEOUT_S, "the test's batch job to be cancelled", 1)


def test_a_refused_job_is_said_in_a_sentence(tmp_path, slurm):
    from trapgui.services import cluster_service

    config = _config(tmp_path / "cluster.toml", slurm)
    config.write_text(config.read_text().replace('queue = "trapgui"', 'queue = "nosuchqueue"'))
    info = cluster_service.test_cluster("slurm", config, timeout_s=30)
    assert not info.ok
    assert info.message.startswith("Could not submit the SLURM jobs of the Dask workers (")
    assert "nosuchqueue" in info.message or "partition" in info.message.lower()
