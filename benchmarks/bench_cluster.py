"""Processing on a Dask cluster against the in-process engine, on the same images, in one
process run (so the machine's load falls on both alike), and the client's write rate.

    .venv/bin/python benchmarks/bench_cluster.py [--images 16] [--workers 2] [--track]

- in-process: ``Engine(devices="cpu")``, torch on every core of this computer.
- cluster: ``ClusterEngine`` on a ``distributed.LocalCluster`` of ``--workers`` worker
  processes, 1 Dask thread and 1 torch thread each (``--cluster local:N`` as the CLI starts
  it). The cluster's start-up is timed apart; the run's wall time includes the models' load on
  the workers, as the in-process run's includes its own.
- models: the built-in detector, the darkness moth filter and the tiny 7-class species net of
  the tests (real torch models that need no weights): every detection stores its
  classifications with top-5 labels and its appearance embedding, as a real run does.
- the client's write rate: detections per second of the time spent in the one writer
  (``CatalogueSink.write``: the detections, their classifications and the jobs done, one
  transaction a batch), measured on the cluster run. That rate bounds how many detections/s
  any number of workers can deliver (docs/cluster.md).
Images: full-resolution copies of the shared trap photos (sequential, vermont, panama).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.cluster_models import TinyModels  # noqa: E402
from trapgui.db import open_database  # noqa: E402
from trapgui.ml.devices import cpu_threads  # noqa: E402
from trapgui.ml.store import ModelStore  # noqa: E402
from trapgui.pipeline import cluster_source  # noqa: E402
from trapgui.pipeline.cluster_engine import ClusterEngine  # noqa: E402
from trapgui.pipeline.engine import Engine  # noqa: E402
from trapgui.pipeline.spec import PipelineSpec  # noqa: E402
from trapgui.scan.indexer import scan_folder  # noqa: E402

SHARED = REPO.parent / "shared" / "trap-images"
SPEC = PipelineSpec(binary="darkness_binary", species="tiny_species", detection_batch_size=2,
                    classification_batch_size=64, loader_threads=2)


def folder_of(n: int, tmp: Path) -> Path:
    files = [f for d in ("sequential", "vermont", "panama")
             for f in sorted((SHARED / d).glob("*.jpg"))]
    out = tmp / "trap"
    out.mkdir()
    for i in range(n):
        src = files[i % len(files)]
        shutil.copy2(src, out / f"{i:03d}-{src.name}")
    return out


class TimedWrites:
    """Time spent in the cluster sink's writer (wraps ``ClusterSink.write``)."""

    def __init__(self):
        self.seconds = 0.0
        self.detections = 0
        self.classifications = 0
        self.batches = 0
        original = cluster_source.ClusterSink.write

        def write(sink, batch, results):
            start = time.perf_counter()
            written = original(sink, batch, results)
            self.seconds += time.perf_counter() - start
            self.detections += sum(len(p.result.detections) for p in results)
            self.classifications += sum(len(d.classifications) for p in results
                                        for d in p.result.detections)
            self.batches += 1
            return written

        cluster_source.ClusterSink.write = write


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--images", type=int, default=16)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--track", action="store_true", help="track the nights at the end of both")
    args = ap.parse_args()

    import distributed

    tmp = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    try:
        folder = folder_of(args.images, tmp)
        store = ModelStore(tmp / "models")
        print(f"{args.images} images ({folder}), CPU threads here: {cpu_threads()}, "
              f"cluster: {args.workers} worker processes x 1 thread")

        db = open_database(tmp / "here.sqlite3")
        dep = scan_folder(db, folder).deployment_id
        here = Engine(db, store, SPEC, devices="cpu", model_loader=TinyModels(),
                      track=args.track)
        here.enqueue_deployment(dep)
        start = time.perf_counter()
        local = here.run()
        local_s = time.perf_counter() - start
        db.close()

        timed = TimedWrites()
        start = time.perf_counter()
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1,
                                      processes=True, host="127.0.0.1",
                                      dashboard_address=None) as cluster, \
                distributed.Client(cluster, set_as_default=False) as client:
            client.wait_for_workers(args.workers, timeout=600)
            startup_s = time.perf_counter() - start
            db = open_database(tmp / "dask.sqlite3")
            dep = scan_folder(db, folder).deployment_id
            dask = ClusterEngine(db, store, SPEC, client, model_loader=TinyModels(),
                                 torch_threads=1)
            dask.track = args.track
            dask.enqueue_deployment(dep)
            start = time.perf_counter()
            remote = dask.run()
            cluster_s = time.perf_counter() - start
            db.close()

        assert local.done == remote.done == args.images, (local, remote)
        assert local.detections == remote.detections, (local.detections, remote.detections)
        print(f"in-process engine : {local_s:7.1f} s  {args.images / local_s:6.2f} images/s  "
              f"{local.detections} detections")
        print(f"cluster local:{args.workers}   : {cluster_s:7.1f} s  "
              f"{args.images / cluster_s:6.2f} images/s  {remote.detections} detections  "
              f"(+ {startup_s:.1f} s cluster start-up)")
        print(f"overhead ratio    : {cluster_s / local_s:.2f} (cluster / in-process run), "
              f"{(cluster_s + startup_s) / local_s:.2f} with the start-up")
        rate = timed.detections / timed.seconds if timed.seconds else float("nan")
        print(f"client writes     : {timed.detections} detections in {timed.batches} batches, "
              f"{timed.classifications} classifications, {timed.seconds:.2f} s in the writer = {rate:,.0f} detections/s "
              f"({timed.seconds / cluster_s:.1%} of the cluster run)")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
