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


GLIBC = sys.platform.startswith("linux") and os.path.exists("/lib/x86_64-linux-gnu/libc.so.6")

# 200 MiB in 100 KiB blocks (below glibc's mmap threshold: carved from the arena), written,
# then all freed but the last: free() keeps them resident (they are not the arena's top)
FRAGMENT = """
import ctypes, sys
from trapgui.core.allocator import release_free_memory
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = (ctypes.c_size_t,)
libc.free.argtypes = (ctypes.c_void_p,)
def anon_mb():
    for line in open("/proc/self/status"):
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024
blocks = [libc.malloc(100 * 1024) for _ in range(2048)]
for b in blocks:
    ctypes.memset(b, 1, 100 * 1024)
for b in blocks[:-1]:  # the last one stays: the freed ones are not the arena's top
    libc.free(b)
before = anon_mb()
done = release_free_memory()
print(done, before - anon_mb())
"""


def _fragment_and_release(trim_setting: str | None) -> tuple[bool, float]:
    env = {k: v for k, v in os.environ.items() if k != "TRAPGUI_MALLOC_TRIM"}
    if trim_setting is not None:
        env["TRAPGUI_MALLOC_TRIM"] = trim_setting
    out = subprocess.run([sys.executable, "-c", FRAGMENT], env=env, capture_output=True,
                         text=True, check=True).stdout.split()
    return out[0] == "True", float(out[1])


def test_free_memory_between_live_blocks_goes_back_to_the_system():
    if not GLIBC:
        assert _fragment_and_release(None)[0] is False
        return
    done, released_mb = _fragment_and_release(None)
    assert done and released_mb > 150, released_mb
    done, released_mb = _fragment_and_release("0")  # turned off: nothing given back
    assert not done and released_mb < 50, released_mb


def test_paced_release_waits_in_proportion_to_what_a_call_took(monkeypatch):
    from trapgui.core import allocator

    monkeypatch.setattr(allocator, "_paced_next", 0.0)
    monkeypatch.setattr(allocator, "PACED_SHARE", 1e-9)  # any call's time x 1e9: seconds
    assert allocator.release_free_memory_paced() is GLIBC
    assert allocator.release_free_memory_paced() is False
    assert allocator._paced_next > 0
