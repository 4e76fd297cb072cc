"""Fault injection on the real test server: in every case no lost result, no crash, a clear
message. Each test bounds its work (small jobs, short timeouts, pytest-timeout)."""

from __future__ import annotations

import threading
import time

import pytest
from sqlalchemy import select

from trapgui.db.tables import Detection, RemoteTask
from trapgui.core.jobs import ItemFailed, LogLine

pytestmark = pytest.mark.timeout(180)


def _assert_every_task_answered_once(server, job_id):
    answers = server.answers(job_id)
    tasks = server.state.jobs[job_id].tasks
    missing = [t for t in tasks if not answers.get(t)]
    assert not missing, f"tasks never answered: {missing}"
    assert all(len(a) == 1 for a in answers.values()), answers
    return {t: a[0][1] for t, a in answers.items()}


def _messages(events):
    """What the user is told: log lines, and each failed item with its name and reason."""
    return [e.message if isinstance(e, LogLine) else f"{e.name}: {e.reason}"
            for e in events if isinstance(e, (LogLine, ItemFailed))]


def test_image_faults_become_error_results_or_retries(server, make_worker, cheap_ids):
    ids = cheap_ids[:6]
    server.add_job(21, "moth_binary", ids)
    server.inject("reset_mid_body", f"/images/{ids[0]}\\.", times=1)  # retried
    server.inject("truncated", f"/images/{ids[1]}\\.", times=None)  # error result
    server.inject("not_image", f"/images/{ids[2]}\\.", times=None)  # error result
    server.inject("status:503", f"/images/{ids[3]}\\.", times=1)  # retried
    server.inject("hang", f"/images/{ids[4]}\\.", times=1, seconds=4.0)  # read timeout, retried
    server.inject("status:404", f"/images/{ids[5]}\\.", times=None)  # error result
    worker, events = make_worker(server)
    summary = worker.run()

    assert summary.error is None
    results = _assert_every_task_answered_once(server, 21)
    by_image = {server.state.jobs[21].tasks[t].image_id: r for t, r in results.items()}
    for ok in (ids[0], ids[3], ids[4]):
        assert "detections" in by_image[ok], by_image[ok]
    assert "decoded" in by_image[ids[1]]["error"] or "truncated" in by_image[ids[1]]["error"]
    assert "not an image" in by_image[ids[2]]["error"]
    assert "HTTP 404" in by_image[ids[5]]["error"]
    assert all(by_image[i]["image_id"] == i for i in (ids[1], ids[2], ids[5]))
    assert summary.failed == 3 and summary.done + summary.failed == 6  # all answered
    assert server.state.image_requests[ids[0]] == 2  # one reset, one good download
    # failures are reported to the user, with the image named
    assert any(ids[2] in m and "not an image" in m for m in _messages(events))


def test_api_faults_are_retried_without_losing_or_duplicating(remote_images, make_worker,
                                                              captured_logs, cheap_ids):
    from tests.remote.antenna_test_server import AntennaTestServer

    ids = cheap_ids[:3]
    with AntennaTestServer(remote_images, visibility_timeout=2.0) as server:
        server.add_job(22, "moth_binary", ids)
        server.inject("status:500", r"/jobs$", method="GET", times=1)
        server.inject("malformed_json", r"/jobs$", method="GET", times=1)
        server.inject("hang", r"/jobs$", method="GET", times=1, seconds=4.0)
        server.inject("status:503", r"/tasks/$", method="POST", times=1)
        server.inject("status:502", r"/tasks/$", method="POST", times=1)
        server.inject("lose_reply", r"/tasks/$", method="POST", times=1)  # tasks redelivered later
        server.inject("status:500", r"/result/$", method="POST", times=2)
        server.inject("lose_reply", r"/result/$", method="POST", times=1)  # posted twice
        worker, events = make_worker(server, batch_size=2)
        summary = worker.run()

        assert summary.error is None
        results = _assert_every_task_answered_once(server, 22)
        assert all("detections" in r for r in results.values())
        assert server.state.rejected_results == []
        # the lost claim reply: those tasks came back after the visibility timeout
        assert any(len(t.deliveries) >= 2 for t in server.state.jobs[22].tasks.values()), (
            server.state.requests, [t.deliveries for t in server.state.jobs[22].tasks.values()])
        text = " ".join(_messages(events))
        assert "not valid JSON" in text
        assert server.token not in captured_logs.text
        assert server.token not in text


