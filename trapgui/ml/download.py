"""Resumable HTTP download of one file into a ``.part`` file, hashing as it goes.

Resume uses ``Range: bytes=N-`` (with ``If-Range`` when the server gave an ETag or
Last-Modified, so a file replaced on the server restarts instead of being spliced). A server
that ignores Range (answers 200) restarts from byte 0; 416 means the ``.part`` is complete or
stale. Transient failures (dropped connections, timeouts, 5xx, 429, a stalled transfer) are
retried by tenacity with backoff, each retry resuming where the last stopped. Cancelling keeps
the ``.part`` for a later resume.

Limits that a slow server cannot stretch (``ml.http_guard`` shuts the socket down, so even a
read blocked on a server that sends one byte at a time returns): ``cancel`` acts within a
fraction of a second, the whole download has a deadline, and an attempt that receives less
than ``STALL_BYTES`` in one read-timeout period counts as stalled (the read timeout alone
restarts with every byte). The stall window is its own setting (a minute), not the read
timeout: a short read timeout must not turn a busy moment into a stall.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import requests
import urllib3.exceptions
from tenacity import Retrying, retry_if_exception_type, stop_after_attempt

from trapgui.core.errors import DownloadCancelled, DownloadError
from trapgui.ml.http_guard import guard, guarded_session, is_name_resolution_failure
from trapgui.version import __version__

log = logging.getLogger(__name__)

RETRY_STATUSES = {408, 425, 429, 500, 502, 503, 504}
CHUNK = 1 << 20  # progress is reported about once per CHUNK
STALL_BYTES = 64 * 1024  # at least this much per STALL_S, or the attempt stalled
STALL_S = 60.0
DEFAULT_DEADLINE_S = 6 * 3600.0  # the largest AMI model is ~0.5 GB: 6 h is ~25 kB/s
ProgressFn = Callable[[int, "int | None"], None]  # (bytes of this file so far, total or None)


class _Transient(Exception):
    """A failure worth retrying (the next attempt resumes from the .part file)."""


class _StartOver(Exception):
    """The .part does not belong to the file on the server: discard it and try again."""


@dataclass
class FetchResult:
    path: Path  # the complete .part file (the caller verifies it, then renames it)
    size: int
    sha256: str
    resumed_from: int  # bytes already on disk when this call started


def meta_path(part: Path) -> Path:
    return part.with_name(part.name + ".json")


def _read_meta(part: Path) -> dict:
    try:
        return json.loads(meta_path(part).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _write_meta(part: Path, meta: dict) -> None:
    meta_path(part).write_text(json.dumps(meta), encoding="utf-8")


def discard_partial(part: Path) -> None:
    for path in (part, meta_path(part)):
        try:
            path.unlink()
        except FileNotFoundError:
            pass


class PartLock:
    """An OS file lock next to the .part files, so two processes (the app and a terminal
    `trapgui models download`) never write the same .part. Released by the OS if the process
    dies, so there are no stale locks to clean up."""

    def __init__(self, path: Path):
        self.path = path
        self._fh = None

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+b")
        try:
            if os.name == "nt":
                import msvcrt

                fh.seek(0)
                msvcrt.locking(fh.fileno(), msvcrt.LK_NBLCK, 1)
            else:
                import fcntl

                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.close()
            return False
        self._fh = fh
        return True

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the file releases the lock on every platform
            self._fh = None
            try:
                self.path.unlink()
            except OSError:
                pass  # another process holds it now, or Windows keeps it open: harmless


def _content_range(value: str | None) -> tuple[int | None, int | None]:
    """(first byte, total) from ``bytes 100-199/1000`` or ``bytes */1000``."""
    match = re.match(r"bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)", value or "")
    if not match:
        return None, None
    start = int(match.group(1)) if match.group(1) else None
    total = int(match.group(2)) if match.group(2) != "*" else None
    return start, total


def _describe_status(resp: requests.Response, name: str) -> str:
    if resp.status_code == 404:
        return (f"{name} was not found on the server (HTTP 404): the publisher may have moved "
                f"or withdrawn it ({resp.url}).")
    if resp.status_code in (401, 403):
        return f"The server refused access to {name} (HTTP {resp.status_code}) ({resp.url})."
    return f"The server answered HTTP {resp.status_code} {resp.reason or ''} for {name} ({resp.url})."


class _Digest:
    """sha256 of exactly the bytes in the .part file (written and hashed chunk by chunk, so
    after a failure it is still valid for resuming from the file's size)."""

    def __init__(self):
        self.reset()

    def reset(self) -> None:
        self.hasher = hashlib.sha256()
        self.size = 0

    def update(self, chunk: bytes) -> None:
        self.hasher.update(chunk)
        self.size += len(chunk)

    def sync_with(self, part: Path, cancel: threading.Event | None) -> int:
        """Make the digest cover the .part file as it is on disk; returns its size."""
        on_disk = part.stat().st_size if part.exists() else 0
        if on_disk != self.size:
            self.reset()
            if on_disk:
                with open(part, "rb") as fh:
                    while chunk := fh.read(CHUNK):
                        if cancel is not None and cancel.is_set():
                            raise DownloadCancelled()
                        self.update(chunk)
        return self.size


def fetch(url: str, part: Path, *, name: str, session: requests.Session | None = None,
          progress: ProgressFn | None = None, cancel: threading.Event | None = None,
          timeout: tuple[float, float] = (10.0, 60.0), retries: int = 4,
          backoff_s: float = 1.0, deadline_s: float | None = DEFAULT_DEADLINE_S,
          stall_s: float | None = STALL_S) -> FetchResult:
    """Download ``url`` into ``part`` (resuming what is there). Raises DownloadError (with a
    sentence) or DownloadCancelled; on cancel or a network failure the .part file stays.
    ``deadline_s`` bounds the whole call, retries and waits included (None: no limit);
    an attempt that receives less than STALL_BYTES in ``stall_s`` is cut and resumed."""
    session = session or guarded_session()
    part.parent.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(part)
    if part.exists() and meta.get("url") != url:
        discard_partial(part)  # a .part of some other file: never splice two files
        meta = {}
    start_bytes = part.stat().st_size if part.exists() else 0
    digest = _Digest()

    with guard(deadline_s, cancel=cancel) as scope:
        def check_limits() -> None:
            if scope.tripped == "cancelled" or (cancel is not None and cancel.is_set()):
                raise DownloadCancelled()
            if scope.tripped == "deadline":
                raise DownloadError(
                    f"Downloading {name} took longer than {_duration(deadline_s)}; the server "
                    "is sending too slowly.",
                    hint="What was downloaded is kept: try again later to resume.")

        def attempt() -> int:
            check_limits()
            offset = digest.sync_with(part, cancel)
            headers = {"User-Agent": f"trapgui/{__version__}", "Accept-Encoding": "identity"}
            if offset:
                headers["Range"] = f"bytes={offset}-"
                etag = meta.get("etag") or ""
                validator = (etag if not etag.startswith("W/") else "") or meta.get("last_modified")
                if validator:
                    headers["If-Range"] = validator
            with guard(stall_s=stall_s, stall_bytes=STALL_BYTES) as stall:
                def check() -> None:  # after the body: a socket the guard shut looks like its end
                    check_limits()
                    if stall.tripped == "stalled":
                        raise _Transient(f"less than {STALL_BYTES // 1024} kB arrived in "
                                         f"{stall_s:g} s")

                try:
                    size = _attempt(session, url, part, headers, offset, digest, meta, name,
                                    progress, cancel, timeout, stall, check)
                except (requests.ConnectionError, requests.Timeout,
                        requests.exceptions.ChunkedEncodingError, urllib3.exceptions.HTTPError,
                        _Transient) as exc:
                    check_limits()  # a socket shut by the guard looks like a dropped connection
                    if stall.tripped == "stalled":
                        raise _Transient(f"less than {STALL_BYTES // 1024} kB arrived in "
                                         f"{stall_s:g} s") from exc
                    if isinstance(exc, _Transient):
                        raise
                    raise _Transient(_short(exc)) from exc
                except requests.RequestException as exc:  # e.g. a redirect to a non-http address
                    raise DownloadError(f"Downloading {name} failed ({type(exc).__name__}: the "
                                        "download address does not work).") from exc
            if size is None:
                discard_partial(part)
                digest.reset()
                meta.clear()
                raise _StartOver()
            return size

        def wait(state) -> float:
            if isinstance(state.outcome.exception(), _StartOver):
                return 0.0
            return backoff_s * 2 ** (state.attempt_number - 1)

        def sleep(seconds: float) -> None:
            left = scope.left()
            seconds = seconds if left is None else min(seconds, left)
            if cancel is not None:
                if cancel.wait(seconds):
                    raise DownloadCancelled()
            elif seconds:
                threading.Event().wait(seconds)
            check_limits()

        def before_sleep(state) -> None:
            exc = state.outcome.exception()
            if not isinstance(exc, _StartOver):
                log.info("Download of %s interrupted (%s); retry %d in %.1fs", name, _short(exc),
                         state.attempt_number, state.next_action.sleep)

        def give_up(state):
            exc = state.outcome.exception()
            if isinstance(exc, _StartOver):
                raise DownloadError(f"Downloading {name} kept failing: the server's answers "
                                    "to resume requests do not make sense.")
            raise DownloadError(
                f"Downloading {name} failed after {state.attempt_number} attempts ({_short(exc)}).",
                hint="What was downloaded is kept: try again later to resume.") from exc

        size = Retrying(stop=stop_after_attempt(retries + 1), wait=wait, sleep=sleep,
                        before_sleep=before_sleep, retry_error_callback=give_up,
                        retry=retry_if_exception_type((_Transient, _StartOver)))(attempt)
    return FetchResult(part, size, digest.hasher.hexdigest(), start_bytes)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "ever"
    if seconds >= 3600:
        return f"{seconds / 3600:g} h"
    return f"{seconds / 60:g} min" if seconds >= 120 else f"{seconds:g} s"


def _short(exc: BaseException) -> str:
    if isinstance(exc, requests.ConnectionError) and exc.request is not None:
        host = requests.utils.urlparse(exc.request.url).hostname
        why = ("the name could not be resolved: is this computer online?"
               if is_name_resolution_failure(exc) else "the connection failed or was cut")
        return f"cannot reach {host}: {why}"
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) < 200 else text[:200] + "..."


