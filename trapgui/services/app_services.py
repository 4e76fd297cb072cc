"""The facade the desktop app talks to: paths, settings and lazily built sub-services.

Importing this module is cheap on purpose (no SQLAlchemy, no torch): the window must appear
within about a second, so every sub-service is created on first use, and the GUI makes that
first use from a background thread.
"""

from __future__ import annotations

import importlib
import os
import platform
import sys
import threading
from pathlib import Path

from trapgui.config import AppPaths, Settings, default_paths, load_settings, save_settings
from trapgui.core.errors import TrapguiError
from trapgui.version import __version__

# attribute -> (module, class); the class is built as ``Class(services)``
_SUB_SERVICES = {
    "catalogue": ("trapgui.services.catalogue_service", "CatalogueService"),
    "processing": ("trapgui.services.processing_service", "ProcessingService"),
    "models": ("trapgui.services.models_service", "ModelsService"),
    "results": ("trapgui.services.results_service", "ResultsService"),
    "export": ("trapgui.services.export_service", "ExportService"),
    "remote": ("trapgui.services.remote_service", "RemoteService"),
    "traps": ("trapgui.services.trap_service", "TrapService"),
    "tracking": ("trapgui.services.tracking_service", "TrackingService"),
}


class ServiceUnavailable(TrapguiError):
    """A part of the app is not installed in this build."""


class Services:
    """Everything the GUI may call. Sub-services are thread-safe to create (one lock)."""

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

    def __getattr__(self, name: str):
        # only called for attributes not found normally: the lazy sub-services
        if name not in _SUB_SERVICES:
            raise AttributeError(name)
        with self._lock:
            if name not in self._built:
                module_name, class_name = _SUB_SERVICES[name]
                try:
                    module = importlib.import_module(module_name)
                except ModuleNotFoundError as exc:
                    if exc.name != module_name:
                        raise
                    raise ServiceUnavailable(
                        f"The {name} part of trapgui is not available in this build.") from exc
                self._built[name] = getattr(module, class_name)(self)
            return self._built[name]

    def available(self, name: str) -> bool:
        """Whether a sub-service's module exists (without importing it)."""
        import importlib.util

        module_name = _SUB_SERVICES[name][0]
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
