"""ml.http_guard on real sockets: failures told apart by exception type (not by reading
exception texts), scopes that nest, and a watchdog that sleeps when nothing is guarded."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests

from trapgui.ml import http_guard
from trapgui.ml.http_guard import (guard, guarded_session, is_connect_failure,
                                   is_name_resolution_failure)

pytestmark = pytest.mark.timeout(60)


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _error(url: str, **guard_kw) -> requests.RequestException:
    session = guarded_session()
    with guard(10.0, **guard_kw):
        with pytest.raises(requests.RequestException) as info:
            session.get(url, timeout=(2.0, 2.0))
    session.close()
    return info.value


def test_connect_failures_are_told_by_type():
    refused = _error(f"http://127.0.0.1:{_closed_port()}/x")
    assert is_connect_failure(refused) and not is_name_resolution_failure(refused)

    def no_such_name(host, port):
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    unresolved = _error("http://antenna.invalid/x", resolve=no_such_name)
    assert is_connect_failure(unresolved) and is_name_resolution_failure(unresolved)

    refused_by_policy = _error(f"http://127.0.0.1:{_closed_port()}/x",
                               check_address=lambda ip: False)
    assert is_connect_failure(refused_by_policy)
    assert http_guard.find_cause(refused_by_policy, http_guard.AddressRefused) is not None


def test_a_reset_after_sending_is_not_a_connect_failure():
    """The server read the request and hung up: it may have acted, so this is not a failure
    to connect (a claim must not be resent)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    port = listener.getsockname()[1]

    def serve():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()  # RST

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    exc = _error(f"http://127.0.0.1:{port}/x")
    t.join(5)
    listener.close()
    assert isinstance(exc, requests.ConnectionError) and not is_connect_failure(exc)


def test_scopes_nest_and_the_watchdog_sleeps_when_idle():
    with guard(5.0) as outer:
        with guard(stall_s=0.2, stall_bytes=1) as inner:
            time.sleep(0.5)
        assert inner.tripped == "stalled" and outer.tripped is None
    assert http_guard._scopes() == []
    assert not http_guard._watchdog._scopes  # nothing to watch: it waits without a timeout
    cancel = threading.Event()
    with guard(cancel=cancel) as scope:
        cancel.set()
        deadline = time.monotonic() + 2
        while scope.tripped is None and time.monotonic() < deadline:
            time.sleep(0.01)
    assert scope.tripped == "cancelled"
