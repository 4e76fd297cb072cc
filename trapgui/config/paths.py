"""Platform-correct folders for user data (database, models) and settings.

Overrides, strongest first: explicit arguments (CLI flags), environment variables
(``TRAPGUI_DATA_DIR``, ``TRAPGUI_CONFIG_DIR``, ``TRAPGUI_DB``), the settings file, then the
platform default. Installers never write here, so uninstalling the app keeps user data.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import platformdirs

APP_NAME = "trapgui"


def _platform_data_dir() -> Path:
    # Linux ~/.local/share (or $XDG_DATA_HOME), Windows %LOCALAPPDATA%, macOS Application Support
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False))


def _platform_config_dir() -> Path:
    # Linux ~/.config (or $XDG_CONFIG_HOME), Windows %APPDATA% (roaming), macOS Application Support
    return Path(platformdirs.user_config_dir(APP_NAME, appauthor=False, roaming=True))


@dataclass(frozen=True)
class AppPaths:
    config_dir: Path
    data_dir: Path
    db_path: Path

    @property
    def settings_file(self) -> Path:
        return self.config_dir / "settings.json"

    @property
    def models_dir(self) -> Path:
        return self.data_dir / "models"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"


def default_paths(
    *,
    config_dir: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    db_path: str | os.PathLike | None = None,
    settings_data_dir: str | None = None,
    settings_db_path: str | None = None,
) -> AppPaths:
    """Resolve the three locations; nothing is created on disk here."""
    cfg = Path(config_dir or os.environ.get("TRAPGUI_CONFIG_DIR") or _platform_config_dir())
    data = Path(
        data_dir or os.environ.get("TRAPGUI_DATA_DIR") or settings_data_dir or _platform_data_dir()
    )
    db = Path(db_path or os.environ.get("TRAPGUI_DB") or settings_db_path or data / "trapgui.sqlite3")
    return AppPaths(config_dir=cfg.expanduser(), data_dir=data.expanduser(), db_path=db.expanduser())
