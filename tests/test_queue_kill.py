"""Worker processes share one real SQLite file; one is SIGKILLed mid-batch, another at an
arbitrary moment. After a restart every image is done exactly once, with one set of results."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, insert, select

from trapgui.db import jobqueue, open_database
from trapgui.db.tables import Classification, Deployment, Detection, Image, Job, ProcessingRun
from tests.queue_worker import detections_for

WORKER = Path(__file__).resolve().parent / "queue_worker.py"
N_IMAGES = 240
LEASE_S = 2.0


def make_catalogue(path: Path) -> tuple[int, list[int]]:
    db = open_database(path)
    try:
        with db.write_session() as s:
            dep = s.execute(insert(Deployment).values(path="/traps/t1", name="t1").returning(
                Deployment.id)).scalar_one()
            s.execute(insert(Image), [{"deployment_id": dep, "rel_path": f"{i:05d}.jpg",
                                       "size": 1, "mtime": 1.0, "time_source": "none"}
                                      for i in range(N_IMAGES)])
            ids = list(s.scalars(select(Image.id)))
        pid = jobqueue.get_or_create_pipeline(db, "kill-test", "kill test", {"x": 1})
        assert jobqueue.enqueue(db, pid, ids) == N_IMAGES
    finally:
        db.close()
    return pid, ids


def start(db_path, pid, name, batch, *extra):
    return subprocess.Popen([sys.executable, str(WORKER), str(db_path), str(pid), name,
                             str(batch), str(LEASE_S), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(predicate, timeout=60.0, what=""):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def finish(proc, timeout=120):
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out


def test_sigkill_mid_batch_then_restart_every_image_done_exactly_once(tmp_path):
    db_path = tmp_path / "queue.sqlite3"
    pid, ids = make_catalogue(db_path)
    ready = tmp_path / "victim-mid-batch"

    victim = start(db_path, pid, "victim", 8, "--hang-on-batch", "2", "--ready", str(ready))
    wait_for(ready.exists, what="the victim to be mid-batch")
    hung_ids = {int(x) for x in ready.read_text().split(",")}
    workers = [start(db_path, pid, f"w{i}", 5) for i in range(3)]

    db = open_database(db_path)
    try:
        wait_for(lambda: jobqueue.counts(db, pid)["done"] >= 40, what="workers to make progress")
        victim.send_signal(signal.SIGKILL)
        victim.wait(timeout=10)
        assert victim.returncode == -signal.SIGKILL
        # a second kill at whatever point w0 has reached (possibly inside a transaction)
        wait_for(lambda: jobqueue.counts(db, pid)["done"] >= 90, what="more progress")
        os.kill(workers[0].pid, signal.SIGKILL)
        workers[0].wait(timeout=10)
        killed_at = time.time()
        for w in workers[1:]:
            finish(w)

        # "restart": leases of the killed processes run out, then claims go back to pending
        time.sleep(max(0.0, killed_at + LEASE_S + 0.1 - time.time()))
        jobqueue.reset_expired(db)
        left = jobqueue.counts(db, pid)
        assert left["claimed"] == 0 and left["failed"] == 0
        finish(start(db_path, pid, "restarted", 16))

        assert jobqueue.counts(db, pid) == {"pending": 0, "claimed": 0, "done": N_IMAGES,
                                         "failed": 0}
        with db.session() as s:
            runs = dict(s.execute(select(ProcessingRun.id, ProcessingRun.settings)).all())
            victim_run = next(r for r, st in runs.items() if st["worker"] == "victim")
            jobs = {j.image_id: j for j in s.scalars(select(Job))}
            det_runs = {}
            for image_id, run_id, n in s.execute(
                    select(Detection.image_id, Detection.run_id, func.count())
                    .group_by(Detection.image_id, Detection.run_id)):
                det_runs.setdefault(image_id, []).append((run_id, n))
            n_cls = s.execute(select(func.count()).select_from(Classification)).scalar()
            n_det = s.execute(select(func.count()).select_from(Detection)).scalar()
        for image_id in ids:
            job = jobs[image_id]
            # exactly one set of detections, written by the run that marked the job done
            assert det_runs[image_id] == [(job.run_id, detections_for(image_id))], image_id
        assert n_det == sum(detections_for(i) for i in ids) and n_cls == n_det
        for image_id in hung_ids:  # the victim's interrupted batch was redone by someone else
            assert jobs[image_id].run_id != victim_run
            assert jobs[image_id].attempts == 0  # a kill from outside blames no image
    finally:
        for w in [victim, *workers]:
            if w.poll() is None:
                w.kill()
                w.wait()
        db.close()
