"""HTTP calls with hard limits: a total deadline, prompt cancellation, a stall rule, and a
check of every address a connection is made to.

requests' timeouts are per socket operation: a server that sends one byte every few seconds
never trips the read timeout, and ``iter_content(n)`` blocks until ``n`` bytes have arrived,
so a deadline checked between chunks does not hold. Here every socket that a guarded session
opens (or reuses) while a :func:`guard` scope is active on the thread is registered with that
scope; one watchdog thread shuts those sockets down when the scope's deadline passes, its
cancel event is set, or it has made too little progress. A blocked ``recv`` then returns at
once, and the caller reads ``scope.tripped`` to say why.

The same connection class resolves host names itself (bounded by the connect timeout, so a
hanging resolver cannot block a stop) and offers every resolved address to the scope's
``check_address`` before connecting to that very address (no second lookup an attacker's DNS
could answer differently). A refused address raises :class:`AddressRefused`.

Used by the model downloads (``ml.download``) and the Antenna client and image downloader
(``remote``). Only public urllib3 / requests extension points are used, except
``HTTPConnection._new_conn``, the one hook urllib3 has for creating the socket.
"""

from __future__ import annotations

import contextlib
import ipaddress
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator

import requests
from requests.adapters import HTTPAdapter
from requests.utils import select_proxy
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.connection import allowed_gai_family

POLL_S = 0.1  # how often cancel events are looked at while a guarded call runs
RESOLVE_TIMEOUT_S = 10.0  # for name lookups when the connection has no connect timeout

AddressCheck = Callable[[str], bool]  # IP address text -> allowed?
Resolver = Callable[[str, int], list[str]]  # (host, port) -> IP addresses (tests, policies)


class AddressRefused(NewConnectionError):
    """The host resolved only to addresses the scope's ``check_address`` refuses. Raised before
    any connection is attempted, so it says nothing about what listens there."""


class Scope:
    """One guarded operation (a download, an API call) on one thread."""

    def __init__(self, deadline_s: float | None, cancel: threading.Event | None,
                 check_address: AddressCheck | None, resolve: Resolver | None,
                 stall_s: float | None, stall_bytes: int):
        now = time.monotonic()
        self.deadline_s = deadline_s
        self.deadline_at = None if deadline_s is None else now + deadline_s
        self.cancel = cancel
        self.check_address = check_address
        self.resolve = resolve
        self.stall_s = stall_s
        self.stall_bytes = stall_bytes
        self._stall_at = None if stall_s is None else now + stall_s
        self._since_stall = 0
        self.tripped: str | None = None  # "deadline" | "cancelled" | "stalled"
        self._sockets: set[socket.socket] = set()
        self._lock = threading.Lock()

    def left(self) -> float | None:
        """Seconds until the deadline (None: no deadline)."""
        return None if self.deadline_at is None else max(0.0, self.deadline_at - time.monotonic())

    def progress(self, nbytes: int) -> None:
        """Bytes received; every ``stall_bytes`` pushes the stall limit ``stall_s`` further."""
        if self._stall_at is None:
            return
        self._since_stall += nbytes
        if self._since_stall >= self.stall_bytes:
            self._since_stall = 0
            self._stall_at = time.monotonic() + self.stall_s

    def add_socket(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)
            tripped = self.tripped
        if tripped:  # a connection opened after the limit passed never gets to wait
            _kill(sock)

    def trip(self, reason: str) -> None:
        with self._lock:
            if self.tripped is not None:
                return
            self.tripped = reason
            sockets = list(self._sockets)
        for sock in sockets:
            _kill(sock)

    def due(self, now: float) -> tuple[str | None, float | None]:
        """(reason to trip now, or None; seconds until it should be looked at again)."""
        if self.cancel is not None and self.cancel.is_set():
            return "cancelled", None
        waits = []
        if self.deadline_at is not None:
            if now >= self.deadline_at:
                return "deadline", None
            waits.append(self.deadline_at - now)
        if self._stall_at is not None:
            if now >= self._stall_at:
                return "stalled", None
            waits.append(self._stall_at - now)
        if self.cancel is not None:
            waits.append(POLL_S)
        return None, min(waits) if waits else None


def _kill(sock: socket.socket) -> None:
    # shutdown() wakes a recv() blocked in another thread (close() would not). Called on the
    # plain socket type so an SSL socket's state is left to the thread that owns it.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:
        pass  # not connected yet, or already closed


