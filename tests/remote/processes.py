"""`trapgui worker` as a separate process (another machine, or a process to kill)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def worker_process(server, home: Path, models_dir: Path, *extra: str) -> subprocess.Popen:
    """A worker with its own data folder (database, cache) sharing the test model store."""
    (home / "data").mkdir(parents=True)
    os.symlink(models_dir, home / "data" / "models")
    env = dict(os.environ, TRAPGUI_DATA_DIR=str(home / "data"),
               TRAPGUI_CONFIG_DIR=str(home / "config"), TRAPGUI_REMOTE_TOKEN=server.token,
               PYTHONPATH=str(REPO))
    env.pop("TRAPGUI_DB", None)
    cmd = [sys.executable, "-m", "trapgui", "worker", "--base-url", server.base_url,
           "--pipeline", "moth_binary", "--detector", "builtin", "--device", "cpu",
           "--batch-size", "1", "--batch-timeout", "0.1", *extra]
    return subprocess.Popen(cmd, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def database_path(home: Path) -> Path:
    return home / "data" / "trapgui.sqlite3"
