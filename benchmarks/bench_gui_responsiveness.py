"""GUI responsiveness: launch-to-visible-window time, and the longest GUI-thread stall while
a run processes images with the main window showing live results.

    QT_QPA_PLATFORM=offscreen .venv/bin/python benchmarks/bench_gui_responsiveness.py \
        [--images 200] [--side 1024] [--max-seconds 600] [--launches 3] [--no-gc-freeze]

Goals (issue 4): window visible ≤ 1.5 s after launch with torch not yet imported; longest
stall of a 10 ms QTimer heartbeat during the run ≤ 50 ms. Uses copies of the shared trap
images (../shared/trap-images) downscaled to --side, built-in detector, the configured device.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IDLE_S = 8
WATCHDOG = None  # set to an open file to dump every thread's stack on a stall > 80 ms
SHARED = REPO.parent / "shared" / "trap-images"

# Runs in a fresh interpreter: the same steps as `trapgui` (CLI check, Qt, services, window).
_LAUNCH_CHILD = r"""
import sys, time, json
t_start = float(sys.argv[1])
from trapgui.cli.main import wants_gui
assert wants_gui([])
from PySide6.QtWidgets import QApplication
from trapgui.gui.theme import apply_theme
app = QApplication([])
from trapgui.gui.launch import prepare_application
prepare_application(app)
apply_theme(app)
from trapgui.services.app_services import Services
from trapgui.gui.main_window import MainWindow
services = Services.create()
window = MainWindow(services)
window.show()
window.start()
while not window.isVisible() or not window.windowHandle().isExposed():
    app.processEvents()
app.processEvents()
shown = time.time()
print(json.dumps({"visible_s": shown - t_start, "torch_imported": "torch" in sys.modules,
                  "sqlalchemy_imported": "sqlalchemy" in sys.modules}))
