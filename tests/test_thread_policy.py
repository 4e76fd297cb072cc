"""trapgui asks torch's OpenMP threads to wait passively (see trapgui/__init__.py), unless the
user chose a policy: checked in fresh interpreters, where the variable is read."""

import os
import subprocess
import sys

PRINT = "import trapgui, os; print(os.environ['OMP_WAIT_POLICY'])"


def _policy(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if env_value is not None:
        env["OMP_WAIT_POLICY"] = env_value
    return subprocess.run([sys.executable, "-c", PRINT], env=env, capture_output=True, text=True,
                          check=True).stdout.strip()


def test_passive_by_default_and_the_users_choice_wins():
    assert _policy(None) == "PASSIVE"
    assert _policy("ACTIVE") == "ACTIVE"


def test_set_before_torch_is_imported():
    # the variable is read once, when torch loads OpenMP: trapgui's package must come first
    code = "import sys, trapgui; assert 'torch' not in sys.modules, 'trapgui imports torch'"
    subprocess.run([sys.executable, "-c", code], check=True, env=dict(os.environ))


def test_malloc_arenas_limited_on_glibc_and_a_users_setting_wins(monkeypatch):
    from trapgui.core.allocator import limit_malloc_arenas

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    if sys.platform.startswith("linux") and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6"):
        assert limit_malloc_arenas(2) is True
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False
