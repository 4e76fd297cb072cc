"""Processing on a Dask cluster, for the GUI and the CLI: which cluster the settings choose,
testing the connection (workers, threads, memory, GPUs, dashboard), and the engine of a
cluster run. Plain values out (``ClusterInfo``); Dask and torch are imported only when used.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from trapgui.core.errors import TrapguiError, UserInputError


@dataclass(frozen=True)
class ClusterWorkerInfo:
    address: str
    host: str
    threads: int
    memory_bytes: int  # the worker's memory limit (0: none set)
    gpus: tuple[str, ...]  # what torch can use there: "cuda:0 (NVIDIA A100-SXM4-80GB)"
    gpu_resource: float  # the worker's "GPU" resource (what batches are routed by)
    messages: tuple[str, ...] = ()  # why a GPU there is not used, or why it did not answer


@dataclass(frozen=True)
class ClusterInfo:
    """The answer of Test connection. ``ok`` False: ``message`` says why in one sentence."""

    ok: bool
    message: str
    mode: str = ""
    address: str = ""
    dashboard: str | None = None
    workers: tuple[ClusterWorkerInfo, ...] = ()

    @property
    def threads(self) -> int:
        return sum(w.threads for w in self.workers)

    @property
    def memory_bytes(self) -> int:
        return sum(w.memory_bytes for w in self.workers)

    @property
    def gpus(self) -> int:
        return sum(len(w.gpus) for w in self.workers)


@dataclass(frozen=True)
class ClusterChoice:
    """Where to process, resolved from the settings (or the command line)."""

    mode: str  # address | local | slurm | pbs
    value: str  # what --cluster takes: the address, local:N, slurm, pbs
    config_file: Path | None = None  # slurm / pbs settings


def choice_from_settings(settings, config_dir: Path) -> ClusterChoice | None:
    """The cluster the settings choose, or None for "process on this computer"."""
    mode = settings.cluster_mode
    if mode == "off":
        return None
    if mode == "address":
        if not settings.cluster_address.strip():
            raise UserInputError("Processing on a cluster needs the address of its Dask "
                                 "scheduler (tcp://host:8786).",
                                 hint="Set it in Settings ▸ Process on a cluster.")
        return ClusterChoice(mode, settings.cluster_address.strip())
    if mode == "local":
        return ClusterChoice(mode, f"local:{settings.cluster_local_workers}")
    return ClusterChoice(mode, mode, config_file(settings, config_dir))


def config_file(settings, config_dir: Path) -> Path:
    from trapgui.pipeline.cluster_config import default_config_file

    return (Path(settings.cluster_config_file).expanduser() if settings.cluster_config_file
            else default_config_file(config_dir))


def resolve(value: str, config: Path | None, *, write_example: bool = False):
    """(ClusterTarget, JobqueueSettings or None) for ``--cluster VALUE``; raises
    UserInputError with a sentence."""
    from trapgui.pipeline.cluster_config import load_jobqueue_settings, parse_cluster

    target = parse_cluster(value)
    jobqueue = None
    if target.kind in ("slurm", "pbs"):
        if config is None:
            raise UserInputError(f"A {target.kind.upper()} cluster needs its settings file "
                                 "(--cluster-config FILE).")
        jobqueue = load_jobqueue_settings(config, target.kind, write_example=write_example)
    return target, jobqueue


def make_engine(db, store, spec, value: str, config: Path | None = None, *,
                worker_device: str = "auto", write_example: bool = False, tracking=None):
    """The ``ClusterEngine`` of a run on ``--cluster VALUE`` (models from ``store``'s
    folder, which the workers must see at the same path)."""
    from trapgui.pipeline.cluster_engine import ClusterEngine

    target, jobqueue = resolve(value, config, write_example=write_example)
    threads = None
    if target.kind == "local":  # share this computer's cores between its workers
        from trapgui.ml.devices import cpu_threads

        threads = max(1, cpu_threads() // target.workers)
    return ClusterEngine(db, store, spec, target, jobqueue=jobqueue, worker_device=worker_device,
                         torch_threads=threads, tracking=tracking)


def test_cluster(value: str, config: Path | None = None, *, timeout_s: float = 60.0,
                 cancelled: Callable[[], bool] = lambda: False) -> ClusterInfo:
    """Connect (or start the cluster: local processes, one batch job), wait up to
    ``timeout_s`` for a worker, ask every worker what it has, and stop what was started.
    Never raises for a cluster problem: ``ClusterInfo.ok`` and ``message`` say what happened.
    Blocks for seconds to minutes: call it from a background thread."""
    import dataclasses

    from trapgui.pipeline.cluster_connect import open_cluster, probe_workers

    try:
        target, jobqueue = resolve(value, config)
        if jobqueue is not None:  # a test needs one worker, not the whole run's jobs
            jobqueue = dataclasses.replace(jobqueue, jobs=1)
        connection = open_cluster(target, jobqueue)
    except TrapguiError as exc:
        return ClusterInfo(False, str(exc), mode=value)
    with connection:
        try:
            found = probe_workers(connection.client, timeout_s=timeout_s, cancelled=cancelled)
            dashboard = connection.dashboard
            address = connection.address
        except Exception as exc:  # noqa: BLE001 - a lost scheduler, said in a sentence
            return ClusterInfo(False, f"The Dask scheduler stopped answering ({exc}).",
                               mode=target.kind, address=connection.address)
    workers = tuple(ClusterWorkerInfo(
        w["address"], w["host"], w["threads"], w["memory_bytes"], tuple(w["gpus"]),
        w["gpu_resource"], tuple(w["messages"])) for w in found)
    info = ClusterInfo(True, "", target.kind, address, dashboard, workers)
    return dataclasses.replace(info, ok=bool(workers), message=_summary(info, timeout_s))


def _summary(info: ClusterInfo, timeout_s: float) -> str:
    if not info.workers:
        return (f"Connected to the Dask scheduler at {info.address}, but no worker joined "
                f"within {timeout_s:.0f} s" + (" (the batch job may still be waiting in the "
                                               "queue)." if info.mode in ("slurm", "pbs")
                                               else "."))
    n = len(info.workers)
    gib = info.memory_bytes / 2**30
    gpus = f"{info.gpus} GPU{'s' if info.gpus != 1 else ''}" if info.gpus else "no GPU"
    return (f"{n} worker{'s' if n != 1 else ''}, {info.threads} thread"
            f"{'s' if info.threads != 1 else ''}, {gib:.1f} GiB, {gpus}.")
