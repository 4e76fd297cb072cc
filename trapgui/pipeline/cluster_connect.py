"""Connecting to a Dask cluster: a running scheduler, a local cluster, or SLURM / PBS jobs.

``open_cluster(target)`` returns a :class:`ClusterConnection` (the client, the cluster object
when trapgui started it, the dashboard address); ``close()`` stops what trapgui started (the
local worker processes, the batch jobs) and leaves a scheduler it only connected to running.
Every failure is a :class:`~trapgui.pipeline.cluster_config.ClusterError` with a sentence.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from dataclasses import dataclass
from typing import Any

from trapgui.pipeline.cluster_config import (ClusterError, ClusterTarget, JobqueueSettings,
                                             jobqueue_kwargs)
from trapgui.pipeline.processor import describe_error

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 30.0


@dataclass
class ClusterConnection:
    client: Any  # distributed.Client
    target: ClusterTarget
    cluster: Any = None  # LocalCluster / SLURMCluster / PBSCluster that trapgui started
    owns_client: bool = True

    @property
    def address(self) -> str:
        return self.client.scheduler.address if self.client.scheduler else (
            self.target.address or "")

    @property
    def dashboard(self) -> str | None:
        """The dashboard's address, or None when the scheduler serves none. Without bokeh
        where the scheduler runs, its dashboard port only says "Dask needs bokeh": no use."""
        try:
            services = self.client.scheduler_info(n_workers=0).get("services", {})
            if "dashboard" not in services:
                return None
            if self.cluster is not None:  # the scheduler runs in this process
                has_bokeh = importlib.util.find_spec("bokeh") is not None
            else:
                has_bokeh = self.client.run_on_scheduler(_has_bokeh)
            return self.client.dashboard_link if has_bokeh else None
        except Exception:  # noqa: BLE001 - lost already, or a scheduler that refuses to run it
            return None

    def describe(self) -> dict:
        return {"kind": self.target.kind, "address": self.address, "dashboard": self.dashboard}

    def close(self) -> None:
        """Stop what trapgui started; a scheduler it connected to keeps running."""
        for thing in ((self.client if self.owns_client else None), self.cluster):
            if thing is None:
                continue
            try:
                thing.close()
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's outcome
                log.warning("Closing the Dask %s failed: %s", type(thing).__name__,
                            describe_error(exc))

    def __enter__(self) -> "ClusterConnection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _has_bokeh() -> bool:
    import importlib.util

    return importlib.util.find_spec("bokeh") is not None


def open_cluster(target: ClusterTarget, jobqueue: JobqueueSettings | None = None, *,
                 timeout_s: float = CONNECT_TIMEOUT_S) -> ClusterConnection:
    try:
        from distributed import Client
    except ImportError as exc:  # the `cluster` extra is not installed
        raise ClusterError("Processing on a cluster needs Dask (the packages dask, distributed "
                           "and dask-jobqueue), which are not installed.",
                           hint="Install trapgui's `cluster` extra.") from exc
    if target.kind == "address":
        try:
            client = Client(target.address, timeout=timeout_s, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ClusterError(f"Could not connect to the Dask scheduler at {target.address} "
                               f"({describe_error(exc)}).",
                               hint="Is it running? Start one with `dask scheduler`, and "
                               "workers with `dask worker ADDRESS`.") from exc
        return ClusterConnection(client, target)
    cluster = _start_cluster(target, jobqueue)
    try:
        client = Client(cluster, timeout=timeout_s, set_as_default=False)
    except BaseException as exc:
        cluster.close()
        if isinstance(exc, (OSError, TimeoutError)):
            raise ClusterError(f"Could not connect to {target.description} "
                               f"({describe_error(exc)}).") from exc
        raise
    return ClusterConnection(client, target, cluster)


def _start_cluster(target: ClusterTarget, jobqueue: JobqueueSettings | None):
    if target.kind == "local":
        from distributed import LocalCluster

        try:
            return LocalCluster(n_workers=target.workers,
                                threads_per_worker=target.threads_per_worker, processes=True,
                                host="127.0.0.1", dashboard_address="127.0.0.1:0")
        except Exception as exc:
            raise ClusterError(f"Could not start {target.description} "
                               f"({describe_error(exc)}).") from exc
    if target.kind not in ("slurm", "pbs"):
        raise ClusterError(f"Unknown kind of cluster: {target.kind}.")
    if jobqueue is None:
        raise ClusterError(f"A {target.kind.upper()} cluster needs its settings file.")
    try:
        import dask_jobqueue
    except ImportError as exc:
        raise ClusterError("Processing on SLURM or PBS needs dask-jobqueue, which is not "
                           "installed.", hint="Install trapgui's `cluster` extra.") from exc
    kind = dask_jobqueue.SLURMCluster if target.kind == "slurm" else dask_jobqueue.PBSCluster
    try:
        cluster = kind(**jobqueue_kwargs(jobqueue, target.kind, sys.executable))
    except Exception as exc:
        raise ClusterError(f"Could not set up {target.description} "
                           f"({describe_error(exc)}).") from exc
    try:
        _submit_jobs(cluster, jobqueue.jobs)
    except Exception as exc:
        _close_refused(cluster)
        raise ClusterError(f"Could not submit the {target.kind.upper()} jobs of the Dask "
                           f"workers ({_submission_error(exc)}).") from exc
    return cluster


def _submit_jobs(cluster, jobs: int) -> None:
    """What ``cluster.scale(jobs=N)`` does, waiting for the submissions: scale() submits in
    the background and only logs a refused job, so `sbatch: error: invalid partition` would
    never reach the user; here it is raised."""
    try:
        spec, new_spec, correct = (cluster.worker_spec, cluster.new_worker_spec,
                                   cluster._correct_state)
    except AttributeError:  # another dask-jobqueue: its own scale, unchecked
        cluster.scale(jobs=jobs)
        return
    while len(spec) < jobs:
        spec.update(new_spec())
    cluster.sync(correct)


def _close_refused(cluster) -> None:
    """Close a cluster whose jobs were refused (jobs never started cannot be closed)."""
    try:
        for name, job in list(getattr(cluster, "workers", {}).items()):
            if str(getattr(job, "status", "")).endswith("created"):
                cluster.workers.pop(name, None)
                cluster.worker_spec.pop(name, None)
                getattr(cluster, "_created", set()).discard(job)
    except Exception:  # noqa: BLE001 - best effort; close() reports the rest
        pass
    try:
        cluster.close()
    except Exception as exc:  # noqa: BLE001 - the refusal is what the user needs to read
        log.warning("Closing the refused Dask cluster failed: %s", describe_error(exc))


def _submission_error(exc: BaseException) -> str:
    """The scheduler's own words (`sbatch: error: ...`) rather than the whole command dump."""
    lines = [line.strip() for line in str(exc).splitlines()]
    said = [line for line in lines if ": error:" in line or line.lower().startswith("qsub:")]
    return "; ".join(said) if said else describe_error(exc)


