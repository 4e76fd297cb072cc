"""Fixtures for remote-jobs tests: small real trap images served by the Antenna test server,
a model store with random-initialised published classifiers, and a worker factory."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from tests.image_files import downscaled_jpeg
from tests.remote.antenna_test_server import AntennaTestServer

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "trap-images"
SIDE = 256  # longest side: real trap content, few enough insects to keep tests fast
SPECIES_CLASSES = 40


def _small_jpeg(src: Path, side: int = SIDE) -> bytes:
    return downscaled_jpeg(src, side)


@pytest.fixture(scope="session")
def remote_images() -> dict[str, bytes]:
    """image id -> JPEG bytes (one per shared image, in a stable order)."""
    files = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not files:
        pytest.fail(f"shared trap images not found at {SHARED}")
    return {f"img{i:02d}": _small_jpeg(f) for i, f in enumerate(files)}


@pytest.fixture(scope="session")
def cheap_ids(remote_images) -> list[str]:
    """Image ids of the sparser sheets (vermont, sequential: ~2-20 insects at this size, the
    panama ones have 30+), so fault tests spend their time on faults, not on classifying."""
    files = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    return [f"img{i:02d}" for i, f in enumerate(files)
            if f.parent.name in ("vermont", "sequential")]


@pytest.fixture(scope="session")
def model_store(tmp_path_factory):
    """The real store layout with random weights for the binary filter and a species model."""
    from trapgui.ml.registry import install_random_weights
    from trapgui.ml.store import ModelStore

    store = ModelStore(tmp_path_factory.mktemp("models"))
    install_random_weights(store, "moth_binary_resnet50_2024", seed=1)  # a moth/non-moth mix
    install_random_weights(store, "panama_resnet50_2023", seed=4, num_classes=SPECIES_CLASSES)
    return store


@pytest.fixture
def server(remote_images):
    with AntennaTestServer(remote_images) as srv:
        yield srv


@pytest.fixture
def make_worker(db, model_store, tmp_path):
    """``make_worker(server, slugs=("moth_binary",), **config)`` → (worker, events list).
    ``worker.run()`` runs the job with the events collected in that list and the control at
    ``worker.control`` (``worker.control.abort()`` stops it at once)."""
    import functools

    from trapgui.core.jobs import JobControl
    from trapgui.remote.client import AntennaClient
    from trapgui.remote.pipelines import resolve_pipeline
    from trapgui.remote.worker import RemoteWorker, WorkerConfig

    made = []

    def make(srv, slugs=("moth_binary",), token=None, database=None, **config):
        defaults = dict(batch_size=4, batch_timeout_s=0.2, download_threads=4, devices="cpu",
                        exit_when_idle=True, poll_min_s=0.1, poll_max_s=0.5,
                        download_timeout=(2.0, 3.0), download_deadline_s=20.0,
                        final_post_timeout_s=20.0)
        defaults.update(config)
        client = AntennaClient(srv.base_url, srv.token if token is None else token,
                               timeout=(2.0, 3.0), retries=3, backoff=0.05, max_retry_wait=0.5,
                               call_deadline_s=5.0)
        pipes = [resolve_pipeline(s, model_store.model_catalogue, detector="builtin") for s in slugs]
        events: list = []
        worker = RemoteWorker(client, database or db, model_store, pipes, tmp_path / "cache",
                              WorkerConfig(**defaults))
        worker.control = JobControl()
        worker.run = functools.partial(worker.run, events.append, worker.control)
        worker.poster.backoff_s = 0.05
        worker.poster.max_backoff_s = 0.5
        made.append(client)
        return worker, events

    yield make
    for client in made:
        client.close()


@pytest.fixture
def captured_logs(caplog):
    caplog.set_level(logging.DEBUG)
    return caplog
