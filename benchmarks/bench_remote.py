"""Remote-jobs throughput, measured (not asserted).

1. Worker images/s over loopback HTTP (the Antenna test server: claim, download, process,
   post) vs the local engine on a folder of the same images, same models and device.
   Goal: remote >= 90 % of local. Runs alternate (local, remote, local, remote...) and the
   median of each is compared, so machine noise hits both sides alike.
2. The download pool, 1 vs 8 threads, with an artificial 200 ms server delay per image:
   downloads alone, and the whole worker.

Models: the built-in detector and the published moth/non-moth ResNet-50 with random weights
(the real weights cannot be downloaded here; the compute is the same).

    python benchmarks/bench_remote.py [--images 8] [--side 1024] [--repeats 2]
"""

from __future__ import annotations

import argparse
import atexit
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.remote.antenna_test_server import AntennaTestServer  # noqa: E402

SHARED = REPO.parent / "shared" / "trap-images"


def load_images(n: int, side: int) -> dict[str, bytes]:
    from tests.image_files import downscaled_jpeg

    # The two DSLR photos are not of a sheet: the built-in detector refuses them (a failed
    # image with its reason), which would make the two sides' work differ.
    files = sorted(p for p in SHARED.rglob("*")
                   if p.suffix.lower() in (".jpg", ".jpeg") and "DSLR" not in p.parts)
    out = {}
    for i in range(n):
        src = files[i % len(files)]
        out[f"b{i:03d}"] = downscaled_jpeg(src, side)
    return out


def run_local(images, store, pipe, work: Path) -> float:
    from trapgui.db import open_database
    from trapgui.pipeline import Engine
    from trapgui.scan.indexer import scan_folder

    folder = work / f"local-{time.monotonic_ns()}"
    folder.mkdir()
    for key, data in images.items():
        (folder / f"{key}.jpg").write_bytes(data)
    db = open_database(folder / "catalogue.sqlite3")
    try:
        report = scan_folder(db, folder)
        engine = Engine(db, store, pipe.spec(classification_batch_size=64), devices="cpu")
        engine.enqueue_deployment(report.deployment_id)
        start = time.perf_counter()
        summary = engine.run()
        elapsed = time.perf_counter() - start
        assert summary.done == len(images), summary
    finally:
        db.close()
    return len(images) / elapsed


def run_remote(images, store, pipe, work: Path, *, threads: int = 8, delay: float = 0.0,
               batch_size: int = 4) -> float:
    from trapgui.db import open_database
    from trapgui.remote.client import AntennaClient
    from trapgui.remote.worker import RemoteWorker, WorkerConfig

    db = open_database(work / f"remote-{time.monotonic_ns()}.sqlite3")
    with AntennaTestServer(images) as server:
        server.add_job(1, pipe.slug, list(images))
        if delay:
            server.inject("delay", r"/images/", times=None, seconds=delay)
        client = AntennaClient(server.base_url, server.token)
        config = WorkerConfig(batch_size=batch_size, batch_timeout_s=0.5, download_threads=threads,
                              devices="cpu", exit_when_idle=True, poll_min_s=0.1, poll_max_s=0.5)
        worker = RemoteWorker(client, db, store, [pipe], work / "cache", config)
        start = time.perf_counter()
        summary = worker.run()
        elapsed = time.perf_counter() - start
        client.close()
        assert summary.done == len(images) and summary.failed == 0, summary
        assert all(len(a) == 1 for a in server.answers(1).values())
    db.close()
    return len(images) / elapsed


def download_only(images, threads: int, delay: float) -> float:
    from trapgui.remote.address_policy import AddressPolicy
    from trapgui.remote.downloader import ImageDownloader

    with AntennaTestServer(images) as server, tempfile.TemporaryDirectory() as tmp:
        server.inject("delay", r"/images/", times=None, seconds=delay)
        dl = ImageDownloader(threads=threads, policy=AddressPolicy.for_server(server.base_url))
        start = time.perf_counter()
        futures = [dl.submit(k, f"{server.root}/images/{k}.jpg", Path(tmp) / f"{k}.jpg")
                   for k in images]
        results = [f.result() for f in futures]
        elapsed = time.perf_counter() - start
        dl.shutdown()
        assert all(r.error is None for r in results)
    return len(images) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--side", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from trapgui.ml.registry import install_random_weights
    from trapgui.ml.store import ModelStore
    from trapgui.remote.pipelines import resolve_pipeline

    work = Path(tempfile.mkdtemp(prefix="bench-remote-"))
    atexit.register(shutil.rmtree, work, True)
    store = ModelStore(work / "models")
    install_random_weights(store, "moth_binary_resnet50_2024", seed=1)
    pipe = resolve_pipeline("moth_binary", store.model_catalogue, detector="builtin")
    images = load_images(args.images, args.side)
    print(f"{len(images)} images, longest side {args.side}, pipeline {pipe.slug} "
          f"({' + '.join(pipe.model_keys)}), CPU")

    local, remote = [], []
    for r in range(args.repeats):
        local.append(run_local(images, store, pipe, work))
        remote.append(run_remote(images, store, pipe, work))
        print(f"  run {r + 1}: local {local[-1]:.3f} images/s, remote {remote[-1]:.3f} images/s")
    lm, rm = statistics.median(local), statistics.median(remote)
    print(f"1. local engine   {lm:.3f} images/s (median of {len(local)})")
    print(f"   remote worker  {rm:.3f} images/s over loopback (median of {len(remote)})")
    print(f"   remote / local = {rm / lm * 100:.0f} %  (goal >= 90 %)")

    many = load_images(32, 256)
    one = download_only(many, 1, 0.2)
    eight = download_only(many, 8, 0.2)
    print(f"2. downloads only, 32 images, 200 ms server delay each: 1 thread {one:.2f} images/s, "
          f"8 threads {eight:.2f} images/s ({eight / one:.1f}x)")
    w1 = run_remote(images, store, pipe, work, threads=1, delay=0.2)
    w8 = run_remote(images, store, pipe, work, threads=8, delay=0.2)
    print(f"   whole worker with the delay: 1 thread {w1:.3f} images/s, 8 threads {w8:.3f} "
          f"images/s ({w8 / w1:.2f}x)")


if __name__ == "__main__":
    main()
