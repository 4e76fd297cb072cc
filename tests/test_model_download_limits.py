"""Model downloads against a server that drips its body one byte at a time (each byte well
within the read timeout): the total deadline holds, Cancel acts at once, and a transfer that
moves less than 64 kB in the stall window counts as stalled and is resumed with Range.
Real HTTP to tests/model_http_server.py; every wait is bounded."""

from __future__ import annotations

import threading
import time

import pytest

from model_http_server import Fault, ModelHTTPServer
from trapgui.core.errors import DownloadCancelled, DownloadError
from trapgui.ml.model_catalogue import parse_model_catalogue
from trapgui.ml.registry import make_random_weights
from trapgui.ml.store import ModelState, ModelStore
from tests.test_model_store import KEY, LABELS, WEIGHTS, local_catalogue

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    weights, labels = make_random_weights(KEY, tmp_path_factory.mktemp("pub") / "moth.pth", seed=1)
    return {"weights": weights.read_bytes(), "labels": labels.read_bytes()}


@pytest.fixture
def srv(published):
    with ModelHTTPServer() as server:
        server.add(WEIGHTS, published["weights"])
        server.add(LABELS, published["labels"])
        yield server


def _store(tmp_path, srv, **kw):
    return ModelStore(tmp_path / "models", parse_model_catalogue(local_catalogue(srv.base_url)),
                      **kw)


def _run(fn):
    box: dict = {}

    def run():
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - looked at by the test
            box["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    start = time.monotonic()
    t.start()
    return t, box, start


def test_download_deadline_holds_against_a_dripping_server(tmp_path, srv):
    # 2 MB at full speed, then 20 bytes/s
    srv.fault(WEIGHTS, Fault("drip", times=None, drop_after=2 << 20, delay_s=0.05))
    store = _store(tmp_path, srv, timeout=(5.0, 5.0), retries=2, backoff_s=0.01,
                   download_deadline_s=2.0)
    t, box, start = _run(lambda: store.download(KEY))
    t.join(30)
    elapsed = time.monotonic() - start
    assert not t.is_alive(), "the 2 s deadline did not hold"
    print(f"\nmodel download, 2 s deadline against a 20 byte/s drip: ended after {elapsed:.2f} s")
    assert isinstance(box.get("error"), DownloadError)
    assert "took longer than 2 s" in str(box["error"])
    assert elapsed < 2.0 + 10.0  # slack for a loaded machine (was: never)
    status = store.status(KEY)
    assert status.state is ModelState.PARTIAL and status.downloaded_bytes == 2 << 20  # kept


def test_cancel_ends_a_dripping_download_at_once(tmp_path, srv):
    srv.fault(WEIGHTS, Fault("drip", times=None, drop_after=1 << 20, delay_s=0.05))
    store = _store(tmp_path, srv, timeout=(5.0, 5.0))
    cancel = threading.Event()
    t, box, start = _run(lambda: store.download(KEY, cancel=cancel))
    time.sleep(1.0)
    cancelled_at = time.monotonic()
    cancel.set()
    t.join(30)
    assert not t.is_alive(), "Cancel did not stop a download stuck at 20 bytes/s"
    lag = time.monotonic() - cancelled_at
    print(f"\nmodel download cancelled during a drip: stopped {lag:.2f} s after Cancel")
    assert isinstance(box.get("error"), DownloadCancelled)
    assert lag < 8.0  # at once, plus slack for a loaded machine (was: never)
    assert store.status(KEY).downloaded_bytes == 1 << 20  # kept for a resume


def test_a_dripping_transfer_counts_as_stalled_and_resumes(tmp_path, srv, published):
    """Less than 64 kB in the stall window (3 s here): the attempt is cut and the next one
    resumes with Range where it stopped (3 MB at full speed, then a byte every 50 ms)."""
    srv.fault(WEIGHTS, Fault("drip", times=1, drop_after=3 << 20, delay_s=0.05))
    store = _store(tmp_path, srv, timeout=(5.0, 5.0), retries=3, backoff_s=0.01,
                   download_stall_s=3.0)
    start = time.monotonic()
    assert store.download(KEY).installed
    elapsed = time.monotonic() - start
    print(f"\nstalled attempt cut and resumed: installed after {elapsed:.2f} s")
    first, second = srv.requests_for(WEIGHTS)
    assert first.body_bytes < (3 << 20) + 64 * 1024  # cut by the stall rule, not finished
    assert second.range == f"bytes={3 << 20}-" and second.status == 206  # nothing fetched twice
    assert second.body_bytes == len(published["weights"]) - (3 << 20)
    assert store.weights_path(KEY).read_bytes() == published["weights"]
    assert elapsed < 60
