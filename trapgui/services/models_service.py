"""Models for the GUI: the catalogue with each model's install state, and the store's actions
(download with progress and cancel, import, verify, remove).

The store imports torch (it loads weights to check them): build this service and call it from
a background thread only; the download is a job (``download_job``).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from trapgui.core.errors import Cancelled, DownloadCancelled, ModelError
from trapgui.core.jobs import Emit, JobControl, Progress


@dataclass(frozen=True)
class ModelEntry:
    key: str
    name: str
    task: str  # "detection" | "classification"
    rank: str | None  # "binary" | "order" | "species" for classifiers
    state: str  # "installed" | "not installed" | "partly downloaded" | "corrupt"
    size_bytes: int | None  # on disk when installed, else the expected download size
    downloaded_bytes: int
    problem: str | None
    needs_weights: bool
    antenna_slugs: tuple[str, ...]
    weights_url: str | None

    @property
    def installed(self) -> bool:
        return self.state == "installed"

    @property
    def kind(self) -> str:
        return "Detector" if self.task == "detection" else f"{(self.rank or '').capitalize()} classifier"


class ModelsService:
    def __init__(self, services):
        self._services = services
        self._lock = threading.Lock()
        self._store = None

    @property
    def store(self):
        with self._lock:
            if self._store is None:
                from trapgui.ml.store import ModelStore

                self._store = ModelStore(self._services.paths.models_dir)
            return self._store

    @property
    def model_catalogue(self):
        return self.store.model_catalogue

    def entries(self) -> list[ModelEntry]:
        """Every catalogue model with its install state (cheap: no hashing)."""
        out = []
        for spec in self.model_catalogue:
            status = self.store.status(spec.key)
            out.append(ModelEntry(
                key=spec.key, name=spec.name, task=spec.task,
                rank=spec.rank.value if spec.rank is not None else None,
                state=status.state.value, size_bytes=status.size_bytes,
                downloaded_bytes=status.downloaded_bytes, problem=status.problem,
                needs_weights=spec.needs_weights, antenna_slugs=tuple(spec.antenna_slugs),
                weights_url=spec.weights_url))
        return out

    def choices(self) -> dict[str, list[tuple[str, str, bool]]]:
        """For the settings dialog: (key, name, installed) per role, from the catalogue."""
        roles = {"detector": [], "binary": [], "species": [], "order": []}
        for e in self.entries():
            role = "detector" if e.task == "detection" else e.rank
            if role in roles:
                roles[role].append((e.key, e.name, e.installed))
        return roles

    def species_installed(self) -> bool:
        return any(e.installed and e.rank == "species" for e in self.entries())

    def missing_for(self, spec) -> list[tuple[str, str]]:
        """(key, name) of the models a pipeline spec uses that are not installed (or damaged)."""
        missing = []
        for key in (spec.detector, spec.binary, spec.species, spec.order):
            if not key:
                continue
            try:
                model = self.model_catalogue.get(key)
            except ModelError:
                missing.append((key, key))
                continue
            if not self.store.status(key).installed:
                missing.append((key, model.name))
        return missing

    def download_job(self, key: str):
        """A job that downloads (or resumes) a model and verifies it; returns its status.
        Progress in "bytes"; a cancel stops within one chunk (Cancelled) and keeps the part
        already downloaded for a resume."""

        def job(emit: Emit, control: JobControl):
            cancel = threading.Event()
            control.on_change(lambda: cancel.set() if control.cancelled else None)
            if control.cancelled:
                cancel.set()

            def progress(done: int, total: int | None) -> None:
                emit(Progress(done, total, unit="bytes", message=f"Downloading {key}"))

            try:
                return self.store.download(key, progress=progress, cancel=cancel)
            except DownloadCancelled as exc:
                raise Cancelled(str(exc)) from exc

        return job

    def import_file(self, key: str, weights: str, labels: str | None = None):
        return self.store.import_file(key, weights, labels)

    def verify(self, key: str):
        return self.store.verify(key)

    def remove(self, key: str) -> int:
        return self.store.remove(key)

    def needs_labels_file(self, key: str) -> bool:
        """Whether importing ``key`` needs a label map beside the weights (not yet present)."""
        path = self.store.labels_path(key)
        return path is not None and not path.exists()
