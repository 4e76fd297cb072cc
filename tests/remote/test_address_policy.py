"""Image URLs and redirects must not reach loopback, private, link-local or other non-public
addresses unless the configured server is on such an address itself; the error sentence must
not tell an existing internal service from a missing one. The policy function is tested on
its own, then over real HTTP: redirects from the real test server (127.0.0.1), and a
"public" server whose names are resolved by a resolver hook to 127.0.0.1."""

from __future__ import annotations

import socket
import time

import pytest

from trapgui.remote.address_policy import AddressPolicy, address_kind
from trapgui.remote.downloader import UNREACHABLE, ImageDownloader

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("ip, kind", [
    ("8.8.8.8", "public"), ("2606:4700:4700::1111", "public"), ("93.184.215.14", "public"),
    ("127.0.0.1", "loopback"), ("127.8.9.10", "loopback"), ("::1", "loopback"),
    ("::ffff:127.0.0.1", "loopback"),
    ("10.0.0.1", "private"), ("172.16.5.4", "private"), ("192.168.1.20", "private"),
    ("100.64.0.1", "private"), ("fc00::1", "private"), ("fd12:3456::1", "private"),
    ("::ffff:192.168.1.1", "private"),
    ("169.254.169.254", "link-local"), ("fe80::1", "link-local"), ("fe80::1%eth0", "link-local"),
    ("0.0.0.0", "reserved"), ("::", "reserved"), ("224.0.0.1", "reserved"),
    ("ff02::1", "reserved"), ("240.0.0.1", "reserved"), ("255.255.255.255", "reserved"),
    ("not-an-ip", "reserved"),
])
def test_address_kinds(ip, kind):
    assert address_kind(ip) == kind


def test_policy_follows_the_configured_server():
    def resolver(table):
        return lambda host, port: table[host]

    public = AddressPolicy.for_server("https://antenna.example.org/api/v2",
                                      resolve=resolver({"antenna.example.org": ["93.184.215.14"]}))
    assert public.allows("8.8.8.8")
    for ip in ("127.0.0.1", "::1", "10.1.2.3", "192.168.0.9", "169.254.169.254", "0.0.0.0",
               "fe80::1", "::ffff:10.0.0.1"):
        assert not public.allows(ip), ip

    lab = AddressPolicy.for_server("http://192.168.1.10:8000/api/v2")
    assert lab.allows("192.168.1.11") and lab.allows("127.0.0.1") and lab.allows("8.8.8.8")
    assert not lab.allows("169.254.169.254") and not lab.allows("0.0.0.0")

    loopback = AddressPolicy.for_server("http://localhost:8000/api/v2")
    assert loopback.allows("127.0.0.1") and not loopback.allows("169.254.169.254")

    link_local = AddressPolicy.for_server("http://[fe80::2]:8000/api/v2")
    assert link_local.allows("fe80::3")

    # A server name that cannot be resolved now: the strict policy (public only).
    unresolved = AddressPolicy.for_server("https://antenna.example.org/api/v2",
                                          resolve=lambda h, p: [])
    assert unresolved == AddressPolicy.public_only()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def _loopback_downloader(server, **kw):
    return ImageDownloader(threads=1, timeout=(2.0, 3.0), retries=1, backoff_s=0.01,
                           policy=AddressPolicy.for_server(server.base_url), **kw)


def test_loopback_server_may_redirect_to_itself(server, tmp_path):
    server.inject("redirect", r"/images/img00\.", target=f"{server.root}/images/img01.jpg")
    dl = _loopback_downloader(server)
    result = dl.fetch("a", f"{server.root}/images/img00.jpg?sig=1", tmp_path / "a.jpg")
    assert result.error is None and result.path.read_bytes() == server.state.images["img01"]
    dl.shutdown()


