"""Where a cluster run goes (``--cluster``) and the settings file of SLURM / PBS clusters.

``--cluster`` takes the address of a running Dask scheduler (``tcp://host:8786``), ``local:N``
(a ``distributed.LocalCluster`` of N worker processes on this computer), or ``slurm`` / ``pbs``
(workers started as batch jobs by ``dask-jobqueue``, with the settings of a TOML file: queue,
cores, memory, GPUs, walltime, job count). Pure Python: nothing here imports Dask.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from trapgui.core.errors import TrapguiError, UserInputError

JOBQUEUE_KINDS = ("slurm", "pbs")
CONFIG_FILE_NAME = "cluster.toml"


class ClusterError(TrapguiError):
    """The Dask cluster cannot be reached, lost, or cannot run the models."""

    exit_code = 6


@dataclass(frozen=True)
class ClusterTarget:
    kind: str  # address | local | slurm | pbs
    address: str | None = None  # kind "address": the scheduler
    workers: int = 2  # kind "local": worker processes
    threads_per_worker: int = 1  # kind "local"

    @property
    def description(self) -> str:
        if self.kind == "address":
            return f"the Dask scheduler at {self.address}"
        if self.kind == "local":
            return (f"a local Dask cluster of {self.workers} worker process"
                    f"{'es' if self.workers != 1 else ''}")
        return f"a {self.kind.upper()} cluster (dask-jobqueue)"


_ADDRESS = re.compile(r"^(?:(tcp|tls|ucx|inproc)://)?([\w.\-\[\]:]+?)(?::(\d+))?$")


def parse_cluster(value: str) -> ClusterTarget:
    """``--cluster`` (or the Settings) as a target; raises UserInputError with a sentence."""
    text = (value or "").strip()
    low = text.lower()
    if low in JOBQUEUE_KINDS:
        return ClusterTarget(low)
    if low == "local" or low.startswith("local:"):
        count = low.partition(":")[2] or str(max(1, os.cpu_count() or 1))
        if not count.isdigit() or int(count) < 1:
            raise UserInputError(f"'{value}' is not a local cluster: write local:N with N the "
                                 "number of worker processes (local:2).")
        return ClusterTarget("local", workers=int(count))
    match = _ADDRESS.match(text)
    if not text or not match or (match.group(1) is None and match.group(3) is None):
        raise UserInputError(
            f"'{value}' is not a cluster: give the address of a Dask scheduler "
            "(tcp://host:8786), local:N, slurm or pbs.")
    scheme = match.group(1) or "tcp"
    rest = text.split("://", 1)[-1]
    return ClusterTarget("address", address=f"{scheme}://{rest}")


@dataclass(frozen=True)
class JobqueueSettings:
    """One batch job = ``processes`` Dask workers sharing ``cores`` cores and ``memory``.
    ``gpus`` per job is 0 or 1 (one GPU per Dask worker: ask for more jobs, not more GPUs
    per job)."""

    queue: str | None = None
    account: str | None = None
    cores: int = 4
    processes: int = 1
    memory: str = "16GB"
    gpus: int = 0
    walltime: str = "04:00:00"
    jobs: int = 2
    python: str | None = None  # the workers' Python (default: this one)
    interface: str | None = None  # network interface of the scheduler and workers (ib0)
    local_directory: str | None = None  # workers' scratch folder
    log_directory: str | None = None  # batch jobs' stdout/stderr
    job_extra_directives: list[str] = field(default_factory=list)  # "--constraint=a100"
    job_script_prologue: list[str] = field(default_factory=list)  # "module load cuda"

    def problems(self) -> list[str]:
        out = []
        for name in ("cores", "processes", "jobs"):
            if getattr(self, name) < 1:
                out.append(f"{name} must be at least 1")
        if self.gpus not in (0, 1):
            out.append("gpus must be 0 or 1 per job (trapgui uses one GPU per Dask worker: "
                       "ask for more jobs rather than more GPUs per job)")
        if self.gpus and self.processes != 1:
            out.append("with gpus = 1, processes must be 1 (one Dask worker per GPU)")
        if self.processes > self.cores:
            out.append("processes cannot be more than cores")
        size = memory_bytes(self.memory)
        if size is None:
            out.append(f"memory '{self.memory}' is not a size such as 16GB")
        elif size / max(1, self.processes) < MIN_WORKER_MEMORY:
            # Dask pauses a worker above 80 % of its limit; torch and the models alone take
            # about 1 GB, so a smaller worker would sit paused and never take a batch
            out.append(f"memory '{self.memory}' leaves less than 3GB per worker (torch and the "
                       "models need about 1-2GB, images and crops the rest)")
        return out


MIN_WORKER_MEMORY = 3 * 10**9
_UNITS = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


def memory_bytes(text: str) -> int | None:
    """``16GB``, ``16 GiB``, ``800M`` as bytes (Dask's and the schedulers' spelling)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmgt]i?)?b?\s*", (text or "").lower())
    if not match:
        return None
    return int(float(match.group(1)) * _UNITS[match.group(2) or ""])


