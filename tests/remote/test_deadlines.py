"""Total deadlines against servers that drip their answers one byte at a time (each byte well
within the read timeout, so only a deadline over the whole call can end it), prompt stops of
stuck downloads, and Retry-After capped on GET retries. Real HTTP to the real test server;
every wait is bounded by a join with a timeout so a regression fails instead of hanging."""

from __future__ import annotations

import threading
import time

import pytest

from trapgui.core.errors import RemoteError

pytestmark = pytest.mark.timeout(120)


def _in_thread(fn, *args):
    """Run ``fn`` on a daemon thread: (thread, box with 'result'/'error', start time)."""
    box: dict = {}

    def run():
        try:
            box["result"] = fn(*args)
        except BaseException as exc:  # noqa: BLE001 - looked at by the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    t.start()
    return t, box, start


def _downloader(server, **kw):
    from trapgui.remote.address_policy import AddressPolicy
    from trapgui.remote.downloader import ImageDownloader

    kw.setdefault("policy", AddressPolicy.for_server(server.base_url))
    return ImageDownloader(**kw)


def test_image_deadline_holds_against_a_dripping_server(server, tmp_path):
    # 0.2 s per byte of a ~10 kB image: about half an hour to finish, each byte far inside
    # the 3 s read timeout.
    server.inject("drip", r"/images/img00\.", times=None, seconds=0.2)
    dl = _downloader(server, threads=1, timeout=(2.0, 3.0), deadline_s=2.0, retries=2,
                     backoff_s=0.05)
    url = f"{server.root}/images/img00.jpg"
    t, box, start = _in_thread(dl.fetch, "a", url, tmp_path / "a.jpg")
    t.join(30)
    elapsed = time.monotonic() - start
    dl.shutdown(wait=False)
    assert not t.is_alive(), "the download outlived its 2 s deadline by more than 28 s"
    print(f"\n2 s deadline against a 0.2 s/byte drip: ended after {elapsed:.2f} s")
    result = box["result"]
    assert result.error and "longer than 2 s" in result.error, result.error
    assert elapsed < 2.0 + 10.0  # the deadline, plus slack for a loaded machine (was: never)
    assert not (tmp_path / "a.jpg").exists() and not (tmp_path / "a.jpg.part").exists()


def test_shutdown_stops_a_stuck_download_at_once(server, tmp_path):
    server.inject("drip", r"/images/img01\.", times=None, seconds=0.2)
    dl = _downloader(server, threads=2, timeout=(2.0, 3.0), deadline_s=600.0)
    future = dl.submit("b", f"{server.root}/images/img01.jpg", tmp_path / "b.jpg")
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and not server.state.image_requests.get("img01"):
        time.sleep(0.02)
    time.sleep(0.5)  # some bytes in: the download is inside the body
    t, _, start = _in_thread(dl.shutdown, True)  # a clean stop waits for running downloads
    t.join(30)
    elapsed = time.monotonic() - start
    assert not t.is_alive(), "shutdown(wait=True) blocked on a download stuck at 5 bytes/s"
    print(f"\nshutdown(wait=True) with a dripping download: returned after {elapsed:.2f} s")
    assert elapsed < 10.0  # at once, plus slack for a loaded machine (was: never)
    result = future.result(timeout=1)
    assert result.error == "The download was stopped."


def test_api_call_deadline_holds_against_a_dripping_server(server):
    from trapgui.remote.client import AntennaClient

    server.inject("drip", r"/projects/$", method="GET", times=None, seconds=0.2)
    client = AntennaClient(server.base_url, server.token, timeout=(2.0, 3.0), retries=0,
                           call_deadline_s=2.0)
    t, box, start = _in_thread(client.list_projects)
    t.join(30)
    elapsed = time.monotonic() - start
    client.close()
    assert not t.is_alive()
    print(f"\nAPI call, 2 s deadline against a drip: ended after {elapsed:.2f} s")
    assert isinstance(box.get("error"), RemoteError)
    assert "did not answer in time" in str(box["error"])
    assert elapsed < 2.0 + 10.0


def test_abort_ends_a_stuck_api_call(server):
    from trapgui.remote.client import AntennaClient

    server.inject("drip", r"/projects/$", method="GET", times=None, seconds=0.2)
    client = AntennaClient(server.base_url, server.token, timeout=(2.0, 3.0), retries=2)
    t, box, start = _in_thread(client.list_projects)
    time.sleep(1.0)
    client.abort()
    t.join(30)
    elapsed = time.monotonic() - start
    assert not t.is_alive()
    assert isinstance(box.get("error"), RemoteError) and "stopped" in str(box["error"])
    assert elapsed < 1.0 + 10.0


def test_retry_after_is_capped_on_get_retries(server):
    """A 503 with Retry-After: 25 must wait at most max_retry_wait (0.5 s here)."""
    from trapgui.remote.client import AntennaClient

    server.inject("status:503", r"/projects/$", method="GET", times=2,
                  headers={"Retry-After": "25"})
    client = AntennaClient(server.base_url, server.token, retries=3, backoff=0.01,
                           max_retry_wait=0.5)
    t, box, start = _in_thread(client.list_projects)
    t.join(60)
    elapsed = time.monotonic() - start
    client.close()
    assert not t.is_alive()
    print(f"\nGET after two 503 + Retry-After: 25 (cap 0.5 s): {elapsed:.2f} s")
    assert [p.id for p in box["result"]] == [1, 2]
    assert elapsed < 25.0  # uncapped it takes 50 s
    statuses = [s for m, p, s in server.state.requests if p.endswith("/projects/")]
    assert statuses == [503, 503, 200]


def test_retry_after_is_capped_on_post_retries(server):
    from trapgui.remote.client import AntennaClient

    server.add_job(3, "moth_binary", ["img00"])
    server.inject("status:503", r"/tasks/$", method="POST", times=1,
                  headers={"Retry-After": "3600"})
    client = AntennaClient(server.base_url, server.token, retries=2, backoff=0.01,
                           max_retry_wait=0.5)
    start = time.monotonic()
    assert len(client.claim_tasks(3, 1)) == 1
    assert time.monotonic() - start < 20.0  # uncapped: an hour
    client.close()


def test_a_post_stops_retrying_when_its_deadline_has_passed(server):
    """A dripped result post (idempotent: normally retried) ends at the call deadline, not
    after its remaining retries and their waits."""
    from trapgui.remote.client import AntennaClient

    server.add_job(4, "moth_binary", ["img00"])
    server.inject("drip", r"/result/$", method="POST", times=None, seconds=0.2)
    client = AntennaClient(server.base_url, server.token, timeout=(2.0, 3.0), retries=5,
                           backoff=2.0, max_retry_wait=5.0, call_deadline_s=2.0)
    t, box, start = _in_thread(client.post_results, 4, [])
    t.join(60)
    elapsed = time.monotonic() - start
    client.close()
    assert not t.is_alive()
    assert isinstance(box.get("error"), RemoteError) and "no complete answer" in str(box["error"])
    assert elapsed < 2.0 + 10.0  # five more tries with 2-5 s waits: ~20 s more
