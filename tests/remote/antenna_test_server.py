"""A small, real Antenna processing-service server for tests (loopback only).

It implements the contract of ../shared/antenna-api.md over real HTTP: jobs, atomic task
claiming (one lock), result validation against the schema, projects, pipeline registration,
and image serving (without auth, like presigned URLs). Fault injection covers what real
servers and networks do: 5xx answers, hangs, connection resets (also mid-download),
truncated and non-image files, malformed JSON, a restart mid-job, and duplicate delivery; and
what hostile servers do: bodies dripped one byte at a time, ``Retry-After`` storms, redirects to
private addresses, oversized images. Image URLs carry a presigned-looking query
(``PRESIGNED_QUERY``) so tests can check that no log line or error shows one.

State lives in the :class:`AntennaState` object, so :meth:`AntennaTestServer.restart` brings
the server back with its queue intact (like a real server backed by a database and a broker).
"""

from __future__ import annotations

import itertools
import json
import re
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.remote.schema_check import validate_pipeline_config, validate_result

# what a presigned S3 URL carries: tests look for SIGNATURE in logs, events and error results
SIGNATURE = "presigned-SIGNATURE-d41d8cd98f00b204"
PRESIGNED_QUERY = f"X-Amz-Credential=AKIAEXAMPLE&X-Amz-Signature={SIGNATURE}"


@dataclass
class Task:
    id: str
    image_id: str
    # where the image lies in the project's storage (Antenna's image URL is the storage key,
    # e.g. ``vermont/2022_06_22/20220622200400-00-79.jpg``); default ``<image id>.jpg``
    key: str = ""
    deliveries: list[str] = field(default_factory=list)  # reply subjects, in order


@dataclass
class Job:
    id: int
    pipeline_slug: str
    tasks: dict[str, Task]
    queue: deque = field(default_factory=deque)  # task ids waiting to be claimed
    in_flight: dict = field(default_factory=dict)  # reply_subject -> (task id, deadline)
    answers: dict = field(default_factory=lambda: defaultdict(list))  # task id -> [(subject, result)]

    @property
    def complete(self) -> bool:
        return all(self.answers.get(t) for t in self.tasks)


@dataclass
class Fault:
    """Applies to requests whose method matches and whose path matches ``path`` (regex), the
    first ``times`` times (None = always)."""

    kind: str  # status:NNN | hang | reset | malformed_json | delay | lose_reply | drip, and for
    # images also reset_mid_body | truncated | not_image | not_image_octet | redirect |
    # oversized (declared) | oversized_undeclared (no Content-Length, keeps sending)
    path: str
    method: str = "*"
    times: int | None = 1
    seconds: float = 0.0  # for hang / delay; drip: seconds between bytes
    target: str = ""  # redirect: the Location
    headers: dict = field(default_factory=dict)  # status:NNN: extra headers (Retry-After)

    def matches(self, method: str, path: str) -> bool:
        return (self.method in ("*", method)) and re.search(self.path, path) is not None


