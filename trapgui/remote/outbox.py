"""The outbox: nothing claimed from the server is lost, nothing computed is lost.

Every claimed task is written to ``remote_tasks`` before its image is downloaded, and every
result (or error result) before it is posted. Posting retries with exponential backoff; what is
still unposted when the program stops (crash, network outage, Ctrl+C during an outage) is posted
on the next start. Row states::

    claimed ──► result_ready ──► posted
                     │
                     └─► rejected   (the server refused even the error result: kept, logged)

A task delivered again (the server's visibility timeout ran out, or two deliveries of one
message) keeps its row: its newest ``reply_subject`` is stored, and a result already computed
is answered again under it instead of processing the image twice. Rows are keyed by server,
job, pipeline and task: a new job (or another pipeline) that reuses task ids never receives
results computed for a different one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from tenacity import RetryCallState, Retrying, retry_if_exception, wait_exponential

from trapgui.core.errors import AuthenticationError, RemoteError
from trapgui.db.database import Database
from trapgui.db.tables import RemoteTask
from trapgui.remote.client import AntennaClient, TaskInfo
from trapgui.remote.schemas import error_result, result_item

log = logging.getLogger(__name__)

CLAIMED, READY, POSTED, REJECTED = "claimed", "result_ready", "posted", "rejected"
POST_CHUNK = 16


@dataclass(frozen=True)
class OutboxItem:
    row_id: int
    job_id: int
    pipeline_slug: str
    task_id: str
    image_id: str
    image_url: str
    reply_subject: str | None
    result: dict | None
    error: str | None
    post_attempts: int

    def as_task(self) -> TaskInfo:
        return TaskInfo(id=self.task_id, image_id=self.image_id, image_url=self.image_url,
                        reply_subject=self.reply_subject)


@dataclass
class ComputedResult:
    job_id: int
    pipeline_slug: str
    task_id: str
    result: dict[str, Any]  # PipelineResultsResponse, or the error result
    error: str | None = None
    local_image_id: int | None = None


def _item(row: RemoteTask) -> OutboxItem:
    return OutboxItem(row.id, row.job_id, row.pipeline_slug, row.task_id, row.image_id,
                      row.image_url, row.reply_subject, row.result, row.error, row.post_attempts)


class Outbox:
    """The ``remote_tasks`` rows of one server (base URL, never the token)."""

    def __init__(self, db: Database, server: str):
        self.db = db
        self.server = server

    def record_claims(self, job_id: int, pipeline_slug: str,
                      tasks: Sequence[TaskInfo]) -> tuple[list[TaskInfo], int]:
        """Store claimed tasks. Returns (tasks to process, tasks delivered again whose result
        is already computed: queued to be answered again under their new reply subject)."""
        if not tasks:
            return [], 0
        now = time.time()
        to_process: list[TaskInfo] = []
        answered_again = 0
        with self.db.write_session() as s:
            existing = {r.task_id: r for r in s.execute(select(RemoteTask).where(
                RemoteTask.server == self.server, RemoteTask.job_id == int(job_id),
                RemoteTask.pipeline_slug == pipeline_slug,
                RemoteTask.task_id.in_([t.id for t in tasks]))).scalars()}
            new_rows = []
            for t in tasks:
                row = existing.get(t.id)
                if row is None:
                    new_rows.append({
                        "server": self.server, "job_id": int(job_id), "pipeline_slug": pipeline_slug,
                        "task_id": t.id, "image_id": t.image_id, "image_url": t.image_url,
                        "reply_subject": t.reply_subject, "state": CLAIMED, "post_attempts": 0,
                        "claimed_at": now})
                    to_process.append(t)
                    continue
                values: dict[str, Any] = {"reply_subject": t.reply_subject,
                                          "image_url": t.image_url}
                if row.state == CLAIMED:
                    to_process.append(t)
                elif row.result is not None:
                    values.update(state=READY, posted_at=None)
                    answered_again += 1
                s.execute(update(RemoteTask).where(RemoteTask.id == row.id).values(**values))
            if new_rows:
                s.execute(insert(RemoteTask), new_rows)
        if answered_again:
            log.info("%d task(s) of job %s were delivered again; answering them with the "
                     "results already computed.", answered_again, job_id)
        return to_process, answered_again

    def record_results(self, session, results: Sequence[ComputedResult]) -> None:
        """Store computed results in ``session`` (the sink's transaction, which also writes
        them into the catalogue: both or neither)."""
        for r in results:
            session.execute(update(RemoteTask).where(
                RemoteTask.server == self.server, RemoteTask.job_id == int(r.job_id),
                RemoteTask.pipeline_slug == r.pipeline_slug, RemoteTask.task_id == r.task_id,
                RemoteTask.state == CLAIMED).values(
                state=READY, result=r.result, error=r.error, local_image_id=r.local_image_id))

    def unfinished(self, job_id: int | None = None) -> list[OutboxItem]:
        """Claimed tasks without a result (the program stopped while working on them)."""
        return self._select(CLAIMED, job_id)

    def ready(self, job_id: int | None = None, limit: int | None = None) -> list[OutboxItem]:
        return self._select(READY, job_id, limit)

    def _select(self, state: str, job_id: int | None, limit: int | None = None) -> list[OutboxItem]:
        query = select(RemoteTask).where(RemoteTask.server == self.server,
                                         RemoteTask.state == state)
        if job_id is not None:
            query = query.where(RemoteTask.job_id == int(job_id))
        query = query.order_by(RemoteTask.id)
        if limit is not None:
            query = query.limit(limit)
        with self.db.session() as s:
            return [_item(r) for r in s.execute(query).scalars()]

    def counts(self, job_id: int | None = None) -> dict[str, int]:
        query = select(RemoteTask.state, func.count()).where(RemoteTask.server == self.server)
        if job_id is not None:
            query = query.where(RemoteTask.job_id == int(job_id))
        with self.db.session() as s:
            found = dict(s.execute(query.group_by(RemoteTask.state)).all())
        return {state: int(found.get(state, 0)) for state in (CLAIMED, READY, POSTED, REJECTED)}

    def mark_posted(self, row_ids: Sequence[int]) -> None:
        with self.db.write_session() as s:
            s.execute(update(RemoteTask).where(RemoteTask.id.in_(list(row_ids))).values(
                state=POSTED, posted_at=time.time(), post_attempts=RemoteTask.post_attempts + 1))

    def mark_attempt_failed(self, row_ids: Sequence[int]) -> None:
        with self.db.write_session() as s:
            s.execute(update(RemoteTask).where(RemoteTask.id.in_(list(row_ids))).values(
                post_attempts=RemoteTask.post_attempts + 1))

    def replace_result(self, row_id: int, result: dict, error: str) -> None:
        with self.db.write_session() as s:
            s.execute(update(RemoteTask).where(RemoteTask.id == row_id).values(
                result=result, error=error))

    def mark_rejected(self, row_id: int, reason: str) -> None:
        with self.db.write_session() as s:
            s.execute(update(RemoteTask).where(RemoteTask.id == row_id).values(
                state=REJECTED, error=reason, post_attempts=RemoteTask.post_attempts + 1))


class ResultPoster:
    """Posts ``result_ready`` rows, retrying with exponential backoff until they are posted,
    ``stop`` is set or ``deadline`` passes. Thread-safe: one flush at a time."""

    def __init__(self, client: AntennaClient, outbox: Outbox, *, backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, chunk: int = POST_CHUNK,
                 on_posted: Callable[[int], None] | None = None):
        self.client = client
        self.outbox = outbox
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.chunk = chunk
        self.on_posted = on_posted
        self.last_error: str | None = None
        self._lock = threading.Lock()

    def flush(self, *, job_id: int | None = None, stop: threading.Event | None = None,
              deadline: float | None = None) -> int:
        """Post everything ready; returns how many results were posted. A failed post is
        retried with exponential backoff (tenacity) until it goes through, ``stop`` is set or
        the next wait would pass ``deadline`` (what is left stays in the outbox). Raises
        :class:`AuthenticationError` (retrying a refused token is pointless)."""

        def give_up(state: RetryCallState) -> bool:
            if stop is not None and stop.is_set():
                return True
            return deadline is not None and time.monotonic() + (state.upcoming_sleep or 0) \
                > deadline

        def log_retry(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            log.warning("Posting results failed (%s); retrying in %.1f s. They are kept in "
                        "the local database meanwhile.", exc, state.upcoming_sleep or 0)

        retrying = Retrying(
            retry=retry_if_exception(lambda e: isinstance(e, RemoteError)
                                     and not isinstance(e, AuthenticationError)),
            wait=wait_exponential(multiplier=self.backoff_s, max=self.max_backoff_s),
            stop=give_up, before_sleep=log_retry, reraise=True,
            sleep=stop.wait if stop is not None else time.sleep)
        self._posted_now = 0
        with self._lock:
            try:
                retrying(self._post_ready, job_id)
                self.last_error = None
            except AuthenticationError:
                raise
            except RemoteError as exc:
                self.last_error = str(exc)
        return self._posted_now

    def _post_ready(self, job_id: int | None) -> None:
        """Post chunks until nothing is ready; a failed chunk raises (its attempt counted)."""
        while items := self.outbox.ready(job_id, limit=self.chunk * 8):
            for part in _by_job(items, self.chunk):
                try:
                    self._posted_now += self._post(part)
                except AuthenticationError:
                    raise
                except RemoteError:
                    self.outbox.mark_attempt_failed([i.row_id for i in part])
                    raise

    def _post(self, part: list[OutboxItem]) -> int:
        job_id = part[0].job_id
        body = [result_item(i.reply_subject, i.result or {}) for i in part]
        try:
            self.client.post_results(job_id, body)
        except RemoteError as exc:
            if getattr(exc, "status", None) != 400 or isinstance(exc, AuthenticationError):
                raise
            return self._post_singly(part, str(exc))
        self.outbox.mark_posted([i.row_id for i in part])
        if self.on_posted:
            self.on_posted(len(part))
        return len(part)

    def _post_singly(self, part: list[OutboxItem], why: str) -> int:
        """The server refused a chunk: find which result it refuses, and answer that task with
        an error result saying so (never leave a task unanswered)."""
        log.warning("The server refused a batch of results (%s); posting them one by one.", why)
        posted = 0
        for item in part:
            try:
                self.client.post_results(item.job_id, [result_item(item.reply_subject, item.result or {})])
                self.outbox.mark_posted([item.row_id])
                posted += 1
                continue
            except RemoteError as exc:
                if getattr(exc, "status", None) != 400 or isinstance(exc, AuthenticationError):
                    raise
                refusal = str(exc)
            if item.result is not None and "error" in item.result:
                log.error("The server refused the error result of task %s (%s); kept as "
                          "rejected in the local database.", item.task_id, refusal)
                self.outbox.mark_rejected(item.row_id, refusal)
                continue
            reason = f"trapgui computed a result the server refused ({refusal})"
            replacement = error_result(reason, item.image_id)
            self.outbox.replace_result(item.row_id, replacement, reason)
            try:
                self.client.post_results(item.job_id, [result_item(item.reply_subject, replacement)])
                self.outbox.mark_posted([item.row_id])
                posted += 1
            except RemoteError as exc:
                if getattr(exc, "status", None) != 400 or isinstance(exc, AuthenticationError):
                    raise
                self.outbox.mark_rejected(item.row_id, str(exc))
        if posted and self.on_posted:
            self.on_posted(posted)
        return posted


def _by_job(items: list[OutboxItem], size: int):
    groups: dict[int, list[OutboxItem]] = {}
    for item in items:
        groups.setdefault(item.job_id, []).append(item)
    for group in groups.values():
        for i in range(0, len(group), size):
            yield group[i:i + size]
