"""Torch inference on a CPU that other work also uses: OpenMP's wait policy.

A researcher's laptop runs a browser and a mail client beside trapgui; a CI machine or a
cluster node runs other jobs. Torch's intra-op threads (OpenMP) spin at every barrier by
default; when another process holds a core, the spinning thread burns its time slice while
the thread it waits for is not running, and inference slows down far more than its share of
the CPU. trapgui sets ``OMP_WAIT_POLICY=PASSIVE`` (trapgui/__init__.py) unless the user set
it. This script measures both policies in fresh processes, on an idle CPU and with
``--busy`` competing busy-loop processes (default: one per core), for the classifier the
pipeline runs most (ResNet-50, a batch of 128-px crops) and the detector's backbone at its
input size.

    .venv/bin/python benchmarks/bench_thread_contention.py [--busy N] [--repeats 5]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import time

CHILD = r"""
import sys, time, torch, torchvision
torch.set_num_threads(int(sys.argv[1]))
work = sys.argv[2]
if work == "resnet50":
    model, x = torchvision.models.resnet50().eval(), torch.randn(8, 3, 128, 128)
else:
    model = torchvision.models.mobilenet_v3_large().features.eval()
    x = torch.randn(1, 3, 800, 1344)
with torch.inference_mode():
    model(x)
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(int(sys.argv[3])):
        model(x)
    print(time.perf_counter() - wall, time.process_time() - cpu)
"""


def spin(stop) -> None:
    while not stop.is_set():
        pass


POLICIES = {"default": {}, "PASSIVE": {"OMP_WAIT_POLICY": "PASSIVE"},
            "spin10k": {"GOMP_SPINCOUNT": "10000"}}


def measure(policy: str, threads: int, work: str, repeats: int) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(POLICIES[policy])
    out = subprocess.run([sys.executable, "-c", CHILD, str(threads), work, str(repeats)],
                         env=env, capture_output=True, text=True, check=True).stdout.split()
    return float(out[0]) / repeats, float(out[1]) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    ap.add_argument("--busy", type=int, default=cores, help="competing busy processes")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--policies", default="default,PASSIVE,spin10k",
                    help=f"comma-separated, of {', '.join(POLICIES)}")
    args = ap.parse_args()
    policies = args.policies.split(",")
    print(f"{cores} cores; load average at start {os.getloadavg()[0]:.2f}; torch threads {cores}")
    for work in ("resnet50", "mobilenet"):
        for busy in (0, args.busy):
            stop = mp.Event()
            hogs = [mp.Process(target=spin, args=(stop,), daemon=True) for _ in range(busy)]
            for h in hogs:
                h.start()
            try:
                time.sleep(0.5 if busy else 0)
                row: dict[str, list[tuple[float, float]]] = {p: [] for p in policies}
                for policy in policies + policies[::-1]:  # there and back: drift cancels
                    row[policy].append(measure(policy, cores, work, args.repeats))
            finally:
                stop.set()
                for h in hogs:
                    h.join()
            label = "resnet50 batch 8 x 128 px" if work == "resnet50" else "mobilenet_v3 800x1344"
            mean = {p: (sum(w for w, _ in v) / len(v), sum(c for _, c in v) / len(v))
                    for p, v in row.items()}
            base = mean[policies[0]][0]
            print(f"{label}, {busy} busy processes, per forward: " + "; ".join(
                f"{p} {w * 1000:.0f} ms (cpu {c * 1000:.0f} ms, {base / w:.2f}x)"
                for p, (w, c) in mean.items()))


if __name__ == "__main__":
    main()
