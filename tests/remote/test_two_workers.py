"""Two worker processes (`trapgui worker`, as on two machines) on the same job: the server's
atomic claims give each task to one of them; no task is processed twice, none is lost."""

from __future__ import annotations

import sqlite3
import subprocess
from pathlib import Path

import pytest

from tests.remote.processes import database_path, worker_process

pytestmark = pytest.mark.timeout(300)


def _tasks_in(db_path: Path) -> list[tuple[str, str]]:
    con = sqlite3.connect(db_path)
    try:
        return con.execute("SELECT task_id, state FROM remote_tasks").fetchall()
    finally:
        con.close()


def test_two_worker_processes_share_a_job_without_duplicates(server, model_store, cheap_ids,
                                                              tmp_path):
    ids = cheap_ids[:4]
    server.add_job(31, "moth_binary", ids)
    server.inject("delay", r"/images/", times=None, seconds=0.2)  # spread the work out
    procs = [worker_process(server, tmp_path / f"w{i}", model_store.models_dir,
                            "--exit-when-idle") for i in (1, 2)]
    outputs = []
    for p in procs:
        try:
            out, err = p.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            raise
        outputs.append(err)
        assert p.returncode == 0, err

    job = server.state.jobs[31]
    assert all(len(t.deliveries) == 1 for t in job.tasks.values())  # each claimed once
    answers = server.answers(31)
    assert sorted(answers) == sorted(job.tasks)
    assert all(len(a) == 1 for a in answers.values())
    mine = [_tasks_in(database_path(tmp_path / f"w{i}")) for i in (1, 2)]
    sets = [{t for t, _ in rows} for rows in mine]
    assert not (sets[0] & sets[1]), "a task was processed by both workers"
    assert sets[0] | sets[1] == set(job.tasks)
    assert all(state == "posted" for rows in mine for _, state in rows)
    assert all(server.state.image_requests[i] == 1 for i in ids)
    for err in outputs:
        assert server.token not in err
        assert "tasks done" in err
