"""A worker process killed (SIGKILL) while the server refuses results: the next start posts
what it had computed and processes what it had claimed, every task answered exactly once."""

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


def test_killed_worker_results_are_posted_on_restart(server, model_store, cheap_ids, tmp_path,
                                                     make_worker):
    from trapgui.db import open_database

    ids = cheap_ids[:3]
    server.add_job(51, "moth_binary", ids)
    server.inject("status:503", r"/result/$", method="POST", times=None)  # results refused
    home = tmp_path / "killed"
    proc = worker_process(server, home, model_store.models_dir)
    db_path = database_path(home)
    deadline = time.monotonic() + 200
    try:
        while time.monotonic() < deadline and _states(db_path).get("result_ready", 0) < 2:
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.2)
    finally:
        proc.kill()  # SIGKILL: no cleanup, no final flush
        proc.communicate(timeout=30)
    before = _states(db_path)
    assert before.get("result_ready", 0) >= 2 and server.answers(51) == {}

    server.state.faults.clear()  # the server recovers; the worker starts again on that database
    database = open_database(db_path)
    try:
        worker, _ = make_worker(server, database=database)
        summary = worker.run()
    finally:
        database.close()
    assert summary.error is None
    answers = server.answers(51)
    assert sorted(answers) == sorted(server.state.jobs[51].tasks)
    assert all(len(a) == 1 for a in answers.values())
    assert all("detections" in a[0][1] for a in answers.values())
    # only what had no result yet was processed again
    assert summary.done == 3 - before.get("result_ready", 0)
    assert _states(db_path) == {"posted": 3}
