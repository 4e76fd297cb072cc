"""The remote fault corpus: what a hostile or broken server does, each against the real test
server and a real worker. The rule for every kind: the fault is retried or reported, the run
goes on, every task is answered exactly once, and nothing hangs (each run is timed)."""

from __future__ import annotations

import struct
import threading
import time
import zlib

import pytest

from tests.remote.antenna_test_server import AntennaTestServer
from trapgui.core.jobs import ItemFailed, LogLine
from trapgui.remote.downloader import UNREACHABLE

pytestmark = pytest.mark.timeout(240)


def _answered_once(server, job_id) -> dict[str, dict]:
    """{image id: result} after checking that every task has exactly one answer."""
    job = server.state.jobs[job_id]
    answers = server.answers(job_id)
    missing = [t for t in job.tasks if not answers.get(t)]
    assert not missing, f"tasks never answered: {missing}"
    assert all(len(a) == 1 for a in answers.values()), answers
    return {job.tasks[t].image_id: a[0][1] for t, a in answers.items()}


def _run(worker, limit_s: float):
    start = time.monotonic()
    summary = worker.run()
    elapsed = time.monotonic() - start
    print(f"\n  run took {elapsed:.1f} s")
    assert elapsed < limit_s, f"the run took {elapsed:.0f} s"
    return summary


def _warnings(events) -> str:
    return " ".join((e.message if isinstance(e, LogLine) else f"{e.name}: {e.reason}")
                   for e in events if isinstance(e, (LogLine, ItemFailed)))


def test_slow_drip_image_and_api_bodies(remote_images, make_worker, cheap_ids):
    ids = cheap_ids[:3]
    with AntennaTestServer(remote_images, visibility_timeout=2.0) as server:
        server.add_job(61, "moth_binary", ids)
        server.inject("drip", f"/images/{ids[0]}\\.", times=None, seconds=0.2)
        server.inject("drip", r"/jobs$", method="GET", times=1, seconds=0.2)
        server.inject("drip", r"/result/$", method="POST", times=1, seconds=0.2)
        worker, events = make_worker(server, download_deadline_s=3.0)
        summary = _run(worker, 90)
        assert summary.error is None
        results = _answered_once(server, 61)
    assert results[ids[0]]["error"] == "The image took longer than 3 s to download."
    assert all("detections" in results[i] for i in ids[1:])
    assert "did not answer in time" in _warnings(events)


def test_retry_after_storm_is_waited_out_within_caps(server, make_worker, cheap_ids):
    ids = cheap_ids[:3]
    server.add_job(62, "moth_binary", ids)
    storm = {"Retry-After": "3600"}
    server.inject("status:503", r"/jobs$", method="GET", times=3, headers=storm)
    server.inject("status:503", r"/tasks/$", method="POST", times=3, headers=storm)
    server.inject("status:503", r"/result/$", method="POST", times=3, headers=storm)
    server.inject("status:429", f"/images/{ids[0]}\\.", times=1, headers=storm)
    worker, _ = make_worker(server)
    summary = _run(worker, 90)  # uncapped: hours
    assert summary.error is None
    results = _answered_once(server, 62)
    assert all("detections" in r for r in results.values())
    assert server.state.image_requests[ids[0]] == 2  # waited (capped), then fetched


def test_redirect_to_a_private_address_is_an_error_result(server, make_worker, cheap_ids):
    ids = cheap_ids[:3]
    server.add_job(63, "moth_binary", ids)
    server.inject("redirect", f"/images/{ids[0]}\\.", times=None,
                  target="http://169.254.169.254/latest/meta-data/")
    server.inject("redirect", f"/images/{ids[1]}\\.", times=None,
                  target=f"{server.root}/images/{ids[2]}.jpg")  # its own address: allowed
    worker, _ = make_worker(server)
    summary = _run(worker, 90)
    assert summary.error is None and summary.failed == 1
    results = _answered_once(server, 63)
    assert results[ids[0]] == {"error": UNREACHABLE, "image_id": ids[0]}
    assert "detections" in results[ids[1]] and "detections" in results[ids[2]]


def _pixel_bomb() -> bytes:
    """A valid PNG header declaring 100000 x 100000 pixels (a few dozen bytes on the wire)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\0" * 1000)) + chunk(b"IEND", b""))


def test_oversized_images_are_error_results(remote_images, make_worker, cheap_ids):
    ids = cheap_ids[:4]
    images = dict(remote_images, bomb=_pixel_bomb())
    with AntennaTestServer(images) as server:
        server.add_job(64, "moth_binary", [*ids, "bomb"])
        server.inject("oversized", f"/images/{ids[0]}\\.", times=None)  # Content-Length says
        server.inject("oversized_undeclared", f"/images/{ids[1]}\\.", times=None)  # it does not
        limit = 4 * max(len(remote_images[i]) for i in ids)
        worker, _ = make_worker(server, max_image_bytes=limit)
        summary = _run(worker, 90)
        assert summary.error is None and summary.failed == 3
        results = _answered_once(server, 64)
    assert "too large" in results[ids[0]]["error"]
    assert "larger than the" in results[ids[1]]["error"]
    assert results["bomb"]["error"]  # refused, whatever the pixel-limit wording becomes
    assert all("detections" in results[i] for i in ids[2:])


def test_malformed_json_everywhere_is_retried(remote_images, make_worker, cheap_ids):
    ids = cheap_ids[:3]
    with AntennaTestServer(remote_images, visibility_timeout=60.0) as server:
        server.add_job(65, "moth_binary", ids)
        for path, method in ((r"/jobs$", "GET"), (r"/tasks/$", "POST"), (r"/result/$", "POST")):
            server.inject("malformed_json", path, method=method, times=1)
        worker, events = make_worker(server)
        summary = _run(worker, 120)
        assert summary.error is None
        results = _answered_once(server, 65)
    assert all("detections" in r for r in results.values())
    assert "not valid JSON" in _warnings(events)


def test_token_revoked_mid_job_stops_cleanly_and_nothing_is_lost(server, make_worker,
                                                                   cheap_ids):
    """401 in the middle of a job: the worker stops at once with a clear sentence (no retry
    storm); what it holds stays in the outbox; with the token back, the next run finishes
    the job and every task is answered once."""
    ids = cheap_ids[:4]
    server.add_job(66, "moth_binary", ids)
    worker, events = make_worker(server, batch_size=1, prefetch_batches=0,
                                 exit_when_idle=False)
    revoked = threading.Event()

    def revoke_after_first_answer():
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not server.answers(66):
            time.sleep(0.02)
        server.state.token = "rotated-token"
        revoked.set()

    threading.Thread(target=revoke_after_first_answer, daemon=True).start()
    summary = _run(worker, 120)
    assert revoked.is_set()
    assert summary.error and "refused the token (HTTP 401)" in summary.error
    assert server.state.unauthorised <= 3  # one refused call per thread, not a storm
    assert 1 <= len(server.answers(66)) < len(ids)

    server.state.token = "s3cret-T0KEN-for-tests"
    again, _ = make_worker(server)
    second = _run(again, 120)
    assert second.error is None
    results = _answered_once(server, 66)
    assert all("detections" in r for r in results.values())