class AntennaState:
    def __init__(self, token: str, images: dict[str, bytes], visibility_timeout: float | None):
        self.token = token
        self.images = images
        self.visibility_timeout = visibility_timeout
        self.lock = threading.Lock()
        self.jobs: dict[int, Job] = {}
        self.projects = [{"id": 1, "name": "Vermont moths"}, {"id": 2, "name": "Panama sheet"}]
        self.registrations: list[dict] = []
        self.faults: list[Fault] = []
        self.duplicate_next_claims = 0  # re-deliver an already delivered task in the next N claims
        # observations for assertions
        self.requests: list[tuple[str, str, int]] = []  # (method, path, status)
        self.image_requests: dict[str, int] = defaultdict(int)
        self.keys: dict[str, str] = {}  # storage key -> image id
        self.auth_on_images = 0
        self.unauthorised = 0
        self.rejected_results: list[str] = []
        self.claims_by_agent: dict[str, list[str]] = defaultdict(list)
        self.stopping = threading.Event()  # ends dripping handlers when the server stops
        self._subjects = itertools.count(1)

    def add_job(self, job_id: int, pipeline_slug: str, image_ids: list[str],
                keys: dict[str, str] | None = None) -> Job:
        keys = keys or {}
        tasks = {f"t{job_id}-{i}": Task(f"t{job_id}-{i}", image_id, keys.get(image_id, ""))
                 for i, image_id in enumerate(image_ids)}
        job = Job(job_id, pipeline_slug, tasks, deque(tasks))
        with self.lock:
            self.jobs[job_id] = job
            self.keys.update({k: i for i, k in keys.items()})
        return job

    def take_fault(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.matches(method, path) and (fault.times is None or fault.times > 0):
                    if fault.times is not None:
                        fault.times -= 1
                    return fault
        return None

    def claim(self, job: Job, batch_size: int, agent: str) -> list[dict]:
        with self.lock:
            now = time.monotonic()
            if self.visibility_timeout is not None:
                for subject, (task_id, deadline) in list(job.in_flight.items()):
                    if deadline < now:
                        del job.in_flight[subject]
                        if not job.answers.get(task_id):
                            job.queue.append(task_id)
            chosen = []
            while job.queue and len(chosen) < batch_size:
                task_id = job.queue.popleft()
                if not job.answers.get(task_id) and task_id not in chosen:  # acked meanwhile
                    chosen.append(task_id)
            if self.duplicate_next_claims > 0 and chosen:
                delivered = [t.id for t in job.tasks.values() if t.deliveries and t.id not in chosen]
                if delivered:
                    self.duplicate_next_claims -= 1
                    chosen.append(delivered[0])
            out = []
            for task_id in chosen:
                task = job.tasks[task_id]
                subject = f"job.{job.id}.reply.{next(self._subjects)}"
                task.deliveries.append(subject)
                job.in_flight[subject] = (task_id, now + (self.visibility_timeout or 1e9))
                self.claims_by_agent[agent].append(task_id)
                where = (quote(task.key, safe="/") if task.key
                         else f"{quote(task.image_id, safe='')}.jpg")
                out.append({"id": task_id, "image_id": task.image_id,
                            "image_url": f"{self.base_url}/images/{where}?{PRESIGNED_QUERY}",
                            "reply_subject": subject})
            return out

    base_url = ""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AntennaTest/1"

    def log_message(self, *args):  # keep test output quiet
        pass

    @property
    def state(self) -> AntennaState:
        return self.server.state  # type: ignore[attr-defined]

    # ---- plumbing ----------------------------------------------------------------------
    def _send(self, status: int, body: bytes, ctype: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.state.requests.append((self.command, urlsplit(self.path).path, status))

    def _json(self, status: int, data, headers: dict | None = None) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(body)
        self.state.requests.append((self.command, urlsplit(self.path).path, status))

    def _drip(self, body: bytes, ctype: str, seconds: float, declare: bool = True) -> None:
        """Headers at once, then the body one byte every ``seconds``: each byte arrives well
        within any read timeout, so only a total deadline ends it."""
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        if declare:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.state.requests.append((self.command, urlsplit(self.path).path, 200))
        try:
            for i in range(len(body)):
                if self.state.stopping.wait(seconds):
                    break
                self.wfile.write(body[i:i + 1])
                self.wfile.flush()
        except OSError:
            pass  # the client gave up (what it should do)
        self.close_connection = True

    def _reset(self) -> None:
        # RST instead of FIN: the client sees "connection reset by peer"
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self.close_connection = True
        self.connection.close()

    def _apply_fault(self, path: str) -> bool:
        fault = self.state.take_fault(self.command, path)
        if fault is None:
            return False
        if fault.kind.startswith("status:"):
            self._json(int(fault.kind.split(":")[1]), {"detail": "injected failure"}, fault.headers)
            return True
        if fault.kind == "drip":
            self._drip(json.dumps({"results": [], "tasks": []}).encode(), "application/json",
                       fault.seconds)
            return True
        if fault.kind == "hang":
            time.sleep(fault.seconds)
            self._reset()
            return True
        if fault.kind == "reset":
            self._reset()
            return True
        if fault.kind == "malformed_json":
            self._send(200, b'{"results": [ {"id": 1,,,')
            return True
        if fault.kind == "delay":
            time.sleep(fault.seconds)
            return False
        if fault.kind == "lose_reply":  # act on the request, then drop the connection
            self._lose_reply = True
        return False  # image faults are handled in _image

    def _read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            return json.loads(raw or b"null")
        except ValueError:
            return None

    def _authorised(self) -> bool:
        if self.headers.get("Authorization") == f"Token {self.state.token}":
            return True
        with self.state.lock:
            self.state.unauthorised += 1
        self._json(401, {"detail": "Invalid token."})
        return False

    # ---- routes ------------------------------------------------------------------------
    def do_GET(self):
        parts = urlsplit(self.path)
        path = parts.path
        if path.startswith("/images/"):
            return self._image(path)
        if self._apply_fault(path):
            return
        if not self._authorised():
            return
        if path == "/api/v2/jobs":
            q = parse_qs(parts.query)
            slugs = set((q.get("pipeline__slug__in") or [""])[0].split(","))
            if q.get("dispatch_mode") != ["async_api"] or q.get("ids_only") != ["1"]:
                return self._json(400, {"detail": "missing dispatch_mode/ids_only"})
            with self.state.lock:
                rows = [{"id": j.id, "pipeline_slug": j.pipeline_slug}
                        for j in self.state.jobs.values()
                        if j.pipeline_slug in slugs and not (
                            q.get("incomplete_only") == ["1"] and j.complete)]
            return self._json(200, {"results": rows})
        if path == "/api/v2/projects/":
            return self._json(200, {"results": self.state.projects})
        return self._json(404, {"detail": "Not found."})

    def do_POST(self):
        path = urlsplit(self.path).path
        body = self._read_json()  # always drain the body, keep-alive depends on it
        if self._apply_fault(path):
            return
        if not self._authorised():
            return
        m = re.fullmatch(r"/api/v2/jobs/(\d+)/tasks/", path)
        if m:
            job = self.state.jobs.get(int(m.group(1)))
            if job is None:
                return self._json(404, {"detail": "No such job."})
            size = body.get("batch_size") if isinstance(body, dict) else None
            if not isinstance(size, int) or isinstance(size, bool) or size <= 0:
                return self._json(400, {"detail": "batch_size must be a positive integer"})
            agent = self.headers.get("X-Test-Agent") or self.headers.get("User-Agent", "")
            tasks = self.state.claim(job, size, agent)
            if getattr(self, "_lose_reply", False):
                self._lose_reply = False
                return self._reset()
            return self._json(200, {"tasks": tasks})
        m = re.fullmatch(r"/api/v2/jobs/(\d+)/result/", path)
        if m:
            return self._results(int(m.group(1)), body)
        m = re.fullmatch(r"/api/v2/projects/(\d+)/pipelines/", path)
        if m:
            return self._register(int(m.group(1)), body)
        return self._json(404, {"detail": "Not found."})

    def _results(self, job_id: int, body) -> None:
        job = self.state.jobs.get(job_id)
        if job is None:
            return self._json(404, {"detail": "No such job."})
        if not isinstance(body, dict) or not isinstance(body.get("results"), list):
            return self._json(400, {"detail": "results must be a list"})
        for item in body["results"]:
            problem = validate_result(item, job.pipeline_slug)
            if problem:
                self.state.rejected_results.append(problem)
                return self._json(400, {"detail": problem})
        acks = []
        lose = getattr(self, "_lose_reply", False)
        with self.state.lock:
            for item in body["results"]:
                subject = item["reply_subject"]
                flight = job.in_flight.pop(subject, None)
                task_id = flight[0] if flight else next(
                    (t.id for t in job.tasks.values() if subject in t.deliveries), None)
                if task_id is None:
                    acks.append({"reply_subject": subject, "status": "unknown", "task_id": ""})
                    continue
                already = any(s == subject for s, _ in job.answers[task_id])
                if not already:
                    job.answers[task_id].append((subject, item["result"]))
                acks.append({"reply_subject": subject, "task_id": task_id,
                             "status": "duplicate" if already else "queued"})
        if lose:
            self._lose_reply = False
            return self._reset()
        self._json(200, {"status": "accepted", "job_id": job_id,
                         "results_queued": sum(a["status"] == "queued" for a in acks), "tasks": acks})

    def _register(self, project_id: int, body) -> None:
        if project_id not in {p["id"] for p in self.state.projects}:
            return self._json(404, {"detail": "Not found."})
        if not isinstance(body, dict) or not isinstance(body.get("processing_service_name"), str) \
                or not isinstance(body.get("pipelines"), list):
            return self._json(400, {"detail": "processing_service_name and pipelines required"})
        for p in body["pipelines"]:
            problem = validate_pipeline_config(p)
            if problem:
                return self._json(400, {"detail": problem})
        with self.state.lock:
            known = {(r["project_id"], r["slug"]) for r in self.state.registrations}
            created, updated = [], []
            for p in body["pipelines"]:
                (updated if (project_id, p["slug"]) in known else created).append(p["slug"])
                self.state.registrations.append({"project_id": project_id, "slug": p["slug"],
                                                 "service": body["processing_service_name"],
                                                 "config": p})
        self._json(200, {"pipelines_created": created, "pipelines_updated": updated,
                         "processing_service_id": 7})

    def _image(self, path: str) -> None:
        key = unquote(path[len("/images/"):])
        with self.state.lock:
            image_id = self.state.keys.get(key)
            if image_id is None:  # the default key: ``<image id>.jpg``
                image_id = unquote(path.rsplit("/", 1)[-1]).rsplit(".", 1)[0]
            self.state.image_requests[image_id] += 1
            if self.headers.get("Authorization"):
                self.state.auth_on_images += 1
        data = self.state.images.get(image_id)
        if data is None:
            return self._json(404, {"detail": "No such image."})
        fault = self.state.take_fault("GET", path)
        if fault is not None:
            if fault.kind == "delay":
                time.sleep(fault.seconds)
            elif fault.kind == "hang":
                time.sleep(fault.seconds)
                return self._reset()
            elif fault.kind.startswith("status:"):
                return self._json(int(fault.kind.split(":")[1]), {"detail": "injected failure"},
                                  fault.headers)
            elif fault.kind == "drip":
                return self._drip(data, "image/jpeg", fault.seconds)
            elif fault.kind == "redirect":
                return self._json(302, {}, {"Location": fault.target})
            elif fault.kind == "oversized":  # declares (and would send) far more than allowed
                return self._send(200, data * 40, "image/jpeg")
            elif fault.kind == "oversized_undeclared":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.end_headers()
                self.state.requests.append(("GET", path, 200))
                try:
                    self.wfile.write(data)
                    for _ in range(4000):  # ~1 GB of padding at most, until the client hangs up
                        if self.state.stopping.is_set():
                            break
                        self.wfile.write(b"\0" * (256 * 1024))
                except OSError:
                    pass
                self.close_connection = True
                return
            elif fault.kind == "reset":
                return self._reset()
            elif fault.kind == "reset_mid_body":
                self.send_response(200)
                self.send_header("Content-Type", "image/jpeg")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data[: len(data) // 2])
                self.wfile.flush()
                return self._reset()
            elif fault.kind == "truncated":
                return self._send(200, data[: len(data) * 2 // 3], "image/jpeg")
            elif fault.kind == "not_image":
                return self._send(200, b"<html><body>Access denied</body></html>", "text/html")
            elif fault.kind == "not_image_octet":
                return self._send(200, b"PK\x03\x04 a zip file, not an image" * 10,
                                  "application/octet-stream")
        self._send(200, data, "image/jpeg")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class AntennaTestServer:
    """``with AntennaTestServer(images) as server:`` → ``server.base_url`` (the API root)."""

    def __init__(self, images: dict[str, bytes], *, token: str = "s3cret-T0KEN-for-tests",
                 visibility_timeout: float | None = None, port: int = 0):
        self.state = AntennaState(token, images, visibility_timeout)
        self._port = port
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def token(self) -> str:
        return self.state.token

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    @property
    def base_url(self) -> str:
        return f"{self.root}/api/v2"

    def start(self) -> "AntennaTestServer":
        self.state.stopping.clear()
        self._httpd = _Server(("127.0.0.1", self._port), _Handler)
        self._httpd.state = self.state  # type: ignore[attr-defined]
        self._port = self._httpd.server_address[1]
        self.state.base_url = self.root
        self._thread = threading.Thread(target=self._httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.state.stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)

    def restart(self, downtime_s: float = 0.5) -> None:
        """Go away (connections refused) for ``downtime_s``, then come back on the same port
        with the same state."""
        self.stop()
        time.sleep(downtime_s)
        self.start()

    def __enter__(self) -> "AntennaTestServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ---- helpers for tests ---------------------------------------------------------------
    def add_job(self, job_id: int, pipeline_slug: str, image_ids: list[str],
                keys: dict[str, str] | None = None) -> Job:
        """``keys``: image id -> storage key (the image URL's path), as Antenna's URLs carry
        the original folder and file name; ids not in it are served at ``<id>.jpg``."""
        return self.state.add_job(job_id, pipeline_slug, image_ids, keys)

    def inject(self, kind: str, path: str, *, method: str = "*", times: int | None = 1,
               seconds: float = 0.0, target: str = "", headers: dict | None = None) -> Fault:
        fault = Fault(kind, path, method, times, seconds, target, dict(headers or {}))
        with self.state.lock:
            self.state.faults.append(fault)
        return fault

    def answers(self, job_id: int) -> dict[str, list]:
        with self.state.lock:
            return {t: list(a) for t, a in self.state.jobs[job_id].answers.items()}