def test_bad_token_stops_with_clear_message_and_no_retry_storm(server, make_worker,
                                                                cheap_ids, captured_logs):
    server.add_job(23, "moth_binary", cheap_ids[:2])
    worker, events = make_worker(server, token="wrong-token-123", exit_when_idle=False)
    started = time.monotonic()
    summary = worker.run()

    assert time.monotonic() - started < 30
    assert summary.error is not None and "refused the token" in summary.error
    assert server.state.unauthorised <= 2
    assert server.answers(23) == {}
    assert "wrong-token-123" not in captured_logs.text
    assert all("wrong-token-123" not in m for m in _messages(events))


def test_server_restart_mid_job(server, make_worker, cheap_ids, db):
    ids = cheap_ids[:3]
    server.add_job(24, "moth_binary", ids)
    worker, events = make_worker(server, batch_size=1, prefetch_batches=0)
    restarted = threading.Event()

    def restart_after_first_answer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.answers(24):
            time.sleep(0.05)
        server.restart(downtime_s=1.5)
        restarted.set()

    t = threading.Thread(target=restart_after_first_answer, daemon=True)
    t.start()
    summary = worker.run()
    t.join(10)

    assert restarted.is_set()
    assert summary.error is None
    _assert_every_task_answered_once(server, 24)
    with db.session() as s:
        assert set(s.execute(select(RemoteTask.state)).scalars()) == {"posted"}


def test_duplicate_delivery_is_processed_once(server, make_worker, cheap_ids, db):
    ids = cheap_ids[:3]
    server.add_job(25, "moth_binary", ids)
    server.state.duplicate_next_claims = 1
    worker, _ = make_worker(server, batch_size=1, prefetch_batches=0)
    summary = worker.run()

    assert summary.error is None
    job = server.state.jobs[25]
    answers = server.answers(25)
    assert all(answers.get(t) for t in job.tasks)
    assert any(len(t.deliveries) > 1 for t in job.tasks.values())
    for task in job.tasks.values():  # each delivery answered at most once
        subjects = [s for s, _ in answers[task.id]]
        assert len(subjects) == len(set(subjects))
    # each image downloaded and processed once
    assert all(server.state.image_requests[i] == 1 for i in ids)
    assert summary.done == 3
    with db.session() as s:
        rows = s.execute(select(RemoteTask.task_id)).scalars().all()
        assert sorted(rows) == sorted(job.tasks)
        per_image = s.execute(select(Detection.image_id, Detection.run_id)).all()
    assert len({run for _, run in per_image}) <= 1


def test_outbox_posts_results_left_by_an_aborted_worker(server, make_worker, cheap_ids, db):
    ids = cheap_ids[:3]
    server.add_job(26, "moth_binary", ids)
    server.inject("status:503", r"/result/$", method="POST", times=None)  # the server is sick
    worker, _ = make_worker(server, exit_when_idle=False, batch_size=4)

    def abort_when_computed():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and worker.outbox.counts()["result_ready"] < 3:
            time.sleep(0.05)
        worker.control.abort()

    t = threading.Thread(target=abort_when_computed, daemon=True)
    t.start()
    first = worker.run()
    t.join(10)
    assert first.unposted == 3 and first.posted == 0
    assert server.answers(26) == {}

    server.state.faults.clear()  # the server recovers; a new session starts
    worker2, _ = make_worker(server)
    second = worker2.run()
    assert second.done == 0  # nothing processed again: the stored results were posted
    _assert_every_task_answered_once(server, 26)
    assert all(server.state.image_requests[i] == 1 for i in ids)


def test_claimed_but_unprocessed_tasks_are_resumed(server, make_worker, cheap_ids, db):
    """A session that stopped right after claiming (crash): the next one processes those
    tasks (from the outbox) before claiming anything new."""
    from trapgui.remote.client import AntennaClient
    from trapgui.remote.outbox import Outbox

    ids = cheap_ids[:2]
    server.add_job(27, "moth_binary", ids)
    client = AntennaClient(server.base_url, server.token)
    tasks = client.claim_tasks(27, 5)
    client.close()
    Outbox(db, server.base_url).record_claims(27, "moth_binary", tasks)
    assert server.state.jobs[27].queue == type(server.state.jobs[27].queue)()  # all in flight

    worker, events = make_worker(server)
    summary = worker.run()
    assert summary.done == 2
    _assert_every_task_answered_once(server, 27)
    assert any("Resuming 2 task(s)" in m for m in _messages(events))