def _attempt(session, url, part, headers, offset, digest, meta, name, progress, cancel,
             timeout, stall, check) -> int | None:
    """One HTTP request. Returns the final size, None if the .part must be discarded, raises
    _Transient for retryable failures and DownloadError for final ones."""
    with session.get(url, headers=headers, stream=True, timeout=timeout,
                     allow_redirects=True) as resp:
        if resp.status_code == 416:
            _, total = _content_range(resp.headers.get("Content-Range"))
            if total is not None and total == offset:
                return offset  # the .part already holds the whole file
            return None
        if resp.status_code in RETRY_STATUSES:
            raise _Transient(f"HTTP {resp.status_code}")
        if resp.status_code not in (200, 206):
            raise DownloadError(_describe_status(resp, name))
        ctype = resp.headers.get("Content-Type", "").lower()
        if ctype.startswith("text/html"):
            raise DownloadError(f"The server sent a web page instead of {name} ({resp.url}); "
                                "the download link may be broken or need a login.")
        length = resp.headers.get("Content-Length")
        if resp.status_code == 206:
            first, total = _content_range(resp.headers.get("Content-Range"))
            if first != offset:
                return None
        else:
            if offset:
                log.info("Server ignored the resume request for %s; starting again", name)
                digest.reset()
                offset = 0
            total = int(length) if length and length.isdigit() else None
        meta.update(url=url, etag=resp.headers.get("ETag"),
                    last_modified=resp.headers.get("Last-Modified"), total=total)
        _write_meta(part, meta)
        done = reported = offset
        with open(part, "ab" if offset else "wb") as fh:
            if progress:
                progress(done, total)
            # STALL_BYTES at a time: each chunk that arrives moves the stall limit on
            for chunk in resp.iter_content(STALL_BYTES):
                if not chunk:
                    continue
                fh.write(chunk)
                digest.update(chunk)
                done += len(chunk)
                stall.progress(len(chunk))
                if progress and done - reported >= CHUNK:
                    reported = done
                    progress(done, total)
                if cancel is not None and cancel.is_set():
                    raise DownloadCancelled()
            check()
            fh.flush()
            os.fsync(fh.fileno())
        if progress and reported != done:
            progress(done, total)
        if total is not None and done != total:
            raise _Transient(f"the connection closed after {done} of {total} bytes")
        return done
