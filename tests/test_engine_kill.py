"""`trapgui process` is SIGKILLed twice in the middle of a run; restarted, it finishes with
every image done exactly once and exactly one set of detections per image."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from sqlalchemy import func, select

from tests.pipeline_helpers import make_tiny_trap
from trapgui.db import open_database
from trapgui.db.tables import Detection, Job, ProcessingRun


def _cmd(db_path, folder):
    return [sys.executable, "-m", "trapgui", "--db", str(db_path), "process", str(folder),
            "--classifier", "none", "--device", "cpu", "--batch-size", "1", "--quiet"]


def _done(db_path) -> int:
    if not db_path.exists():
        return 0
    db = open_database(db_path)
    try:
        with db.session() as s:
            return s.execute(select(func.count()).select_from(Job).where(
                Job.state == "done")).scalar()
    except Exception:  # the child is still creating the schema
        return 0
    finally:
        db.close()


def _run_until(db_path, folder, done_at_least: int, timeout: float = 120.0) -> None:
    proc = subprocess.Popen(_cmd(db_path, folder), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    try:
        while _done(db_path) < done_at_least:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no progress"
            time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()


def test_killed_process_restarts_and_finishes_every_image_exactly_once(tmp_path):
    folder = make_tiny_trap(tmp_path / "trap", side=256, limit=8,
                            folders=("vermont", "sequential"))
    db_path = tmp_path / "catalogue.sqlite3"
    _run_until(db_path, folder, 2)
    first = _done(db_path)
    _run_until(db_path, folder, first + 2)
    assert _done(db_path) < 8, "the kills came too late to test anything"
    done = subprocess.run(_cmd(db_path, folder), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    db = open_database(db_path)
    try:
        with db.session() as s:
            states = dict(s.execute(select(Job.state, func.count()).group_by(Job.state)).all())
            per_image = s.execute(select(Detection.image_id, func.count(),
                                         func.count(Detection.run_id.distinct()))
                                  .group_by(Detection.image_id)).all()
            job_runs = dict(s.execute(select(Job.image_id, Job.run_id)).all())
            det_runs = dict(s.execute(select(Detection.image_id, func.min(Detection.run_id))
                                      .group_by(Detection.image_id)).all())
            runs = s.execute(select(ProcessingRun.status).order_by(ProcessingRun.id)).scalars().all()
            dupes = s.execute(select(func.count()).select_from(
                select(Detection.image_id).group_by(
                    Detection.image_id, Detection.x1, Detection.y1, Detection.x2, Detection.y2)
                .having(func.count() > 1).subquery())).scalar()
    finally:
        db.close()
    assert states == {"done": 8}
    assert len(per_image) == 8  # every image has detections...
    assert all(n_runs == 1 for _, _, n_runs in per_image)  # ...from one run only
    assert all(det_runs[i] == job_runs[i] for i in det_runs)  # the run that marked it done
    assert runs == ["crashed", "crashed", "finished"]
    assert dupes == 0  # no box stored twice


def test_ctrl_c_twice_stops_at_once_and_a_rerun_finishes_the_rest(tmp_path):
    """Ctrl+C cancels after the batch in hand; a second Ctrl+C stops at once with exit 130
    (it once aborted the interpreter with exit 134). Nothing is lost either way."""
    folder = make_tiny_trap(tmp_path / "trap", side=256, limit=8,
                            folders=("vermont", "sequential"))
    db_path = tmp_path / "catalogue.sqlite3"
    proc = subprocess.Popen(_cmd(db_path, folder), stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while _done(db_path) < 1:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=60)[1]
    # 130: stopped by the handler; -SIGINT: the cancel had already finished and the second
    # Ctrl+C met the interpreter's own shutdown. Never an abort (134) or a C++ terminate.
    assert proc.returncode in (130, -signal.SIGINT), err
    assert "terminate called" not in err and "Fatal Python error" not in err
    rerun = subprocess.run(_cmd(db_path, folder), capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert _done(db_path) == 8