class _Watchdog:
    """One daemon thread for all scopes. With no scope active it sleeps on a condition (an idle
    program does not wake up); otherwise it wakes at the next deadline or every POLL_S while a
    scope has a cancel event."""

    def __init__(self):
        self._cond = threading.Condition()
        self._scopes: set[Scope] = set()
        self._thread: threading.Thread | None = None

    def add(self, scope: Scope) -> None:
        with self._cond:
            self._scopes.add(scope)
            if self._thread is None or not self._thread.is_alive():  # also after a fork
                self._thread = threading.Thread(target=self._run, name="http-watchdog",
                                                daemon=True)
                self._thread.start()
            self._cond.notify()

    def remove(self, scope: Scope) -> None:
        with self._cond:
            self._scopes.discard(scope)

    def _run(self) -> None:
        with self._cond:
            while True:
                now = time.monotonic()
                wait = None
                for scope in list(self._scopes):
                    reason, again = scope.due(now)
                    if reason is not None:
                        scope.trip(reason)
                        self._scopes.discard(scope)
                    elif again is not None:
                        wait = again if wait is None else min(wait, again)
                self._cond.wait(wait)


_watchdog = _Watchdog()
_local = threading.local()


def _scopes() -> list[Scope]:
    stack = getattr(_local, "stack", None)
    if stack is None:
        stack = _local.stack = []
    return stack


@contextlib.contextmanager
def guard(deadline_s: float | None = None, *, cancel: threading.Event | None = None,
          check_address: AddressCheck | None = None, resolve: Resolver | None = None,
          stall_s: float | None = None, stall_bytes: int = 64 * 1024) -> Iterator[Scope]:
    """Limits for the guarded-session HTTP calls made on this thread inside the block.

    ``deadline_s``: total time; ``cancel``: an event that ends the calls (within POLL_S);
    ``stall_s``: less than ``stall_bytes`` received (reported through ``scope.progress``) for
    that long ends the call; ``check_address``: refuses connections to some addresses;
    ``resolve``: replaces DNS (tests). Scopes nest: an inner one (one attempt) and an outer one
    (the whole download) both apply."""
    scope = Scope(deadline_s, cancel, check_address, resolve, stall_s, stall_bytes)
    stack = _scopes()
    stack.append(scope)
    _watchdog.add(scope)
    try:
        yield scope
    finally:
        _watchdog.remove(scope)
        stack.remove(scope)


# ---- the connection classes -----------------------------------------------------------------

def _bounded_getaddrinfo(host: str, port: int, timeout: float, scopes: list[Scope]):
    """getaddrinfo cannot be interrupted: run it aside and stop waiting after ``timeout`` or
    when a scope trips (the lookup thread then ends on its own)."""
    box: dict = {}
    done = threading.Event()

    def lookup():
        try:
            box["result"] = socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            box["error"] = exc
        done.set()

    threading.Thread(target=lookup, name="dns-lookup", daemon=True).start()
    end = time.monotonic() + timeout
    while not done.wait(min(POLL_S, max(0.0, end - time.monotonic()))):
        if time.monotonic() >= end or any(s.tripped for s in scopes):
            raise socket.timeout(f"looking up {host} took too long")
    if "error" in box:
        raise box["error"]
    return box["result"]


def _addresses(host: str, port: int, timeout, scopes: list[Scope]):
    try:
        ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        pass
    else:  # a literal: nothing to look up
        return socket.getaddrinfo(host, port, allowed_gai_family(), socket.SOCK_STREAM)
    resolver = next((s.resolve for s in reversed(scopes) if s.resolve is not None), None)
    if resolver is None:
        limit = timeout if isinstance(timeout, (int, float)) else RESOLVE_TIMEOUT_S
        return _bounded_getaddrinfo(host, port, limit, scopes)
    out = []
    for ip in resolver(host, port):
        family = socket.AF_INET6 if ipaddress.ip_address(ip).version == 6 else socket.AF_INET
        out.append((family, socket.SOCK_STREAM, 0, "", (ip, port)))
    if not out:
        raise socket.gaierror(socket.EAI_NONAME, f"{host} has no address")
    return out