def attach(client, target: ClusterTarget | None = None) -> ClusterConnection:
    """A connection around a client the caller made and keeps (tests, notebooks)."""
    address = client.scheduler.address if client.scheduler else None
    return ClusterConnection(client, target or ClusterTarget("address", address=address),
                             owns_client=False)


def probe_workers(client, *, timeout_s: float = 60.0, wait_for: int = 1,
                  cancelled=lambda: False) -> list[dict]:
    """What each worker has (``cluster_worker.worker_devices`` run on it: threads, GPUs torch
    can use), after waiting up to ``timeout_s`` for ``wait_for`` workers to join."""
    import time

    from trapgui.pipeline.cluster_worker import worker_devices

    deadline = time.monotonic() + timeout_s
    workers: dict = {}
    while time.monotonic() < deadline and not cancelled():
        workers = client.scheduler_info(n_workers=-1).get("workers", {})
        if len(workers) >= wait_for:
            break
        time.sleep(0.25)
    futures = {a: client.submit(worker_devices, workers=[a], allow_other_workers=False,
                                pure=False) for a in workers}
    out = []
    for address, fut in futures.items():
        info = workers[address]
        entry = {"address": address, "host": info.get("host", "?"),
                 "threads": int(info.get("nthreads", 0)),
                 "memory_bytes": int(info.get("memory_limit") or 0),
                 "gpu_resource": float(info.get("resources", {}).get("GPU", 0)),
                 "gpus": [], "messages": []}
        try:
            found = fut.result(timeout=max(1.0, deadline - time.monotonic() + 30))
            entry.update(gpus=found["gpus"], messages=found["messages"], host=found["host"])
        except Exception as exc:  # noqa: BLE001 - the worker is listed, with why it said nothing
            entry["messages"] = [f"it did not answer ({describe_error(exc)})"]
        out.append(entry)
    return out