"""


def bench_launch(runs: int, env: dict) -> list[dict]:
    results = []
    for _ in range(runs):
        t0 = time.time()
        out = subprocess.run([sys.executable, "-c", _LAUNCH_CHILD, str(t0)], env=env, cwd=REPO,
                             capture_output=True, text=True, timeout=120)
        line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
        if not line:
            raise SystemExit(f"launch child failed:\n{out.stderr}")
        results.append(json.loads(line[-1]))
    return results


def make_images(folder: Path, count: int, side: int) -> None:
    sys.path.insert(0, str(REPO))
    from tests.image_files import save_downscaled

    sources = sorted(p for p in SHARED.rglob("*") if p.suffix.lower() in (".jpg", ".jpeg"))
    if not sources:
        raise SystemExit(f"no shared images under {SHARED}")
    folder.mkdir(parents=True)
    small = []
    for src in sources:
        small.append(save_downscaled(src, folder / f"src-{src.stem}.jpg", side))
    for i in range(count - len(small)):
        shutil.copy2(small[i % len(small)], folder / f"copy-{i:04d}-{small[i % len(small)].name}")


def bench_run(images: int, side: int, max_seconds: float, freeze: bool = True) -> dict:
    from PySide6.QtCore import QElapsedTimer, QTimer
    from PySide6.QtWidgets import QApplication

    from trapgui.gui.main_window import MainWindow
    from trapgui.gui.theme import apply_theme
    from trapgui.services.app_services import Services

    from trapgui.gui.launch import prepare_application

    if not freeze:  # for comparison: the window without taking long-lived objects out of GC
        import trapgui.gui.collector

        trapgui.gui.collector.freeze_long_lived_objects = lambda: None
    app = QApplication.instance() or QApplication([])
    prepare_application(app)  # what `trapgui` does at start
    apply_theme(app)
    root = Path(os.environ["TRAPGUI_DATA_DIR"]).parent
    trap = root / "bench-trap"
    make_images(trap, images, side)
    services = Services.create()
    s = services.settings
    s.detector, s.binary_classifier, s.species_classifier, s.order_classifier = (
        "builtin", None, None, None)
    window = MainWindow(services)
    window.show()
    window.start()

    gaps: list[float] = []
    clock = QElapsedTimer()
    beat = QTimer()
    beat.setInterval(10)
    state = {"last": None, "measuring": False, "commits": 0, "summary": None}
    idle: list[float] = []

    def tick():
        if WATCHDOG is not None and state["measuring"] is True:
            import faulthandler

            faulthandler.dump_traceback_later(0.08, file=WATCHDOG)
        now = clock.nsecsElapsed() / 1e6
        if state["last"] is not None:
            if state["measuring"] == "idle":
                idle.append(now - state["last"])
            elif state["measuring"]:
                gaps.append(now - state["last"])
        state["last"] = now

    beat.timeout.connect(tick)
    clock.start()
    beat.start()

    # full garbage collections hold the GIL: time every collection (any thread) while measuring
    import gc
    import threading

    collections: list[tuple[int, float, str]] = []
    gc_started = {}

    def gc_watch(phase, info):
        key = threading.get_ident()
        if phase == "start":
            gc_started[key] = time.perf_counter()
        elif key in gc_started and state["measuring"]:
            collections.append((info["generation"],
                                (time.perf_counter() - gc_started.pop(key)) * 1000,
                                threading.current_thread().name))

    gc.callbacks.append(gc_watch)

    def scanned(report):
        window.tree.select_deployment(report.deployment_id)
        # baseline: the same heartbeat with the window idle for a while (this machine's noise)
        QTimer.singleShot(2000, lambda: state.__setitem__("measuring", "idle"))
        QTimer.singleShot(2000 + IDLE_S * 1000, lambda: (state.__setitem__("measuring", False),
                                                          window.start_processing("trap")))

    def progress(_p):
        if state["summary"] is None:
            state["measuring"] = True  # from the first progress: models are loaded, run is on

    def finished(summary):
        state["summary"] = summary
        state["measuring"] = False
        QTimer.singleShot(1500, app.quit)  # let the last refreshes land (still measured? no)

    window.scanner.scanFinished.connect(scanned)
    window.controller.progress.connect(progress)
    window.controller.committed.connect(lambda ids, _d: state.__setitem__(
        "commits", state["commits"] + 1))
    window.controller.finished.connect(finished)
    QTimer.singleShot(int(max_seconds * 1000), window.controller.cancel)
    started = time.perf_counter()
    window.open_folders([str(trap)])
    app.exec()
    elapsed = time.perf_counter() - started
    from trapgui.gui.job_runner import job_runner

    job_runner().wait(30)
    summary = state["summary"]
    window.close()
    services.close()
    gc.callbacks.remove(gc_watch)
    stalls = [g - 10 for g in gaps]
    longest_gc = max(collections, key=lambda c: c[1], default=(None, 0.0, ""))
    idle_stalls = [g - 10 for g in idle]
    return {
        "idle_longest_stall_ms": round(max(idle_stalls), 1) if idle_stalls else None,
        "idle_p99_stall_ms": round(sorted(idle_stalls)[int(0.99 * (len(idle_stalls) - 1))], 1)
        if idle_stalls else None,
        "images": images, "side": side, "status": summary.status if summary else "none",
        "done": summary.done if summary else 0, "failed": summary.failed if summary else 0,
        "run_images_per_s": round(summary.images_per_s, 2) if summary else 0,
        "wall_s": round(elapsed, 1), "heartbeats": len(gaps), "commits_seen": state["commits"],
        "longest_stall_ms": round(max(stalls), 1) if stalls else None,
        "p99_stall_ms": round(sorted(stalls)[int(0.99 * (len(stalls) - 1))], 1) if stalls else None,
        "median_gap_ms": round(statistics.median(gaps), 1) if gaps else None,
        "stalls_over_50ms": sum(1 for g in stalls if g > 50),
        "gc_full_collections": sum(1 for c in collections if c[0] == 2),
        "gc_longest_ms": round(longest_gc[1], 1), "gc_longest_generation": longest_gc[0],
        "gc_longest_thread": longest_gc[2], "gc_frozen_objects": gc.get_freeze_count(),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--side", type=int, default=1024, help="longest side of the copies")
    parser.add_argument("--max-seconds", type=float, default=600,
                        help="cancel the run after this long (the stall figure stays valid)")
    parser.add_argument("--launches", type=int, default=3)
    parser.add_argument("--no-gc-freeze", action="store_true",
                        help="do not freeze long-lived objects out of the garbage collector "
                        "(to measure what the freeze saves)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    with tempfile.TemporaryDirectory(prefix="trapgui-bench-") as tmp:
        env = dict(os.environ, TRAPGUI_CONFIG_DIR=f"{tmp}/config", TRAPGUI_DATA_DIR=f"{tmp}/data",
                   PYTHONPATH=str(REPO))
        os.environ.update(TRAPGUI_CONFIG_DIR=env["TRAPGUI_CONFIG_DIR"],
                          TRAPGUI_DATA_DIR=env["TRAPGUI_DATA_DIR"])
        launches = bench_launch(args.launches, env)
        times = [r["visible_s"] for r in launches]
        print(f"launch to visible window: median {statistics.median(times):.2f} s, "
              f"min {min(times):.2f} s, max {max(times):.2f} s over {len(times)} launches "
              f"(goal <= 1.5 s); torch imported at show time: "
              f"{any(r['torch_imported'] for r in launches)}")
        run = bench_run(args.images, args.side, args.max_seconds, freeze=not args.no_gc_freeze)
        print(f"run over {run['images']} images ({run['side']} px): {run['status']}, "
              f"{run['done']} done, {run['failed']} failed, {run['run_images_per_s']} img/s, "
              f"{run['wall_s']} s wall")
        print(f"GUI heartbeat (10 ms timer) during the run: longest stall {run['longest_stall_ms']}"
              f" ms (goal <= 50 ms), p99 {run['p99_stall_ms']} ms, median gap "
              f"{run['median_gap_ms']} ms, {run['stalls_over_50ms']} stalls over 50 ms in "
              f"{run['heartbeats']} beats; {run['commits_seen']} live updates")
        print(f"same heartbeat, window idle for {IDLE_S} s before the run (machine noise): "
              f"longest stall {run['idle_longest_stall_ms']} ms, p99 {run['idle_p99_stall_ms']} ms")
        print(f"garbage collections while measuring: {run['gc_full_collections']} full, longest "
              f"{run['gc_longest_ms']} ms (generation {run['gc_longest_generation']}, thread "
              f"{run['gc_longest_thread']}); {run['gc_frozen_objects']:,} long-lived objects "
              "frozen out of the scans")
        print(json.dumps({"launch": launches, "run": run}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
