"""Remote jobs for the GUI: the connection (URL + token), pipelines this machine can serve,
open jobs, and the remote run as a job like a local one.

Every method that talks to the server or loads models blocks: the GUI calls them through its
job runner. ``run_job`` returns a job ``(emit, control) -> RunSummary`` that reports with the
same ``core.jobs`` events as a local run, so the window shows both in one panel. Heavy modules
are imported on first use.
"""

from __future__ import annotations

from collections.abc import Sequence

from trapgui.core.errors import RemoteError, TrapguiError, UserInputError
from trapgui.core.jobs import Emit, JobControl, RunPlanned, RunProgress, RunSummary
from trapgui.services.remote_types import ConnectionReport, PipelineChoice, RemoteJobRow


class RemoteService:
    def __init__(self, services):
        self._services = services

    # ---- configuration ------------------------------------------------------------------
    @property
    def _settings(self):
        return self._services.settings

    def _credentials(self):
        from trapgui.remote.credentials import CredentialStore

        return CredentialStore(self._services.paths.config_dir)

    def base_url(self) -> str:
        return self._settings.remote_base_url

    def stored_token(self, base_url: str | None = None) -> str:
        return self._credentials().get(base_url or self.base_url()) or ""

    def token_location(self) -> str:
        return self._credentials().location

    def save_connection(self, base_url: str, token: str) -> str:
        """Keep the address in the settings and the token in the keyring / secrets file (one
        token per server host); returns where the token went, in words."""
        from trapgui.remote.client import check_http_url

        base_url = check_http_url(base_url.strip().rstrip("/"), "server address")
        where = self._credentials().set(base_url, token.strip())
        if self._settings.remote_base_url != base_url:
            self._settings.remote_base_url = base_url
            self._services.save_settings()
        return where

    def test_and_save(self, base_url: str, token: str) -> ConnectionReport:
        """Test the connection; when it works, save it and say where the token went."""
        report = self.test_connection(base_url, token)
        if not report.ok:
            return report
        where = self.save_connection(base_url, token)
        return ConnectionReport(True, f"{report.message} The token is saved in {where}.",
                                report.projects)

    def save_pipelines(self, slugs: Sequence[str]) -> None:
        self._settings.remote_pipelines = list(slugs)
        self._services.save_settings()

    def _client(self, base_url: str | None, token: str | None):
        from trapgui.remote.client import AntennaClient

        url = base_url or self.base_url()
        return AntennaClient(url, token if token is not None else self.stored_token(url),
                             timeout=(5.0, 15.0), retries=1, call_deadline_s=30.0,
                             allow_insecure_http=self._settings.remote_allow_insecure_http)

    # ---- server calls -------------------------------------------------------------------
    def test_connection(self, base_url: str | None = None, token: str | None = None) -> ConnectionReport:
        """Never raises for server problems: the report says what happened."""
        try:
            client = self._client(base_url, token)
        except TrapguiError as exc:
            return ConnectionReport(False, str(exc))
        try:
            if not client.has_token:
                return ConnectionReport(False, "Enter an API token first.")
            projects = client.list_projects()
        except RemoteError as exc:
            return ConnectionReport(False, str(exc))
        finally:
            client.close()
        names = [p.name for p in projects]
        if not names:
            return ConnectionReport(True, "Connected. The token sees no projects yet.", [])
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        return ConnectionReport(True, f"Connected. {len(names)} project(s): {shown}.", names)

    def pipeline_choices(self) -> list[PipelineChoice]:
        from trapgui.remote.pipelines import known_slugs, resolve_pipeline

        store = self._services.models.store
        out = []
        for slug in known_slugs(store.model_catalogue):
            pipe = resolve_pipeline(slug, store.model_catalogue, detector=self._settings.remote_detector)
            missing = [k for k in pipe.model_keys if not store.is_installed(k)]
            if missing:
                out.append(PipelineChoice(slug, False, "needs " + ", ".join(missing)))
            else:
                out.append(PipelineChoice(slug, True, " + ".join(pipe.model_keys)))
        return out

    def list_jobs(self, slugs: Sequence[str], base_url: str | None = None,
                  token: str | None = None) -> list[RemoteJobRow]:
        if not slugs:
            return []
        client = self._client(base_url, token)
        try:
            return [RemoteJobRow(j.id, j.pipeline_slug) for j in client.list_jobs(list(slugs))]
        finally:
            client.close()

    def register(self, project_ids: Sequence[int] | None = None) -> list[str]:
        """Register the servable pipelines with the token's projects; one line per project."""
        from trapgui.remote.pipelines import registration_payload
        from trapgui.remote.setup import resolve_pipelines

        store = self._services.models.store
        pipes, _ = resolve_pipelines(store, self._settings)
        if not pipes:
            raise UserInputError("No pipeline can be served: install the models of at least "
                                 "one pipeline first (Models).")
        payloads = [registration_payload(p, store) for p in pipes]
        client = self._client(None, None)
        lines = []
        try:
            projects = client.list_projects()
            for project in projects:
                if project_ids and project.id not in project_ids:
                    continue
                try:
                    r = client.register_pipelines(project.id, self._settings.remote_service_name,
                                                  payloads)
                    lines.append(f"{project.name}: {len(r.created)} created, "
                                 f"{len(r.updated)} updated.")
                except RemoteError as exc:
                    lines.append(f"{project.name}: {exc}")
        finally:
            client.close()
        return lines

    # ---- the run ------------------------------------------------------------------------
    def run_job(self, slugs: Sequence[str], job_id: int | None = None,
                base_url: str | None = None, token: str | None = None):
        """A job that processes ``job_id`` (or every open job of ``slugs``) until it has no
        work left or is cancelled; returns the RunSummary. Emits RunPlanned, RunProgress (in
        "tasks"), BatchCommitted and LogLine, like a local run. Cancel finishes the claimed
        tasks and posts their results; abort stops at once (claims stay in the outbox)."""
        slugs = list(slugs)

        def job(emit: Emit, control: JobControl) -> RunSummary:
            from trapgui.remote.setup import (Connection, build_worker, resolve_pipelines,
                                              worker_config)

            services = self._services
            emit(RunProgress(0, None, unit="tasks", message="Loading models…"))
            store = services.models.store
            pipes, why = resolve_pipelines(store, services.settings, slugs)
            if not pipes:
                detail = "; ".join(f"{s}: {w}" for s, w in why.items())
                raise UserInputError(f"None of the chosen pipelines can run here ({detail}).")
            url = (base_url or self.base_url()).rstrip("/")
            conn = Connection(url, token if token is not None else self.stored_token(url), "app",
                              services.settings.remote_allow_insecure_http)
            config = worker_config(services.settings, job_ids=[job_id] if job_id else None,
                                   exit_when_idle=True)
            what = f"Antenna job {job_id}" if job_id else "open Antenna jobs"
            emit(RunPlanned(f"{what} ({', '.join(slugs)})",
                            " + ".join(k for p in pipes for k in p.model_keys), None))
            worker = build_worker(services.db, store, services.paths, services.settings, conn,
                                  pipes, config)
            return worker.run(emit, control)

        return job