class _GuardedMixin:
    """Socket creation with the scope's address check and registration (see module doc)."""

    def _new_conn(self) -> socket.socket:
        scopes = list(_scopes())
        # Through a proxy the socket goes to the proxy the user configured; the target is
        # checked by GuardedAdapter.send instead.
        checks = [] if getattr(_local, "via_proxy", False) else [
            s.check_address for s in scopes if s.check_address is not None]
        host = self._dns_host.strip("[]")
        try:
            candidates = _addresses(host, self.port, self.timeout, scopes)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        except socket.timeout as exc:
            raise ConnectTimeoutError(self, f"Looking up {self.host} timed out.") from exc
        error: Exception | None = None
        for family, socktype, proto, _, sockaddr in candidates:
            if not all(check(sockaddr[0]) for check in checks):
                continue
            sock = socket.socket(family, socktype, proto)
            for scope in scopes:
                scope.add_socket(sock)
            try:
                for option in self.socket_options or ():
                    sock.setsockopt(*option)
                if isinstance(self.timeout, (int, float)) or self.timeout is None:
                    sock.settimeout(self.timeout)
                if self.source_address:
                    sock.bind(self.source_address)
                sock.connect(sockaddr)
            except socket.timeout as exc:
                sock.close()
                error = ConnectTimeoutError(self, f"Connection to {self.host} timed out.")
                error.__cause__ = exc
                continue
            except OSError as exc:
                sock.close()
                error = NewConnectionError(self, f"Failed to establish a new connection: {exc}")
                error.__cause__ = exc
                continue
            sys.audit("http.client.connect", self, self.host, self.port)
            return sock
        if error is None:
            raise AddressRefused(self, f"The address of {self.host} is not allowed.")
        raise error

    def request(self, *args, **kwargs):
        if self.sock is not None:  # a kept-alive connection: the current scope guards it too
            for scope in _scopes():
                scope.add_socket(self.sock)
        return super().request(*args, **kwargs)


class GuardedHTTPConnection(_GuardedMixin, HTTPConnection):
    pass


class GuardedHTTPSConnection(_GuardedMixin, HTTPSConnection):
    pass


class _GuardedHTTPPool(HTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class _GuardedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


_POOLS = {"http": _GuardedHTTPPool, "https": _GuardedHTTPSPool}


class GuardedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections obey the thread's :func:`guard` scopes."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = dict(_POOLS)

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS has its own connection classes
            manager.pool_classes_by_scheme = dict(_POOLS)
        return manager

    def send(self, request, *args, **kwargs):
        proxies = kwargs.get("proxies") or {}
        proxy = select_proxy(request.url, proxies) if proxies else None
        if proxy is None:
            return super().send(request, *args, **kwargs)
        _check_target(request.url)  # the proxy resolves the name: check what we can see of it
        _local.via_proxy = True
        try:
            return super().send(request, *args, **kwargs)
        finally:
            _local.via_proxy = False


def _check_target(url: str) -> None:
    scopes = list(_scopes())
    checks = [s.check_address for s in scopes if s.check_address is not None]
    if not checks:
        return
    parts = requests.utils.urlparse(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        candidates = _addresses(parts.hostname or "", port, RESOLVE_TIMEOUT_S, scopes)
    except OSError:
        return  # the proxy may know names we do not; it is the user's own proxy
    ips = [c[4][0] for c in candidates]
    if ips and not all(check(ip) for ip in ips for check in checks):
        raise requests.ConnectionError(AddressRefused(None, "The address is not allowed."))


def guarded_session(**adapter_kwargs) -> requests.Session:
    session = requests.Session()
    adapter = GuardedAdapter(**adapter_kwargs)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


# ---- telling failures apart by type ---------------------------------------------------------

def find_cause(exc: BaseException | None, types) -> BaseException | None:
    """The first exception of ``types`` in ``exc``'s chain: causes, contexts, urllib3's
    ``reason`` and exceptions carried in ``args`` (how requests wraps urllib3's errors)."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        item = todo.pop()
        if item is None or id(item) in seen:
            continue
        seen.add(id(item))
        if isinstance(item, types):
            return item
        todo.extend((item.__cause__, item.__context__, getattr(item, "reason", None)))
        todo.extend(a for a in getattr(item, "args", ()) if isinstance(a, BaseException))
    return None


def is_connect_failure(exc: BaseException) -> bool:
    """True when the request never reached the server: no connection was made (refused, no
    route, name not found, connect timeout, address refused by policy)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    return find_cause(exc, (NewConnectionError, ConnectTimeoutError, ConnectionRefusedError)) is not None


def is_name_resolution_failure(exc: BaseException) -> bool:
    return find_cause(exc, (NameResolutionError, socket.gaierror)) is not None
