"""The facade the desktop app talks to: paths, settings and lazily built sub-services.

Importing this module is cheap on purpose (no SQLAlchemy, no torch): the window must appear
within about a second, so every sub-service is created on first use, and the GUI makes that
first use from a background thread.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import sys
import threading
from collections.abc import Callable
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from trapgui.config import AppPaths, Settings, default_paths, load_settings, save_settings
from trapgui.version import __version__

if TYPE_CHECKING:
    from trapgui.services.catalogue_service import CatalogueService
    from trapgui.services.export_service import ExportService
    from trapgui.services.models_service import ModelsService
    from trapgui.services.processing_service import ProcessingService
    from trapgui.services.remote_service import RemoteService
    from trapgui.services.results_service import ResultsService
    from trapgui.services.review_service import ReviewService
    from trapgui.services.trap_service import TrapService
    from trapgui.services.tracking_service import TrackingService

T = TypeVar("T")


class Services:
    """Everything the GUI may call. Each sub-service is imported and built on first use, once
    (a lock: two threads asking at once get the same object)."""

    def __init__(self, paths: AppPaths, settings: Settings, *, reset_db: bool = False):
        self.paths = paths
        self.settings = settings
        self.reset_db = reset_db
        self._lock = threading.RLock()
        self._built: dict[str, object] = {}
        self._db = None
        self.db_moved_aside_to: Path | None = None

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, *, config_dir=None, data_dir=None, db_path=None, reset_db=False) -> "Services":
        """Resolve paths the same way the CLI does (flag > env > settings > platform)."""
        base = default_paths(config_dir=config_dir)
        settings = load_settings(base.settings_file)
        paths = default_paths(config_dir=config_dir, data_dir=data_dir, db_path=db_path,
                              settings_data_dir=settings.data_dir,
                              settings_db_path=settings.db_path)
        return cls(paths, settings, reset_db=reset_db)

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            return self._built[name]  # type: ignore[return-value]

    # ---- sub-services (lazily imported: the window appears before SQLAlchemy or torch) -----
    @cached_property
    def catalogue(self) -> CatalogueService:
        from trapgui.services.catalogue_service import CatalogueService

        return self._once("catalogue", lambda: CatalogueService(self))

    @cached_property
    def processing(self) -> ProcessingService:
        from trapgui.services.processing_service import ProcessingService

        return self._once("processing", lambda: ProcessingService(self))

    @cached_property
    def models(self) -> ModelsService:
        from trapgui.services.models_service import ModelsService

        return self._once("models", lambda: ModelsService(self))

    @cached_property
    def results(self) -> ResultsService:
        from trapgui.services.results_service import ResultsService

        return self._once("results", lambda: ResultsService(self))

    @cached_property
    def export(self) -> ExportService:
        from trapgui.services.export_service import ExportService

        return self._once("export", lambda: ExportService(self))

    @cached_property
    def remote(self) -> RemoteService:
        from trapgui.services.remote_service import RemoteService

        return self._once("remote", lambda: RemoteService(self))

    @cached_property
    def traps(self) -> TrapService:
        from trapgui.services.trap_service import TrapService

        return self._once("traps", lambda: TrapService(self))

    @cached_property
    def tracking(self) -> TrackingService:
        from trapgui.services.tracking_service import TrackingService

        return self._once("tracking", lambda: TrackingService(self))

    @cached_property
    def review(self) -> ReviewService:
        from trapgui.services.review_service import ReviewService

        return self._once("review", lambda: ReviewService(self))

    def available(self, name: str) -> bool:
        """Whether the part ``name`` (``services.<name>``) is in this build, without importing
        it: a frozen build may leave out ``remote``."""
        module_name = f"trapgui.services.{name}_service"
        try:
            return importlib.util.find_spec(module_name) is not None
        except ModuleNotFoundError:
            return False

    # ---- shared resources ---------------------------------------------------------------
    @property
    def db(self):
        """The catalogue database, opened on first use (call from a background thread)."""
        with self._lock:
            if self._db is None:
                from trapgui.db import open_database

                self._db = open_database(self.paths.db_path, move_aside_if_bad=self.reset_db)
                self.db_moved_aside_to = getattr(self._db, "moved_aside_to", None)
            return self._db

    def save_settings(self) -> None:
        save_settings(self.settings, self.paths.settings_file)

    def apply_settings(self, new: Settings) -> list[str]:
        """Validate and store new settings; returns the problems (nothing saved if any).

        A changed data folder or database location takes effect on the next start (the open
        database is in use by running work)."""
        problems = new.validate()
        if problems:
            return problems
        self.settings = new
        self.save_settings()
        return []

    def close(self) -> None:
        with self._lock:
            for service in self._built.values():
                close = getattr(service, "close", None)
                if close is not None:
                    try:
                        close()
                    except Exception:  # noqa: BLE001 - closing must go on for the others
                        pass
            if self._db is not None:
                self._db.close()
                self._db = None

    def preload(self) -> None:
        """Import what processing needs (torch, the engine, the model store) now: call it from
        a background thread once the window is up. A first run then starts sooner, and the
        window can take these long-lived objects out of the garbage collector's full scans
        (``gui.launch.freeze_long_lived_objects``)."""
        import trapgui.pipeline.engine  # noqa: F401 - torch, torchvision, the models' code

        self.models.store  # noqa: B018 - the model store and catalogue

    # ---- support ------------------------------------------------------------------------
    def diagnostics(self) -> dict[str, str]:
        """Versions, devices and paths for the About box (imports torch: background only).
        The GUI adds the Qt version (this layer never imports Qt)."""
        info = {
            "trapgui": __version__,
            "Python": f"{platform.python_version()} ({sys.executable})",
            "Platform": platform.platform(),
        }
        try:
            import torch

            info["torch"] = torch.__version__
            info["CUDA"] = torch.version.cuda or "none (CPU build)"
        except ImportError:
            info["torch"] = "not installed"
        info["Devices"] = ", ".join(self.device_names()) or "cpu"
        info["CPU cores"] = str(os.cpu_count())
        info["Settings file"] = str(self.paths.settings_file)
        info["Data folder"] = str(self.paths.data_dir)
        info["Database"] = str(self.paths.db_path)
        info["Models folder"] = str(self.paths.models_dir)
        return info

    def device_names(self) -> list[str]:
        """Compute devices found ("cuda:0 (NVIDIA ...)", "cpu (...)"); imports torch."""
        try:
            from trapgui.ml.devices import probe_devices

            probe = probe_devices()
        except Exception:  # noqa: BLE001 - diagnostics must not fail
            return ["cpu"]
        names = []
        for d in probe.devices:
            state = "" if d.usable else f", not usable: {d.reason}"
            names.append(f"{d.id} ({d.name}{state})")
        return names or ["cpu"]
