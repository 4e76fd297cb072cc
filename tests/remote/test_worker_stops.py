"""`trapgui worker` with nothing to do does not spin, and a stop request ends it within a
bounded time whatever the server does (here: the job is done and the server has gone)."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tests.remote.processes import worker_process

pytestmark = pytest.mark.timeout(300)


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_posted(server, job_id: int, proc, timeout: float = 200) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.state.jobs[job_id].complete:
            return
        assert proc.poll() is None, proc.stderr.read()
        time.sleep(0.2)
    raise AssertionError("the worker did not finish the job")


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="needs /proc")
def test_idle_worker_sleeps_and_stops_after_sigint_then_sigterm(server, model_store, cheap_ids,
                                                               tmp_path):
    server.add_job(91, "moth_binary", cheap_ids[:2])
    proc = worker_process(server, tmp_path / "w", model_store.models_dir)
    try:
        _wait_posted(server, 91, proc)
        time.sleep(1.0)  # let the last post and the first idle poll settle
        before = _cpu_seconds(proc.pid)
        time.sleep(5.0)
        idle_cpu = _cpu_seconds(proc.pid) - before
        assert idle_cpu < 1.0, f"an idle worker used {idle_cpu:.2f} s of CPU in 5 s"

        server.stop()  # the server goes away for good
        proc.send_signal(signal.SIGINT)
        time.sleep(3.0)
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        started = time.monotonic()
        try:
            proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            raise AssertionError("the worker kept running after SIGINT and SIGTERM") from None
        assert time.monotonic() - started < 60
        # 130: it stopped on the first request; -15: it was still finishing (a last poll of
        # the vanished server) when SIGTERM came, and SIGTERM ended it
        assert proc.returncode in (130, 0, -signal.SIGTERM), proc.returncode
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate(timeout=30)
