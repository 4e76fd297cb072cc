"""A real HTTP server on 127.0.0.1 for model-store tests: serves in-memory files with Range
support (206 / 416, ETag, If-Range), logs every request, and misbehaves on demand like real
servers do: dropping the connection mid-body, ignoring Range, answering an HTML page with
status 200, 404, or 5xx a few times before working, or dripping the body one byte at a time
(each byte well within any read timeout)."""

from __future__ import annotations

import hashlib
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Fault:
    """How to misbehave for a path. ``times`` = how many requests it applies to (None: all)."""

    kind: str  # "drop" | "stall" | "ignore_range" | "html" | "html_octet" | "status" | "slow" | "drip"
    times: int | None = 1
    drop_after: int = 0  # "drop" / "stall" / "drip": bytes sent before cutting / silence / dripping
    status: int = 500  # "status"
    delay_s: float = 0.0  # "slow": pause per 256 kB sent; "stall": how long to go silent;
    # "drip": pause before each byte


@dataclass
class LoggedRequest:
    path: str
    range: str | None
    if_range: str | None
    status: int = 0
    body_bytes: int = 0
    finished: bool = False


@dataclass
class _State:
    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    log: list[LoggedRequest] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    stopping: threading.Event = field(default_factory=threading.Event)


HTML_PAGE = b"<!DOCTYPE html><html><head><title>Error</title></head><body>Quota exceeded</body></html>"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state: _State  # set on the subclass made per server

    def log_message(self, *args):  # keep test output clean
        pass

    def _take_fault(self, path: str) -> Fault | None:
        with self.state.lock:
            faults = self.state.faults.get(path) or []
            if not faults:
                return None
            fault = faults[0]
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    faults.pop(0)
            return fault

    def _record(self, status: int, sent: int = 0) -> None:
        with self.state.lock:
            self.entry.status, self.entry.body_bytes, self.entry.finished = status, sent, True

    def _simple(self, status: int, body: bytes, ctype: str = "text/plain",
                extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)
        self._record(status, len(body))

    def do_GET(self):  # noqa: N802 - http.server API
        # Logged before answering, completed after, so the order is the order of arrival.
        self.entry = LoggedRequest(self.path, self.headers.get("Range"), self.headers.get("If-Range"))
        with self.state.lock:
            self.state.log.append(self.entry)
        data = self.state.files.get(self.path)
        fault = self._take_fault(self.path)
        if fault and fault.kind == "status":
            return self._simple(fault.status, b"server error")
        if fault and fault.kind == "html":
            return self._simple(200, HTML_PAGE, "text/html; charset=utf-8")
        if fault and fault.kind == "html_octet":
            return self._simple(200, HTML_PAGE, "application/octet-stream")
        if data is None:
            return self._simple(404, b"not found")
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        start, end, status = 0, len(data) - 1, 200
        rng = self.headers.get("Range")
        if_range = self.headers.get("If-Range")
        honour = rng and not (fault and fault.kind == "ignore_range") and (if_range in (None, etag))
        if honour:
            match = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip())
            if match:
                start = int(match.group(1))
                end = int(match.group(2)) if match.group(2) else len(data) - 1
                if start >= len(data):
                    return self._simple(416, b"", extra={"Content-Range": f"bytes */{len(data)}"})
                end = min(end, len(data) - 1)
                status = 206
        body = data[start:end + 1]
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        limit = fault.drop_after if fault and fault.kind == "drop" else len(body)
        sent = 0
        try:
            drip = fault is not None and fault.kind == "drip"  # full speed up to drop_after
            while sent < min(limit, len(body)):
                dripping = drip and sent >= fault.drop_after
                if dripping and self.state.stopping.wait(fault.delay_s):
                    break
                end = sent + (1 if dripping else 256 * 1024)
                if drip and not dripping:
                    end = min(end, fault.drop_after)
                piece = body[sent:min(end, limit)]
                self.wfile.write(piece)
                if dripping:
                    self.wfile.flush()
                sent += len(piece)
                if fault and fault.kind == "slow":
                    time.sleep(fault.delay_s)
                if fault and fault.kind == "stall" and sent >= fault.drop_after:
                    time.sleep(fault.delay_s)  # headers and some body, then silence
                    fault = None
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a cancelled download)
        self._record(status, sent)
        if sent < len(body):
            self.close_connection = True
            self.wfile.flush()
            self.connection.close()


class ModelHTTPServer:
    """``with ModelHTTPServer() as srv: srv.add("/w.pt", data); srv.url("/w.pt")``."""

    def __init__(self):
        self.state = _State()
        handler = type("Handler", (_Handler,), {"state": self.state})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> "ModelHTTPServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.state.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()

    @property
    def base_url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host}:{port}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def add(self, path: str, data: bytes) -> None:
        self.state.files[path] = data

    def fault(self, path: str, fault: Fault) -> None:
        with self.state.lock:
            self.state.faults.setdefault(path, []).append(fault)

    def clear(self) -> None:
        with self.state.lock:
            self.state.faults.clear()
            self.state.log.clear()

    def requests_for(self, path: str, timeout: float = 5.0) -> list[LoggedRequest]:
        """The requests for ``path``, once the server has finished answering them all."""
        deadline = time.monotonic() + timeout
        while True:
            with self.state.lock:
                entries = [r for r in self.state.log if r.path == path]
                if all(r.finished for r in entries) or time.monotonic() > deadline:
                    return list(entries)
            time.sleep(0.01)
