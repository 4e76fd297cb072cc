"""What every CLI command needs: resolved paths, settings, and a lazily opened database."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field

from trapgui.config import AppPaths, Settings, default_paths, load_settings


@dataclass
class CliContext:
    paths: AppPaths
    settings: Settings
    reset_db: bool = False
    _db: object | None = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> "CliContext":
        base = default_paths(config_dir=args.config_dir)
        settings = load_settings(base.settings_file)
        paths = default_paths(
            config_dir=args.config_dir,
            data_dir=args.data_dir,
            db_path=args.db,
            settings_data_dir=settings.data_dir,
            settings_db_path=settings.db_path,
        )
        return cls(paths=paths, settings=settings, reset_db=args.reset_db)

    @property
    def db(self):
        """The catalogue, opened on first use (commands like --help never touch it)."""
        if self._db is None:
            import sys

            from trapgui.db import open_database

            self._db = open_database(self.paths.db_path, move_aside_if_bad=self.reset_db)
            moved = getattr(self._db, "moved_aside_to", None)
            if moved:
                print(f"trapgui: the old database was moved aside to {moved}", file=sys.stderr)
        return self._db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
