"""Concurrent image downloads for remote tasks.

Each download runs on a pool thread with its own time limit, a size limit and content checks,
so one slow or broken image never holds up the others: it finishes as a :class:`Download` with
``error`` set to a sentence that goes back to the server as the task's error result.

The session used here never carries the API token (image URLs are public or presigned).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import requests
from PIL import UnidentifiedImageError

from trapgui.scan.pixel_limit import ImageTooLarge, open_image

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 200 * 1024 * 1024  # a 4K JPEG is ~3 MB; a 60 MP TIFF ~180 MB
CHUNK = 256 * 1024
# Leading bytes of the formats Pillow reads that traps and Antenna produce.
MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"II*\x00", b"MM\x00*", b"RIFF", b"BM")
TRANSIENT_STATUSES = {408, 425, 429, 500, 502, 503, 504}


class DownloadFailed(Exception):
    """``str(exc)`` is the reason reported to the server; ``transient`` says whether to retry."""

    def __init__(self, reason: str, transient: bool = False):
        super().__init__(reason)
        self.transient = transient


@dataclass
class Download:
    """The outcome of one download. ``payload`` is what ``prepare`` returned (e.g. a decoded
    image); ``error`` is set when the image could not be fetched or is not an image."""

    key: Any
    url: str
    path: Path | None = None
    payload: Any = None
    error: str | None = None
    nbytes: int = 0
    seconds: float = 0.0
    attempts: int = 0


def _no_auth(request):
    # A callable session.auth stops requests from adding ~/.netrc credentials to image hosts.
    return request


class ImageDownloader:
    """``submit(key, url, dest)`` returns a future resolving to a :class:`Download` (it never
    raises). ``prepare(path)`` runs on the pool thread after a successful download (decode
    there so decoding is parallel too); an exception from it becomes the download's error."""

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
    ):
        self.max_bytes = max_bytes
        self.timeout = timeout
        self.deadline_s = deadline_s
        self.retries = retries
        self.backoff_s = backoff_s
        self.prepare = prepare
        self._pool = ThreadPoolExecutor(max_workers=max(1, threads),
                                        thread_name_prefix="remote-download")
        self._local = threading.local()  # one requests.Session per pool thread
        self._closed = threading.Event()

    def submit(self, key: Any, url: str, dest: Path) -> Future:
        return self._pool.submit(self.fetch, key, url, dest)

    def shutdown(self, wait: bool = True) -> None:
        self._closed.set()  # running downloads stop at their next chunk
        self._pool.shutdown(wait=wait, cancel_futures=True)

    def _session(self) -> requests.Session:
        session = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.auth = _no_auth
            session.headers["Accept"] = "image/*"
            self._local.session = session
        return session

    def fetch(self, key: Any, url: str, dest: Path) -> Download:
        result = Download(key=key, url=url)
        start = time.monotonic()
        try:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise DownloadFailed(f"The image address is not an http(s) URL ({url[:120]!r}).")
            while True:
                result.attempts += 1
                try:
                    result.nbytes = self._fetch_once(url, dest, start)
                    break
                except DownloadFailed as exc:
                    left = self.deadline_s - (time.monotonic() - start)
                    if not exc.transient or result.attempts > self.retries or left <= 0 \
                            or self._closed.is_set():
                        raise
                    log.info("Download of image %s failed (%s); retrying.", key, exc)
                    time.sleep(min(self.backoff_s * 2 ** (result.attempts - 1), max(left, 0)))
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
            log.exception("Unexpected error downloading image %s", key)
            result.error = f"The image could not be downloaded ({type(exc).__name__})."
            result.path = None
            dest.unlink(missing_ok=True)
        result.seconds = time.monotonic() - start
        return result

    def _fetch_once(self, url: str, dest: Path, start: float) -> int:
        try:
            resp = self._session().get(url, stream=True, timeout=self.timeout)
        except requests.Timeout:
            raise DownloadFailed("The image server did not answer in time.", transient=True) from None
        except requests.RequestException as exc:
            raise DownloadFailed(f"The image could not be reached ({type(exc).__name__}).",
                                 transient=True) from None
        with resp:
            if resp.status_code != 200:
                raise DownloadFailed(f"The image server answered HTTP {resp.status_code}.",
                                     transient=resp.status_code in TRANSIENT_STATUSES)
            ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
            if ctype and not (ctype.startswith("image/") or ctype in (
                    "application/octet-stream", "binary/octet-stream")):
                raise DownloadFailed(f"The image address returned {ctype}, not an image.")
            length = resp.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > self.max_bytes:
                raise DownloadFailed(f"The image is too large ({int(length) / 1e6:.0f} MB; the "
                                     f"limit is {self.max_bytes / 1e6:.0f} MB).")
            return self._stream_to(resp, dest, start)

    def _stream_to(self, resp: requests.Response, dest: Path, start: float) -> int:
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        total = 0
        try:
            with open(tmp, "wb") as fh:
                for chunk in resp.iter_content(CHUNK):
                    if self._closed.is_set():
                        raise DownloadFailed("The download was stopped.")
                    if time.monotonic() - start > self.deadline_s:
                        raise DownloadFailed(
                            f"The image took longer than {self.deadline_s:.0f} s to download.")
                    if total == 0 and chunk and not chunk.startswith(MAGIC):
                        raise DownloadFailed("The downloaded file is not an image "
                                             "(unknown file signature).")
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise DownloadFailed(f"The image is larger than the "
                                             f"{self.max_bytes / 1e6:.0f} MB limit.")
                    fh.write(chunk)
            if total == 0:
                raise DownloadFailed("The image server sent an empty file.")
            _check_image(tmp)
            os.replace(tmp, dest)
        except requests.RequestException as exc:
            # e.g. a connection reset or a short read in the middle of the body
            raise DownloadFailed(f"The download was interrupted ({type(exc).__name__}).",
                                 transient=True) from None
        finally:
            tmp.unlink(missing_ok=True)
        return total


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
