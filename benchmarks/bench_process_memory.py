"""Peak resident memory and wall time of `trapgui process` as a user runs it, per allocator setting.

Same set-up as bench_pipeline_vs_model.py (realistic benchmark weights of MobileNet Faster
R-CNN 2023 + moth/non-moth ResNet-50 + Quebec-Vermont timm ResNet-50, shipped settings,
--images copies of the 4096x2160 trap images, batch sizes measured by a first run). Then
`trapgui process FOLDER --requeue` in a new process once per variant and round, alternating,
with VmRSS (and its anonymous / file-backed split) sampled every 0.1 s. The set-up runs in a
child process, so that this one never imports torch: a second process mapping the same torch
libraries would share their pages, which the kernel then keeps resident for both (see
core/library_pages.py). A variant is a comma-separated list of environment settings
for that process (glibc malloc tunables, say); "" is the shipped behaviour.

    .venv/bin/python benchmarks/bench_process_memory.py [--weights DIR] [--images 12]
        [--rounds 2] [VARIANT ...]
    .venv/bin/python benchmarks/bench_process_memory.py "" MALLOC_ARENA_MAX=1
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_weights import app_env, copy_trap, load_average, trapgui_process  # noqa: E402

DEFAULT_WEIGHTS = Path(__file__).resolve().parent.parent.parent / "bench-weights"


def rss_mb(pid: int) -> tuple[int, int, int] | None:
    """(VmRSS, RssAnon, RssFile) of a process in MB, or None once it has gone."""
    try:
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return tuple(int(fields[k].split()[0]) // 1024 for k in ("VmRSS", "RssAnon", "RssFile"))
    except (OSError, KeyError, ValueError):
        return None


def set_up_in_child(root: Path, weights: str) -> None:
    code = ("import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]); "
            "from bench_weights import set_up_app; set_up_app(Path(sys.argv[2]), sys.argv[3])")
    subprocess.run([sys.executable, "-c", code, str(Path(__file__).resolve().parent), str(root),
                    weights], env=app_env(root), check=True)


def one_run(root: Path, variant: str) -> tuple[float, tuple[int, int, int], list[tuple[float, int]]]:
    """(wall seconds, (peak MB, its anonymous MB, its file MB), samples) of one
    `trapgui process --requeue` with ``variant``."""
    env = app_env(root)
    for setting in filter(None, variant.split(",")):
        name, value = setting.split("=", 1)
        env[name] = value
    cmd = [sys.executable, "-m", "trapgui", "process", str(root / "trap"), "--quiet", "--requeue"]
    started = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    samples: list[tuple[float, int]] = []
    peak = (0, 0, 0)

    def sample() -> None:
        nonlocal peak
        while proc.poll() is None:
            value = rss_mb(proc.pid)
            if value is not None:
                samples.append((time.perf_counter() - started, value[0]))
                peak = max(peak, value)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample)
    sampler.start()
    _, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"trapgui process failed ({proc.returncode}): {err.decode()[-2000:]}")
    return time.perf_counter() - started, peak, samples


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--weights", default=str(DEFAULT_WEIGHTS))
    ap.add_argument("--images", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("variants", nargs="*", default=[""])
    args = ap.parse_args()
    root = Path(tempfile.mkdtemp(prefix="trapgui-bench-"))
    try:
        print(f"load average at start: {load_average()}")
        set_up_in_child(root, args.weights)
        copy_trap(root / "trap", args.images)
        first, _ = trapgui_process(root, root / "trap")
        sizes = json.loads((root / "data" / "batch_sizes.json").read_text())["entries"]
        chosen = ", ".join(f"{key.split('|')[2]} {entry['batch_size']}"
                           for key, entry in sorted(sizes.items()))
        print(f"first use (measures the batch sizes): {first:.1f} s; batch sizes: {chosen}")
        results: dict[str, list[tuple[float, int]]] = {v: [] for v in args.variants}
        for r in range(args.rounds):
            for variant in args.variants:
                wall, peak, samples = one_run(root, variant)
                results[variant].append((wall, peak[0]))
                steady = sorted(v for t, v in samples if t > wall / 4)
                print(f"round {r + 1} {variant or 'shipped'}: wall {wall:.1f} s, peak {peak[0]} MB "
                      f"({peak[1]} anonymous, {peak[2]} file-backed), "
                      f"median after the first quarter {steady[len(steady) // 2]} MB  "
                      f"[load {load_average()}]", flush=True)
        for variant, rows in results.items():
            print(f"{variant or 'shipped'}: wall {min(w for w, _ in rows):.1f}-"
                  f"{max(w for w, _ in rows):.1f} s, peak {min(p for _, p in rows)}-"
                  f"{max(p for _, p in rows)} MB over {len(rows)} rounds")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