def test_redirects_to_refused_addresses_read_like_unreachable_ones(server, tmp_path):
    """The sentence for a refused target is the same whether something listens there (the
    test server itself, reached as 0.0.0.0) or not, and the same as for an allowed address
    where nothing answers: the server cannot map the network through its error results."""
    closed = _closed_port()
    port = int(server.root.rsplit(":", 1)[1])
    targets = {
        "metadata": "http://169.254.169.254/latest/meta-data/iam/",
        "listening": f"http://0.0.0.0:{port}/images/img01.jpg",  # Linux: reaches 127.0.0.1
        "closed": f"http://0.0.0.0:{closed}/x.jpg",
        "loopback closed": f"http://127.0.0.1:{closed}/x.jpg",  # allowed here, nothing there
        "ipv6 mapped": f"http://[::ffff:169.254.169.254]:{port}/images/img01.jpg",
    }
    dl = _loopback_downloader(server)
    errors = {}
    for i, (name, target) in enumerate(targets.items()):
        server.inject("redirect", rf"/images/img0{i + 2}\.", target=target, times=None)
        start = time.monotonic()
        result = dl.fetch(name, f"{server.root}/images/img0{i + 2}.jpg", tmp_path / f"{i}.jpg")
        errors[name] = result.error
        if name != "loopback closed":  # refused before any connection: no retry, no wait
            assert result.attempts == 1 and time.monotonic() - start < 10.0, name
    dl.shutdown()
    assert set(errors.values()) == {UNREACHABLE}, errors
    assert server.state.image_requests["img01"] == 0  # never fetched through 0.0.0.0


def test_public_server_images_on_local_addresses_are_refused_after_dns(server, tmp_path):
    """A client configured for a public server (names resolved by a resolver hook): an image
    host whose name resolves to 127.0.0.1 is refused after resolution, as is a loopback
    literal, and no request reaches the (real) server behind them."""
    table = {"antenna.example.org": ["93.184.215.14"], "images.example.org": ["127.0.0.1"],
             "localhost": ["127.0.0.1", "::1"]}

    def resolve(host, port):
        return table[host]

    policy = AddressPolicy.for_server("https://antenna.example.org/api/v2", resolve=resolve)
    port = int(server.root.rsplit(":", 1)[1])
    dl = ImageDownloader(threads=1, timeout=(2.0, 3.0), retries=2, backoff_s=0.01,
                         policy=policy, resolve=resolve)
    for i, url in enumerate([f"http://images.example.org:{port}/images/img00.jpg",
                             f"{server.root}/images/img00.jpg",
                             f"http://localhost:{port}/images/img00.jpg"]):
        start = time.monotonic()
        result = dl.fetch(i, url, tmp_path / f"{i}.jpg")
        assert result.error == UNREACHABLE and result.attempts == 1, (url, result)
        assert time.monotonic() - start < 10.0
    assert server.state.image_requests["img00"] == 0
    dl.shutdown()

    # The same hook with the server itself on loopback: allowed, fetched through the name.
    loopback = ImageDownloader(threads=1, policy=AddressPolicy.for_server(server.base_url),
                               resolve=resolve)
    result = loopback.fetch("ok", f"http://images.example.org:{port}/images/img00.jpg",
                            tmp_path / "ok.jpg")
    assert result.error is None and server.state.image_requests["img00"] == 1
    loopback.shutdown()


def test_redirect_to_a_non_http_address_is_refused(server, tmp_path):
    server.inject("redirect", r"/images/img00\.", target="file:///etc/passwd")
    dl = _loopback_downloader(server)
    result = dl.fetch("a", f"{server.root}/images/img00.jpg", tmp_path / "a.jpg")
    assert result.error == "The image address leads to an address that is not http(s)."
    dl.shutdown()


def test_redirect_loops_end(server, tmp_path):
    server.inject("redirect", r"/images/img00\.", times=None,
                  target=f"{server.root}/images/img00.jpg")
    dl = _loopback_downloader(server)
    result = dl.fetch("a", f"{server.root}/images/img00.jpg", tmp_path / "a.jpg")
    assert result.error == "The image address redirects more than 5 times."
    dl.shutdown()
