"""Shared parts of the cluster tests: a real Dask scheduler and workers in their own processes
(so the scheduler can be killed), the catalogue's results per image, and the exactly-once
check."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from trapgui.db.tables import Classification, Detection, Image, Job

START_TIMEOUT_S = 240.0  # 2 shared cores under heavy load: processes start slowly


def wait_for(condition, timeout: float, what: str, interval: float = 0.1):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(interval)


class DaskProcesses:
    """``dask scheduler`` and ``dask worker`` as separate processes on loopback."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.scheduler_file = self.folder / "scheduler.json"
        self.procs: list[subprocess.Popen] = []
        self.scheduler: subprocess.Popen | None = None

    def _spawn(self, args: list[str], log: str) -> subprocess.Popen:
        out = open(self.folder / log, "ab")
        env = {**os.environ, "DASK_DISTRIBUTED__WORKER__DAEMON": "False"}
        proc = subprocess.Popen([sys.executable, "-m", *args], stdout=out, stderr=out, env=env,
                                start_new_session=True)
        out.close()
        self.procs.append(proc)
        return proc

    def start_scheduler(self) -> str:
        self.scheduler_file.unlink(missing_ok=True)
        self.scheduler = self._spawn(
            ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0",
             "--no-dashboard", "--scheduler-file", str(self.scheduler_file)], "scheduler.log")
        info = wait_for(self._read_scheduler_file, START_TIMEOUT_S, "the Dask scheduler")
        return info["address"]

    def _read_scheduler_file(self):
        assert self.scheduler is None or self.scheduler.poll() is None, self.log("scheduler.log")
        try:
            return json.loads(self.scheduler_file.read_text())
        except (OSError, ValueError):
            return None

    def start_worker(self, name: str, nthreads: int = 1) -> subprocess.Popen:
        return self._spawn(
            ["distributed.cli.dask_worker", "--scheduler-file", str(self.scheduler_file),
             "--nthreads", str(nthreads), "--name", name, "--no-dashboard",
             "--death-timeout", "30", "--memory-limit", "0"], f"worker-{name}.log")

    def kill_scheduler(self) -> None:
        assert self.scheduler is not None
        os.kill(self.scheduler.pid, signal.SIGKILL)
        self.scheduler.wait(timeout=60)

    def log(self, name: str) -> str:
        try:
            return (self.folder / name).read_text(errors="replace")[-3000:]
        except OSError:
            return ""

    def stop(self) -> None:
        """Every process this started (and their children: the nannies' workers)."""
        for proc in self.procs:
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        for proc in self.procs:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                pass
        self.procs.clear()


def results_by_image(db, pipeline_id: int) -> dict[str, list[tuple]]:
    """rel_path -> sorted detections (box, score, top label/score and every classification
    with its top-k labels and scores), exactly as stored."""
    out: dict[str, list[tuple]] = {}
    with db.session() as s:
        paths = dict(s.execute(select(Image.id, Image.rel_path)).all())
        dets = s.execute(select(Detection).where(Detection.pipeline_id == pipeline_id)).scalars()
        by_det: dict[int, list] = {}
        for c in s.execute(select(Classification).join(
                Detection, Detection.id == Classification.detection_id).where(
                Detection.pipeline_id == pipeline_id)).scalars():
            by_det.setdefault(c.detection_id, []).append(
                (c.model, c.rank, c.label, c.score, tuple(c.top_labels), tuple(c.top_scores)))
        for d in dets:
            out.setdefault(paths[d.image_id], []).append(
                (d.x1, d.y1, d.x2, d.y2, d.score, d.detector, d.binary_label, d.binary_score,
                 d.top_label, d.top_score, d.top_rank, tuple(sorted(by_det.get(d.id, ())))))
    return {k: sorted(v) for k, v in out.items()}


def exactly_once(db, pipeline_id: int) -> dict[str, int]:
    """Every job done or failed, and each image's detections from a single run, none twice."""
    with db.session() as s:
        states = dict(s.execute(select(Job.state, func.count()).where(
            Job.pipeline_id == pipeline_id).group_by(Job.state)).all())
        runs_per_image = s.execute(select(Detection.image_id,
                                          func.count(Detection.run_id.distinct()))
                                   .where(Detection.pipeline_id == pipeline_id)
                                   .group_by(Detection.image_id)).all()
        dupes = s.execute(select(func.count()).select_from(
            select(Detection.image_id, Detection.x1, Detection.y1, Detection.x2, Detection.y2)
            .where(Detection.pipeline_id == pipeline_id)
            .group_by(Detection.image_id, Detection.x1, Detection.y1, Detection.x2, Detection.y2)
            .having(func.count() > 1).subquery())).scalar()
    assert set(states) <= {"done", "failed"}, states
    assert all(n == 1 for _, n in runs_per_image), runs_per_image
    assert dupes == 0
    return states


def job_states(db, pipeline_id: int) -> dict[str, int]:
    with db.session() as s:
        return dict(s.execute(select(Job.state, func.count()).where(
            Job.pipeline_id == pipeline_id).group_by(Job.state)).all())