EXAMPLE = """\
# trapgui: workers started as SLURM or PBS batch jobs (dask-jobqueue).
# `trapgui process FOLDER --cluster slurm` reads [slurm], `--cluster pbs` reads [pbs].
# The images, and the models folder, must be on storage the compute nodes share with this
# computer, at the same paths.

[slurm]
queue = "gpu"            # partition
# account = "mylab"
cores = 4                # per job; one Dask worker per job uses them
processes = 1
memory = "16GB"          # per job
gpus = 1                 # 0 or 1 per job: one GPU per Dask worker
walltime = "04:00:00"
jobs = 4                 # how many jobs (= workers) to start
# python = "/shared/trapgui/.venv/bin/python"
# interface = "ib0"
# job_extra_directives = ["--constraint=a100"]
# job_script_prologue = ["module load cuda"]

[pbs]
queue = "workq"
cores = 4
memory = "16GB"
gpus = 0
walltime = "04:00:00"
jobs = 4
"""


def default_config_file(config_dir: Path) -> Path:
    return Path(config_dir) / CONFIG_FILE_NAME


def load_jobqueue_settings(path: Path, kind: str, *, write_example: bool = False) -> JobqueueSettings:
    """The ``[slurm]`` or ``[pbs]`` table of ``path`` (keys at the top level also count).
    A missing file is an error (``write_example`` puts a commented example there first);
    unknown keys are errors too: a typo must not silently give a job the wrong size."""
    path = Path(path)
    if not path.is_file():
        hint = "Write one (docs/cluster.md shows every setting) or pass --cluster-config FILE."
        if write_example:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(EXAMPLE, encoding="utf-8")
                hint = "An example was written there; edit it (queue, cores, memory) and run again."
            except OSError:
                pass
        raise UserInputError(f"The {kind.upper()} cluster settings file {path} does not exist.",
                             hint=hint)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserInputError(f"The cluster settings file {path} cannot be read ({exc}).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise UserInputError(f"The cluster settings file {path} is not valid TOML ({exc}).") from exc
    table = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    table.update(raw.get(kind, {}) if isinstance(raw.get(kind), dict) else {})
    known = {f.name: f for f in fields(JobqueueSettings)}
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise UserInputError(f"The cluster settings file {path} has unknown settings: "
                             f"{', '.join(unknown)}.", hint="docs/cluster.md lists them.")
    defaults = JobqueueSettings()
    values = {}
    for key, value in table.items():
        default = getattr(defaults, key)
        ok = (isinstance(value, list) and all(isinstance(v, str) for v in value)
              if isinstance(default, list) else
              isinstance(value, int) and not isinstance(value, bool)
              if isinstance(default, int) else isinstance(value, str))
        if not ok:
            raise UserInputError(f"In {path}, {key} = {value!r} has the wrong type (expected "
                                 f"{'a list of texts' if isinstance(default, list) else type(default or '').__name__}).")
        values[key] = value
    settings = JobqueueSettings(**values)
    problems = settings.problems()
    if problems:
        raise UserInputError(f"The [{kind}] settings in {path} cannot be used: "
                             f"{'; '.join(problems)}.")
    return settings


def jobqueue_kwargs(settings: JobqueueSettings, kind: str, python: str) -> dict:
    """Keyword arguments of ``dask_jobqueue.SLURMCluster`` / ``PBSCluster``."""
    directives = list(settings.job_extra_directives)
    resource = {}
    if settings.gpus and kind == "slurm":
        directives.append("--gres=gpu:1")
    elif settings.gpus:  # PBS Pro: the GPU is part of the chunk's resources
        memory = re.sub(r"i?b?$", "", settings.memory.replace(" ", "").lower()) + "b"
        resource["resource_spec"] = f"select=1:ncpus={settings.cores}:ngpus=1:mem={memory}"
    kwargs = dict(
        cores=settings.cores, processes=settings.processes, memory=settings.memory,
        walltime=settings.walltime, python=settings.python or python,
        job_extra_directives=directives, job_script_prologue=list(settings.job_script_prologue),
        job_name="trapgui-dask",
        # workers advertise their GPU, so batches go to them one GPU each
        worker_extra_args=["--resources", f"GPU={settings.gpus}"] if settings.gpus else [],
        **resource,
    )
    for name in ("queue", "account", "interface", "local_directory", "log_directory"):
        if getattr(settings, name):
            kwargs[name] = getattr(settings, name)
    return kwargs
