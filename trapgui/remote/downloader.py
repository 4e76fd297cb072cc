"""Concurrent image downloads for remote tasks.

Each download runs on a pool thread with a total deadline (held by ``ml.http_guard``: a
server that drips one byte at a time is cut off when the deadline passes, not when its read
timeout would), a size limit and content checks, so one slow or broken image never holds up
the others: it finishes as a :class:`Download` with ``error`` set to a sentence that goes back
to the server as the task's error result. ``shutdown`` ends running downloads at once.

Every connection, after DNS resolution and after every redirect, must go to an address the
:class:`~trapgui.remote.address_policy.AddressPolicy` allows; a refused address and an
unreachable one give the same sentence, so error results cannot be used to map the network
this computer sits in.

The session used here never carries the API token (image URLs are public or presigned), and
image URLs are never logged: they may carry a signature (log lines name the task instead).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import traceback
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from PIL import UnidentifiedImageError
from tenacity import Retrying, retry_if_exception

from trapgui.ml.http_guard import AddressRefused, Resolver, find_cause, guard, guarded_session, \
    is_connect_failure
from trapgui.remote.address_policy import AddressPolicy
from trapgui.scan.pixel_limit import ImageTooLarge, open_image

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # a 4K JPEG is ~3 MB; a 60 MP TIFF ~180 MB
CHUNK = 256 * 1024
MAX_REDIRECTS = 5
MAX_RETRY_AFTER_S = 10.0
# Leading bytes of the formats Pillow reads that traps and Antenna produce.
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"RIFF", b"BM")
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}
# One sentence for "nothing answered there" and "that address is not allowed": the server
# learns nothing about which private addresses exist.
UNREACHABLE = ("The image could not be reached: no connection could be made to its address, "
               "or the address is a private or local one that trapgui does not fetch from.")


class DownloadFailed(Exception):
    """``str(exc)`` is the reason reported to the server; ``transient`` says whether to retry."""

    def __init__(self, reason: str, transient: bool = False, retry_after: float | None = None):
        super().__init__(reason)
        self.transient = transient
        self.retry_after = retry_after


@dataclass
class Download:
    """The outcome of one download. ``payload`` is what ``prepare`` returned (e.g. a decoded
    image); ``error`` is set when the image could not be fetched or is not an image."""

    key: Any
    url: str = field(repr=False)  # may be presigned: never in a repr or a log line
    path: Path | None = None
    payload: Any = field(default=None, repr=False)
    error: str | None = None
    nbytes: int = 0
    seconds: float = 0.0
    attempts: int = 0


def _no_auth(request):
    # A callable session.auth stops requests from adding ~/.netrc credentials to image hosts.
    return request


class _RedactQuery(logging.Filter):
    """urllib3 logs request lines (with the query string: a presigned URL's signature) at
    DEBUG level; keep the path, drop the query."""

    _QUERY = re.compile(r"\?[^\s\"']*")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(self._QUERY.sub("?<query removed>", a) if isinstance(a, str)
                                else a for a in record.args)
        return True


logging.getLogger("urllib3.connectionpool").addFilter(_RedactQuery())


class ImageDownloader:
    """``submit(key, url, dest)`` returns a future resolving to a :class:`Download` (it never
    raises). ``prepare(path)`` runs on the pool thread after a successful download (decode
    there so decoding is parallel too); an exception from it becomes the download's error.
    ``describe(key)`` names a download in log lines (task and image ids, never the URL)."""

    def __init__(
        self,
        *,
        threads: int = 8,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: tuple[float, float] = (5.0, 20.0),
        deadline_s: float = 120.0,
        retries: int = 2,
        backoff_s: float = 0.5,
        prepare: Callable[[Path], Any] | None = None,
        policy: AddressPolicy | None = None,
        resolve: Resolver | None = None,
        describe: Callable[[Any], str] = str,
    ):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline_s = deadline_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.prepare = prepare
        self.policy = policy or AddressPolicy.public_only()
        self.resolve = resolve
        self.describe = describe
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads),
                                        thread_name_prefix="remote-download")
        self._local = threading.local()  # one requests.Session per pool thread
        self._closed = threading.Event()

    def submit(self, key: Any, url: str, dest: Path) -> Future:
        return self._pool.submit(self.fetch, key, url, dest)

    def shutdown(self, wait: bool = True) -> None:
        """Running downloads end at once (their sockets are shut down), queued ones are
        cancelled; with ``wait`` this returns when their threads are done (decoding an image
        that had already arrived is the longest it can take)."""
        self._closed.set()
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = guarded_session()
            session.auth = _no_auth
            session.max_redirects = MAX_REDIRECTS
            session.headers["Accept"] = "image/*"
            self._local.session = session
        return session

    def fetch(self, key: Any, url: str, dest: Path) -> Download:
        result = Download(key=key, url=url)
        start = time.monotonic()
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise DownloadFailed("The image address is not an http(s) URL.")
            with guard(self.deadline_s, cancel=self._closed, check_address=self.policy.allows,
                       resolve=self.resolve) as scope:
                for attempt in self._retrying(key, scope):
                    with attempt:
                        result.attempts = attempt.retry_state.attempt_number
                        result.nbytes = self._fetch_once(url, dest, scope)
            result.path = dest
            if self.prepare is not None:
                try:
                    result.payload = self.prepare(dest)
                except (OSError, UnidentifiedImageError, ValueError, SyntaxError) as exc:
                    raise DownloadFailed(f"The image could not be decoded ({_short(exc)}).") from None
        except DownloadFailed as exc:
            result.error = str(exc)
            result.path = None
            dest.unlink(missing_ok=True)
        except Exception as exc:  # noqa: BLE001 - a future must always resolve with a reason
            log.error("Unexpected error downloading image %s:\n%s", self.describe(key),
                      _without_url("".join(traceback.format_exception(exc)), url))
            result.error = f"The image could not be downloaded ({type(exc).__name__})."
            result.path = None
            dest.unlink(missing_ok=True)
        result.seconds = time.monotonic() - start
        return result

    def _retrying(self, key: Any, scope) -> Retrying:
        """Transient failures are tried again (``retries`` more times) with exponential backoff,
        or the server's Retry-After up to MAX_RETRY_AFTER_S, never past the deadline."""

        def wait(state) -> float:
            exc = state.outcome.exception()
            delay = self.backoff_s * 2 ** (state.attempt_number - 1)
            if getattr(exc, "retry_after", None) is not None:
                delay = max(delay, min(exc.retry_after, MAX_RETRY_AFTER_S))
            return min(delay, scope.left() if scope.left() is not None else delay)

        def sleep(seconds: float) -> None:
            if self._closed.wait(seconds):
                raise DownloadFailed("The download was stopped.")

        def before_sleep(state) -> None:
            log.info("Download of image %s failed (%s); retrying.", self.describe(key),
                     state.outcome.exception())

        def stop(state) -> bool:
            return (state.attempt_number > self.retries or scope.tripped is not None
                    or self._closed.is_set() or scope.left() == 0)

        return Retrying(stop=stop, wait=wait, sleep=sleep, before_sleep=before_sleep,
                        retry=retry_if_exception(lambda e: isinstance(e, DownloadFailed)
                                                 and e.transient),
                        reraise=True)

    def _stopped(self, scope) -> DownloadFailed | None:
        """Why the guard ended the download, if it did."""
        if scope.tripped == "deadline":
            return DownloadFailed(f"The image took longer than {self.deadline_s:.0f} s to download.")
        if scope.tripped == "cancelled" or self._closed.is_set():
            return DownloadFailed("The download was stopped.")
        return None

    def _request_failed(self, exc: requests.RequestException, scope) -> DownloadFailed:
        stopped = self._stopped(scope)
        if stopped is not None:
            return stopped
        if find_cause(exc, AddressRefused) is not None:
            return DownloadFailed(UNREACHABLE)
        if is_connect_failure(exc):
            return DownloadFailed(UNREACHABLE, transient=True)
        if isinstance(exc, requests.Timeout):
            return DownloadFailed("The image server did not answer in time.", transient=True)
        if isinstance(exc, requests.TooManyRedirects):
            return DownloadFailed(f"The image address redirects more than {MAX_REDIRECTS} times.")
        if isinstance(exc, (requests.exceptions.InvalidSchema, requests.exceptions.InvalidURL,
                            requests.exceptions.MissingSchema)):
            return DownloadFailed("The image address leads to an address that is not http(s).")
        return DownloadFailed(f"The image could not be reached ({type(exc).__name__}).",
                              transient=True)

    def _fetch_once(self, url: str, dest: Path, scope) -> int:
        try:
            resp = self._session().get(url, stream=True, timeout=self.timeout)
        except requests.RequestException as exc:
            raise self._request_failed(exc, scope) from None
        with resp:
            if resp.status_code != 200:
                raise DownloadFailed(f"The image server answered HTTP {resp.status_code}.",
                                     transient=resp.status_code in TRANSIENT_STATUSES,
                                     retry_after=_retry_after(resp))
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype and not (ctype.startswith("image/") or ctype in (
                    "application/octet-stream", "binary/octet-stream")):
                raise DownloadFailed(f"The image address returned {ctype[:60]}, not an image.")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > self.max_bytes:
                raise DownloadFailed(f"The image is too large ({int(length) / 1e6:.0f} MB; the "
                                     f"limit is {self.max_bytes / 1e6:.0f} MB).")
            return self._stream_to(resp, dest, scope)

    def _stream_to(self, resp: requests.Response, dest: Path, scope) -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        total = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(CHUNK):
                    stopped = self._stopped(scope)
                    if stopped is not None:
                        raise stopped
                    if total == 0 and chunk and not chunk.startswith(MAGIC):
                        raise DownloadFailed("The downloaded file is not an image "
                                             "(unknown file signature).")
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise DownloadFailed(f"The image is larger than the "
                                             f"{self.max_bytes / 1e6:.0f} MB limit.")
                    fh.write(chunk)
            stopped = self._stopped(scope)  # a cut connection can look like the end of a body
            if stopped is not None:
                raise stopped
            if total == 0:
                raise DownloadFailed("The image server sent an empty file.")
            _check_image(tmp)
            os.replace(tmp, dest)
        except requests.RequestException as exc:
            # e.g. a connection reset or a short read in the middle of the body
            raise (self._stopped(scope) or DownloadFailed(
                f"The download was interrupted ({type(exc).__name__}).", transient=True)) from None
        finally:
            tmp.unlink(missing_ok=True)
        return total


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _without_url(text: str, url: str) -> str:
    query = urlsplit(url).query
    text = text.replace(url, "<image URL>")
    return text.replace(query, "<query removed>") if query else text


def _check_image(path: Path) -> None:
    """Header + structure check (cheap); the full decode happens in ``prepare``. The pixel
    limit is the scanner's and the decoder's (``scan.pixel_limit``)."""
    try:
        with open_image(path) as im:
            im.verify()
    except ImageTooLarge as exc:
        reason = str(exc)
        raise DownloadFailed(f"{reason[:1].upper()}{reason[1:]}.") from None
    except (OSError, UnidentifiedImageError, SyntaxError, ValueError) as exc:
        raise DownloadFailed(f"The downloaded file is not a readable image ({_short(exc)}).") from None


def _short(exc: Exception) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text[:160]
