"""The `trapgui` command leaves quickly after a headless command that loaded torch, with its
output and exit status intact (os._exit skips the interpreter's teardown)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _run(code: str, tmp_path) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(REPO), TRAPGUI_DATA_DIR=str(tmp_path / "data"),
               TRAPGUI_CONFIG_DIR=str(tmp_path / "config"))
    env.pop("TRAPGUI_DB", None)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, timeout=300, cwd=tmp_path)


def test_output_and_status_survive_the_fast_exit(tmp_path):
    """A command that imports torch and fails: its message and status 2 (usage) still come
    out, and so does text printed just before leaving (flushed, not lost in a buffer)."""
    code = ("import sys, torch; sys.argv = ['trapgui', 'process', 'no-such-folder'];"
            "print('before', end='');"
            "from trapgui.app import entry; entry()")
    done = _run(code, tmp_path)
    assert done.stdout.startswith("before"), done.stdout
    assert done.returncode != 0 and "no-such-folder" in (done.stdout + done.stderr)


def test_a_command_without_torch_exits_normally(tmp_path):
    code = ("import sys, atexit; atexit.register(lambda: print('teardown ran'));"
            "sys.argv = ['trapgui', 'models', 'list'];"
            "from trapgui.app import entry; entry()")
    done = _run(code, tmp_path)
    assert done.returncode == 0 and "teardown ran" in done.stdout


def test_after_torch_the_teardown_is_skipped(tmp_path):
    code = ("import sys, atexit, torch; atexit.register(lambda: print('teardown ran'));"
            "sys.argv = ['trapgui', 'models', 'list'];"
            "from trapgui.app import entry; entry()")
    done = _run(code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert "teardown ran" not in done.stdout and done.stdout.strip()
