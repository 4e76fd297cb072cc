"""The outbox is keyed by server, job, pipeline and task: a new job (a server whose database was
reset) or another pipeline that reuses task ids is processed afresh, never answered with
results computed for a different job."""

from __future__ import annotations

from collections import deque

import pytest

from tests.remote.antenna_test_server import Job, Task

pytestmark = pytest.mark.timeout(240)


def _same_task_ids(server, job_id: int, slug: str, like: int) -> None:
    """A job whose task ids are those of job ``like`` (a server reset that reuses ids)."""
    old = server.state.jobs[like]
    tasks = {t.id: Task(t.id, t.image_id) for t in old.tasks.values()}
    with server.state.lock:
        server.state.jobs[job_id] = Job(job_id, slug, tasks, deque(tasks))
        del server.state.jobs[like]


def test_a_new_job_reusing_task_ids_gets_fresh_results(server, make_worker, cheap_ids):
    ids = cheap_ids[:2]
    server.add_job(81, "moth_binary", ids)
    worker, _ = make_worker(server)
    first = worker.run()
    assert first.error is None and first.done == 2
    requests = dict(server.state.image_requests)

    _same_task_ids(server, 82, "moth_binary", like=81)
    worker2, events = make_worker(server)
    second = worker2.run()
    assert second.error is None
    assert second.done == 2  # the models ran again: nothing was re-posted from job 81
    assert all(server.state.image_requests[i] == requests[i] + 1 for i in ids)
    answers = server.answers(82)
    assert sorted(answers) == sorted(server.state.jobs[82].tasks)
    assert all(len(a) == 1 and "detections" in a[0][1] for a in answers.values())


def test_another_pipeline_reusing_task_ids_is_processed_with_its_own_models(
        server, make_worker, cheap_ids):
    ids = cheap_ids[:2]
    server.add_job(83, "moth_binary", ids)
    worker, _ = make_worker(server)
    assert worker.run().done == 2

    _same_task_ids(server, 84, "panama_moths_2023", like=83)
    worker2, _ = make_worker(server, slugs=("panama_moths_2023",))
    second = worker2.run()
    assert second.error is None and second.done == 2
    for [(_, result)] in server.answers(84).values():
        assert result["pipeline"] == "panama_moths_2023"
