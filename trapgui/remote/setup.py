"""Building a worker from configuration: flags, then environment, then the app's settings.

Shared by ``trapgui worker`` and the app's Remote tab so both resolve the server, the token,
the pipelines and the worker settings the same way.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from trapgui.config.paths import AppPaths
from trapgui.config.settings import Settings
from trapgui.core.errors import UserInputError
from trapgui.remote.client import AntennaClient, check_http_url, check_token_transport
from trapgui.remote.credentials import CredentialStore
from trapgui.remote.pipelines import RemotePipeline, resolve_pipeline, servable_pipelines
from trapgui.remote.worker import RemoteWorker, WorkerConfig

ENV_URL = "TRAPGUI_REMOTE_URL"
ENV_TOKEN = "TRAPGUI_REMOTE_TOKEN"


@dataclass(frozen=True)
class Connection:
    base_url: str
    token: str | None = field(repr=False)  # never in a repr, a log line or a traceback
    # where the token came from, in words ("--token-file /path", "the system keyring (…)", …)
    token_source: str = "none"
    allow_insecure_http: bool = False  # the user allowed sending it over plain http


def resolve_connection(paths: AppPaths, settings: Settings, *, base_url: str | None = None,
                       token: str | None = None, token_source: str = "--token",
                       allow_insecure_http: bool | None = None) -> Connection:
    """``token``/``token_source``: a token the caller read (a flag, a file, standard input).
    Raises UserInputError when the token would go over plain http to another computer without
    the user's permission (``allow_insecure_http``, else the setting)."""
    url = (base_url or os.environ.get(ENV_URL) or settings.remote_base_url or "").strip()
    if not url:
        raise UserInputError("No server address: give --base-url, set TRAPGUI_REMOTE_URL, or "
                             "enter it in the app's Remote tab.")
    url = check_http_url(url.rstrip("/"), "server address")
    allow = settings.remote_allow_insecure_http if allow_insecure_http is None else allow_insecure_http
    env = os.environ.get(ENV_TOKEN, "").strip()
    if token and token.strip():
        conn = Connection(url, token.strip(), token_source, allow)
    elif env:
        conn = Connection(url, env, f"the environment variable {ENV_TOKEN}", allow)
    else:
        stored, where = CredentialStore(paths.config_dir).lookup(url)
        conn = Connection(url, stored, where or "none", allow)
    if conn.token:
        check_token_transport(url, allow)
    return conn


def resolve_pipelines(store, settings: Settings, slugs: Sequence[str] | None = None, *,
                      detector: str | None = None) -> tuple[list[RemotePipeline], dict[str, str]]:
    """Pipelines to serve: the given slugs (each must be servable), else the settings' list,
    else every pipeline whose models are installed. Returns (pipelines, {slug: why not})."""
    detector = detector or settings.remote_detector
    wanted = list(slugs or settings.remote_pipelines or [])
    if wanted:
        for slug in wanted:
            resolve_pipeline(slug, store.model_catalogue, detector=detector)  # unknown slug: clear error
    return servable_pipelines(store, wanted or None, detector=detector)


def worker_config(settings: Settings, **overrides) -> WorkerConfig:
    values = dict(
        batch_size=settings.remote_batch_size,
        batch_timeout_s=settings.remote_batch_timeout_s,
        download_threads=settings.remote_download_threads,
        devices=settings.device,
        classification_batch_size=settings.classification_batch_size,
        top_k=settings.top_k,
    )
    values.update({k: v for k, v in overrides.items() if v is not None})
    return WorkerConfig(**values)


def build_worker(db, store, paths: AppPaths, settings: Settings, connection: Connection,
                 pipelines: Sequence[RemotePipeline], config: WorkerConfig) -> RemoteWorker:
    client = AntennaClient(connection.base_url, connection.token,
                           allow_insecure_http=connection.allow_insecure_http)
    return RemoteWorker(client, db, store, pipelines, paths.cache_dir, config,
                        cutoff_hour=settings.night_cutoff_hour,
                        tracking=settings.tracking_params())
