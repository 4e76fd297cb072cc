"""Typed client for the Antenna processing-service API (see ../shared/antenna-api.md).

Safety rules this module keeps:
- The token goes only into the ``Authorization`` header of API calls made by this client's own
  session. Image downloads use a different session (``downloader.py``) that never sees it.
- The token is never sent over plain ``http://`` to a host other than this computer unless the
  user allowed it explicitly (``allow_insecure_http``).
- The token never appears in a repr, a log line or an exception message: every text that could
  carry it goes through :func:`redact`.
- Only http(s) URLs are accepted for the base URL.
- Every call has a timeout per socket operation and a total deadline (``call_deadline_s``,
  retries included) that a server dripping its answer cannot stretch; :meth:`abort` ends calls
  in flight at once. GETs are retried by urllib3 on connection errors and 5xx answers; POSTs
  are retried (by tenacity) only when it is safe (see :meth:`AntennaClient._post`). A
  ``Retry-After`` is followed up to ``max_retry_wait`` on both.
- 401/403 raise :class:`AuthenticationError` at once: retrying a bad token only hammers the
  server.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import requests
from tenacity import Retrying, retry_if_exception, retry_if_result
from urllib3.util.retry import Retry

from trapgui.core.errors import AuthenticationError, RemoteError, UserInputError
from trapgui.ml.http_guard import GuardedAdapter, guard, is_connect_failure
from trapgui.version import __version__

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = (5.0, 30.0)  # (connect, read) seconds
DEFAULT_CALL_DEADLINE_S = 180.0  # one API call, retries included (a result post can be MBs)
TRANSIENT_STATUSES = (500, 502, 503, 504)
# Statuses after which the server did not act on a POST (a gateway or an overloaded server
# refused it), so sending it again cannot duplicate anything.
NOT_PROCESSED_STATUSES = (502, 503, 504)


@dataclass(frozen=True)
class RemoteJob:
    id: int
    pipeline_slug: str


@dataclass(frozen=True)
class TaskInfo:
    """One claimed task: process ``image_url`` and answer with ``reply_subject``."""

    id: str
    image_id: str
    image_url: str = field(repr=False)  # presigned: it must not reach a log line via a repr
    reply_subject: str | None = None


@dataclass(frozen=True)
class TaskAck:
    task_id: str
    reply_subject: str | None
    status: str


@dataclass(frozen=True)
class PostReceipt:
    status: str
    job_id: int
    results_queued: int
    tasks: list[TaskAck] = field(default_factory=list)


@dataclass(frozen=True)
class Project:
    id: int
    name: str


@dataclass(frozen=True)
class RegistrationResult:
    project_id: int
    created: list[str]
    updated: list[str]
    processing_service_id: int | None


def redact(text: str, token: str | None) -> str:
    """``text`` with every occurrence of the token replaced (safe to log or show)."""
    if token and text:
        text = text.replace(token, "***")
    return text


def api_path_hint(base_url: str) -> str | None:
    """A 404 from a server address that does not end in Antenna's API path is most likely the
    address, not the request: say what the address should look like."""
    from urllib.parse import urlsplit

    path = urlsplit(base_url).path.rstrip("/")
    if path.endswith("/api/v2"):
        return None
    parts = urlsplit(base_url)
    expected = f"{parts.scheme}://{parts.netloc}/api/v2"
    return (f"Antenna's API is at an address ending in /api/v2 (here probably {expected}); "
            f"the server address set is {base_url}.")


def check_http_url(url: str, what: str = "URL") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise RemoteError(f"The {what} {url[:200]!r} is not an http(s) address.",
                          hint="Use an address that starts with http:// or https://.")
    return url


def is_loopback_host(host: str | None) -> bool:
    """``localhost`` or a loopback IP literal: traffic that never leaves this computer."""
    host = (host or "").strip("[]").lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(host.split("%")[0])
    except ValueError:
        return False
    mapped = getattr(addr, "ipv4_mapped", None)
    return (mapped or addr).is_loopback


def check_token_transport(url: str, allow_insecure_http: bool) -> None:
    """Refuse to send a token in clear text to another machine unless the user said so."""
    parts = urlsplit(url)
    if parts.scheme == "http" and not is_loopback_host(parts.hostname) and not allow_insecure_http:
        raise UserInputError(
            f"The server address {url[:200]} is not encrypted (http://): the API token would "
            "travel in clear text to another computer, readable on every network on the way.",
            hint="Use the server's https:// address. If this server really has no https (a lab "
            "network you trust), allow it explicitly: `--allow-insecure-http` for `trapgui "
            "worker`, or the setting remote_allow_insecure_http in the app.")


class AntennaClient:
    """One server + token. Thread-safe for concurrent calls (requests sessions are, for the
    simple use made here; each call sends its own headers)."""

    def __init__(
        self,
        base_url: str,
        token: str | None,
        *,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.5,
        max_retry_wait: float = 10.0,
        call_deadline_s: float = DEFAULT_CALL_DEADLINE_S,
        allow_insecure_http: bool = False,
    ):
        self.base_url = check_http_url(base_url.strip().rstrip("/"), "server address")
        self._token = (token or "").strip() or None
        if self._token:
            check_token_transport(self.base_url, allow_insecure_http)
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self.max_retry_wait = max_retry_wait
        self.call_deadline_s = call_deadline_s
        self._aborted = threading.Event()
        self._session = requests.Session()
        retry = CappedRetry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=backoff,
            backoff_max=max_retry_wait,
            status_forcelist=TRANSIENT_STATUSES,
            allowed_methods=frozenset({"GET"}),  # POSTs: see _post
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        retry.retry_after_cap = max_retry_wait
        adapter = GuardedAdapter(max_retries=retry, pool_maxsize=16)
        self._session.mount("http://", adapter)
        self._session.mount("https://", adapter)
        self._session.headers["User-Agent"] = f"trapgui/{__version__}"

    def __repr__(self) -> str:
        return f"AntennaClient({self.base_url!r}, token={'***' if self._token else None})"

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def abort(self) -> None:
        """End every call in flight now (their sockets are shut down, retry waits end) and
        refuse new ones: each raises RemoteError. For stopping a worker whatever the server
        does."""
        self._aborted.set()

    def close(self) -> None:
        self._session.close()

    # --- the contract ----------------------------------------------------------------------

    def list_jobs(self, pipeline_slugs: Sequence[str]) -> list[RemoteJob]:
        params = {
            "pipeline__slug__in": ",".join(pipeline_slugs),
            "ids_only": "1",
            "incomplete_only": "1",
            "dispatch_mode": "async_api",
        }
        data = self._get("/jobs", params=params)
        rows = _list_field(data, "results", "job list")
        try:
            return [RemoteJob(id=int(r["id"]), pipeline_slug=str(r.get("pipeline_slug") or ""))
                    for r in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad_answer("job list", exc) from None

    def claim_tasks(self, job_id: int, batch_size: int) -> list[TaskInfo]:
        """Claim up to ``batch_size`` tasks; an empty list means the job is drained."""
        data = self._post(f"/jobs/{int(job_id)}/tasks/", {"batch_size": int(batch_size)},
                          idempotent=False)
        rows = _list_field(data, "tasks", "task list")
        tasks = []
        try:
            for r in rows:
                tasks.append(TaskInfo(
                    id=str(r["id"]), image_id=str(r["image_id"]), image_url=str(r["image_url"]),
                    reply_subject=None if r.get("reply_subject") is None else str(r["reply_subject"]),
                ))
        except (KeyError, TypeError) as exc:
            raise self._bad_answer("task list", exc) from None
        return tasks

    def post_results(self, job_id: int, results: Sequence[dict[str, Any]]) -> PostReceipt:
        """``results``: ``[{"reply_subject": ..., "result": ...}]`` as in the contract. Safe to
        send again (the server answers each reply subject once), so it is retried."""
        data = self._post(f"/jobs/{int(job_id)}/result/", {"results": list(results)},
                          idempotent=True)
        if not isinstance(data, dict):
            raise self._bad_answer("result receipt", TypeError("not an object"))
        try:
            acks = [TaskAck(task_id=str(t.get("task_id")), reply_subject=t.get("reply_subject"),
                            status=str(t.get("status"))) for t in data.get("tasks") or []]
            return PostReceipt(status=str(data.get("status", "")), job_id=int(data.get("job_id", job_id)),
                               results_queued=int(data.get("results_queued", 0)), tasks=acks)
        except (TypeError, ValueError, AttributeError) as exc:
            raise self._bad_answer("result receipt", exc) from None

    def list_projects(self) -> list[Project]:
        rows = _list_field(self._get("/projects/"), "results", "project list")
        try:
            return [Project(id=int(r["id"]), name=str(r.get("name", ""))) for r in rows]
        except (KeyError, TypeError, ValueError) as exc:
            raise self._bad_answer("project list", exc) from None

    def register_pipelines(self, project_id: int, service_name: str,
                           pipelines: Sequence[dict[str, Any]]) -> RegistrationResult:
        body = {"processing_service_name": service_name, "pipelines": list(pipelines)}
        data = self._post(f"/projects/{int(project_id)}/pipelines/", body, idempotent=True)
        if not isinstance(data, dict):
            raise self._bad_answer("registration answer", TypeError("not an object"))
        sid = data.get("processing_service_id")
        return RegistrationResult(
            project_id=int(project_id),
            created=[str(s) for s in data.get("pipelines_created") or []],
            updated=[str(s) for s in data.get("pipelines_updated") or []],
            processing_service_id=int(sid) if isinstance(sid, int) else None,
        )

    # --- transport ---------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self._token}"} if self._token else {}

    def _get(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = self.base_url + path
        with self._guard() as scope:
            try:
                resp = self._session.get(url, params=params, headers=self._headers(),
                                         timeout=self.timeout)
            except requests.RequestException as exc:
                raise self._network_error("GET", path, exc, scope) from None
        return self._decode(resp, "GET", path)

    def _guard(self):
        if self._aborted.is_set():
            raise RemoteError("The request to the server was stopped (the worker is stopping).")
        return guard(self.call_deadline_s, cancel=self._aborted)

    def _post(self, path: str, body: dict[str, Any], *, idempotent: bool) -> Any:
        """POST with retries that cannot duplicate work.

        Always retried: a failure to connect (nothing was sent) and 502/503/504 (a gateway or
        an overloaded server refused it). Retried only when ``idempotent``: 500 and read
        timeouts / resets, where the server may have acted on the request. A claim is not
        idempotent: its tasks may be lost in a reply that never arrived, and the server gives
        unanswered tasks out again after its visibility timeout, so nothing is lost either.
        Waits: exponential backoff, or the server's Retry-After, at most ``max_retry_wait``.
        """
        url = self.base_url + path
        payload = json.dumps(body)
        headers = {**self._headers(), "Content-Type": "application/json"}

        def retry_exception(exc: BaseException) -> bool:
            if isinstance(exc, requests.ConnectionError) and is_connect_failure(exc):
                return True  # never reached the server
            return idempotent and isinstance(exc, (requests.ConnectionError, requests.Timeout))

        def retry_response(resp: requests.Response) -> bool:
            return resp.status_code in NOT_PROCESSED_STATUSES or (
                idempotent and resp.status_code in TRANSIENT_STATUSES)

        def wait(state) -> float:
            resp = None if state.outcome.failed else state.outcome.result()
            retry_after = _retry_after(resp) if resp is not None else None
            delay = retry_after if retry_after is not None else self.backoff * 2 ** (state.attempt_number - 1)
            return min(delay, self.max_retry_wait)

        def sleep(seconds: float) -> None:
            left = scope.left()
            if self._aborted.wait(seconds if left is None else min(seconds, left)):
                raise RemoteError("The request to the server was stopped (the worker is stopping).")

        def before_sleep(state) -> None:
            if state.outcome.failed:
                exc = state.outcome.exception()
                problem = "timeout" if isinstance(exc, requests.Timeout) and not is_connect_failure(exc) \
                    else f"network error ({type(exc).__name__})"
            else:
                problem = f"HTTP {state.outcome.result().status_code}"
            log.info("POST %s failed (%s); retry %d/%d in %.1fs", path, problem,
                     state.attempt_number, self.retries, state.next_action.sleep)

        def stop(state) -> bool:  # out of attempts, or of time
            return state.attempt_number > self.retries or scope.tripped is not None

        retrying = Retrying(
            stop=stop, wait=wait, sleep=sleep, before_sleep=before_sleep,
            retry=retry_if_exception(retry_exception) | retry_if_result(retry_response),
            # out of attempts: the last answer is decoded (it says what went wrong), the last
            # exception is raised
            retry_error_callback=lambda state: state.outcome.result(),
        )
        with self._guard() as scope:
            try:
                resp = retrying(self._session.post, url, data=payload, headers=headers,
                                timeout=self.timeout)
            except requests.RequestException as exc:
                raise self._network_error("POST", path, exc, scope) from None
        return self._decode(resp, "POST", path)

    def _decode(self, resp: requests.Response, method: str, path: str) -> Any:
        status = resp.status_code
        if status in (401, 403):
            raise AuthenticationError(
                f"The server {self.base_url} refused the token (HTTP {status}).",
                hint="Check the token (it must be a valid Antenna API token with access to "
                "these projects) and try again.",
            )
        if status >= 400:
            detail = _error_detail(resp)
            err = RemoteError(redact(
                f"The server answered {method} {path} with HTTP {status}"
                + (f": {detail}" if detail else "."), self._token),
                hint=api_path_hint(self.base_url) if status == 404 else None)
            err.status = status  # type: ignore[attr-defined]
            raise err
        try:
            return resp.json()
        except ValueError:
            snippet = redact(resp.text[:120].replace("\n", " "), self._token)
            err = RemoteError(
                f"The server's answer to {method} {path} is not valid JSON (starts {snippet!r}).")
            err.status = status  # type: ignore[attr-defined]
            raise err from None

    def _network_error(self, method: str, path: str, exc: Exception, scope=None) -> RemoteError:
        if scope is not None and scope.tripped == "cancelled":
            err = RemoteError("The request to the server was stopped (the worker is stopping).")
            err.status = None  # type: ignore[attr-defined]
            return err
        if scope is not None and scope.tripped == "deadline":
            kind, name = "did not answer in time", f"no complete answer within {self.call_deadline_s:.0f} s"
        else:
            kind = "did not answer in time" if isinstance(exc, requests.Timeout) else "could not be reached"
            name = type(exc).__name__
        # The exception text holds the URL and sometimes headers: keep only its class name.
        err = RemoteError(
            f"The server {self.base_url} {kind} ({method} {path}: {name}).",
            hint="Check the server address and your network connection.",
        )
        err.status = None  # type: ignore[attr-defined]
        return err

    def _bad_answer(self, what: str, exc: Exception) -> RemoteError:
        return RemoteError(f"The server's {what} does not follow the Antenna API "
                           f"({type(exc).__name__}: {redact(str(exc), self._token)[:200]}).")


def _list_field(data: Any, key: str, what: str) -> list[dict]:
    if not isinstance(data, dict) or not isinstance(data.get(key), list):
        raise RemoteError(f"The server's {what} does not follow the Antenna API "
                          f"(no {key!r} list).")
    return [r for r in data[key] if isinstance(r, dict)]


def _error_detail(resp: requests.Response) -> str:
    try:
        data = resp.json()
    except ValueError:
        return ""
    if isinstance(data, dict) and isinstance(data.get("detail"), str):
        return data["detail"][:300]
    return ""


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


class CappedRetry(Retry):
    """urllib3's Retry with the server's Retry-After capped at ``retry_after_cap`` seconds
    (urllib3's own cap is six hours, and older releases have none)."""

    retry_after_cap: float = 10.0

    def new(self, **kw) -> "CappedRetry":
        retry = super().new(**kw)
        retry.retry_after_cap = self.retry_after_cap
        return retry

    def get_retry_after(self, response) -> float | None:
        value = super().get_retry_after(response)
        return None if value is None else min(value, self.retry_after_cap)
