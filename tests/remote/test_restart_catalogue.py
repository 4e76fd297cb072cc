"""A remote worker killed mid-job and started again: every result the server received is in
the local catalogue at once (viewer, exports), not after the dead worker's leases expire."""

from __future__ import annotations

import sqlite3
import time

import pytest

from tests.remote.processes import database_path, worker_process

pytestmark = pytest.mark.timeout(300)


def _states(db_path) -> dict[str, int]:
    try:
        con = sqlite3.connect(db_path, timeout=5)
        try:
            return dict(con.execute(
                "SELECT state, COUNT(*) FROM remote_tasks GROUP BY state").fetchall())
        finally:
            con.close()
    except sqlite3.Error:  # not created yet
        return {}


def test_killed_worker_restarted_every_posted_result_is_in_the_catalogue(
        server, model_store, cheap_ids, tmp_path, make_worker):
    from trapgui.db import open_database

    ids = cheap_ids[:6]
    # as Antenna does: a task handed out and never answered is handed out again after a
    # while. The SIGKILL can land between the server handing tasks out and the worker
    # recording them locally; without a visibility timeout those tasks would wait forever
    # (generous enough that the restarted worker answers what it recorded first)
    server.state.visibility_timeout = 60.0
    server.add_job(71, "moth_binary", ids)
    server.inject("delay", r"/images/", times=None, seconds=0.4)  # the kill lands mid-job
    home = tmp_path / "killed"
    proc = worker_process(server, home, model_store.models_dir)
    db_path = database_path(home)
    deadline = time.monotonic() + 200
    try:
        while time.monotonic() < deadline:
            states = _states(db_path)
            if states.get("posted", 0) >= 2 and states.get("claimed", 0) >= 1:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.05)
    finally:
        proc.kill()  # SIGKILL: claims, leases and half-done work are left behind
        proc.communicate(timeout=30)
    before = _states(db_path)
    assert before.get("posted", 0) >= 2 and before.get("claimed", 0) >= 1, before

    server.state.faults.clear()
    database = open_database(db_path)
    try:
        worker, _ = make_worker(server, database=database)
        summary = worker.run()
        assert summary.error is None and summary.status == "finished"
        answers = server.answers(71)
        assert sorted(answers) == sorted(server.state.jobs[71].tasks)
        assert all(len(a) == 1 for a in answers.values())
        con = sqlite3.connect(db_path)
        try:
            rows = con.execute(
                "SELECT t.task_id, t.local_image_id, j.state, "
                "(SELECT COUNT(*) FROM detections d WHERE d.image_id = t.local_image_id "
                " AND d.pipeline_id = j.pipeline_id) "
                "FROM remote_tasks t JOIN jobs j ON j.image_id = t.local_image_id "
                "WHERE t.job_id = 71").fetchall()
        finally:
            con.close()
    finally:
        database.close()
    by_task = {task: (image, state, n) for task, image, state, n in rows}
    assert set(by_task) == set(answers)  # every posted task has its image in the catalogue
    for task, [(_, result)] in answers.items():
        image, state, n = by_task[task]
        assert state == "done", (task, state)
        assert n == len(result["detections"]), (task, n, len(result["detections"]))
