"""`trapgui worker` and Ctrl+C: the tasks already claimed are finished and posted, then the
process exits cleanly (code 130), nothing left claimed-but-unanswered on the server."""

from __future__ import annotations

import signal
import time

import pytest

from tests.remote.processes import worker_process

pytestmark = pytest.mark.timeout(300)


def test_ctrl_c_finishes_claimed_tasks_posts_and_exits(server, model_store, cheap_ids, tmp_path):
    ids = cheap_ids[:6]
    server.add_job(61, "moth_binary", ids)
    server.inject("delay", r"/images/", times=None, seconds=0.3)
    proc = worker_process(server, tmp_path / "w", model_store.models_dir)
    deadline = time.monotonic() + 200
    try:
        while time.monotonic() < deadline and not server.answers(61):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "finishing the claimed tasks" in err
    job = server.state.jobs[61]
    delivered = {t.id for t in job.tasks.values() if t.deliveries}
    answered = {t for t, a in server.answers(61).items() if a}
    assert delivered == answered  # every claimed task answered before exiting
    assert len(answered) < len(ids)  # and it did stop early
    assert "Traceback" not in err and server.token not in err
