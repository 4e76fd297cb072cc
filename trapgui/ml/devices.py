"""Which devices this machine can run models on, and turning a setting into worker devices.

The probe says what it found and why a GPU is not used (driver, compute capability missing
from the installed torch wheel, a failing test kernel), so the engine falls back to the CPU
with a clear message at start instead of failing in the middle of a run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


@dataclass
class DeviceInfo:
    id: str  # "cuda:0", "mps", "cpu"
    kind: str  # "cuda" | "mps" | "cpu"
    name: str
    usable: bool
    reason: str | None = None  # why not usable
    capability: str | None = None  # "sm_86"
    total_mem: int | None = None  # bytes
    free_mem: int | None = None
    threads: int | None = None  # CPU only


@dataclass
class DeviceProbe:
    devices: list[DeviceInfo] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    arch_list: list[str] = field(default_factory=list)

    def usable(self, kind: str) -> list[DeviceInfo]:
        return [d for d in self.devices if d.kind == kind and d.usable]

    def get(self, device_id: str) -> DeviceInfo | None:
        return next((d for d in self.devices if d.id == device_id), None)

    def summary(self) -> str:
        lines = []
        for d in self.devices:
            extra = []
            if d.capability:
                extra.append(d.capability)
            if d.total_mem:
                extra.append(f"{(d.free_mem or 0) / 2**30:.1f}/{d.total_mem / 2**30:.1f} GiB free")
            state = "ok" if d.usable else f"not usable: {d.reason}"
            lines.append(f"{d.id}: {d.name} ({', '.join(extra)}) {state}".replace(" ()", ""))
        return "\n".join(lines + self.messages)


@dataclass
class DeviceChoice:
    device: torch.device
    label: str  # unique per worker: "cuda:0", "cpu", "cpu#2"
    name: str
    threads: int | None = None  # torch threads for a CPU worker
    # pipeline key -> the batch sizes its worker uses (``pipeline.batch_tuning.BatchPlan``)
    batch_plans: dict = field(default_factory=dict)


def cpu_threads() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def _cpu_name(threads: int) -> str:
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def arch_supported(capability: tuple[int, int], arch_list: list[str]) -> bool:
    """True if the wheel has a kernel image for this GPU: a cubin of the same major version and
    an equal or lower minor (sm_80 runs on sm_86), or PTX (compute_XY) at or below it."""
    major, minor = capability
    if not arch_list:  # unknown build: let the test kernel decide
        return True
    for arch in arch_list:
        kind, _, digits = arch.partition("_")
        digits = digits.rstrip("af")  # sm_90a, sm_100f
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def _probe_cuda(probe: DeviceProbe) -> None:
    try:
        available = torch.cuda.is_available()
        count = torch.cuda.device_count() if available else 0
    except Exception as exc:  # broken driver install
        probe.messages.append(f"CUDA could not be initialised ({exc}); using the CPU.")
        return
    if not available:
        if torch.version.cuda is None:
            probe.messages.append("This torch build has no CUDA support.")
        return
    try:
        probe.arch_list = list(torch.cuda.get_arch_list())
    except Exception:
        probe.arch_list = []
    for i in range(count):
        info = DeviceInfo(id=f"cuda:{i}", kind="cuda", name="CUDA device", usable=False)
        try:
            info.name = torch.cuda.get_device_name(i)
            cap = torch.cuda.get_device_capability(i)
            info.capability = f"sm_{cap[0]}{cap[1]}"
            if not arch_supported(cap, probe.arch_list):
                info.reason = (f"its compute capability {cap[0]}.{cap[1]} is not supported by "
                               f"the installed torch (built for {', '.join(probe.arch_list)})")
            else:
                info.free_mem, info.total_mem = torch.cuda.mem_get_info(i)
                # A tiny kernel catches "no kernel image is available" and driver mismatches now.
                x = torch.ones(8, device=info.id)
                if float((x + 1).sum().item()) != 16.0:
                    raise RuntimeError("a test computation gave a wrong result")
                info.usable = True
        except Exception as exc:
            info.reason = info.reason or f"a test computation failed ({exc})"
        if not info.usable:
            probe.messages.append(f"GPU {info.id} ({info.name}) is not used: {info.reason}.")
        probe.devices.append(info)


def probe_devices() -> DeviceProbe:
    probe = DeviceProbe()
    _probe_cuda(probe)
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        probe.devices.append(DeviceInfo(id="mps", kind="mps", name="Apple GPU (MPS)", usable=True))
    threads = cpu_threads()
    probe.devices.append(DeviceInfo(id="cpu", kind="cpu", name=_cpu_name(threads),
                                    usable=True, threads=threads))
    return probe


def _split(setting) -> list[str]:
    if setting is None:
        return ["auto"]
    if isinstance(setting, str):
        items = [s.strip() for s in setting.split(",") if s.strip()]
    else:
        items = [str(s).strip() for s in setting]
    return [s.lower() for s in items] or ["auto"]


def resolve_devices(setting="auto", probe: DeviceProbe | None = None) -> tuple[list[DeviceChoice], list[str]]:
    """Turn "auto" / "cpu" / "cuda" / "cuda:1" / "mps" / "cuda:0,cuda:1" / ["cpu", "cpu"] into
    worker devices. Returns (choices, messages); an unusable request falls back to the CPU with
    a message rather than failing."""
    probe = probe or probe_devices()
    messages: list[str] = []
    wanted: list[str] = []
    for item in _split(setting):
        if item == "auto":
            gpus = [d.id for d in probe.usable("cuda")] or [d.id for d in probe.usable("mps")]
            wanted.extend(gpus or ["cpu"])
        elif item == "cuda":
            gpus = [d.id for d in probe.usable("cuda")]
            if not gpus:
                messages.append("No usable CUDA GPU was found; using the CPU.")
            wanted.extend(gpus or ["cpu"])
        elif item == "gpu":
            wanted.extend([d.id for d in probe.usable("cuda")] or [d.id for d in probe.usable("mps")] or ["cpu"])
        else:
            if item.isdigit():
                item = f"cuda:{item}"
            info = probe.get(item)
            if item == "cpu" or (info is not None and info.usable):
                wanted.append(item)
            elif info is None:
                messages.append(f"Device '{item}' was not found on this computer; using the CPU.")
                wanted.append("cpu")
            else:
                messages.append(f"Device '{item}' cannot be used ({info.reason}); using the CPU.")
                wanted.append("cpu")
    # A GPU named twice still gets one worker; the CPU may be asked for several workers, which
    # then share the cores.
    seen: set[str] = set()
    unique = []
    for item in wanted:
        if item != "cpu" and item in seen:
            continue
        seen.add(item)
        unique.append(item)
    n_cpu = unique.count("cpu")
    per_worker = max(1, cpu_threads() // max(1, n_cpu)) if n_cpu else None
    choices, cpu_seen = [], 0
    for item in unique:
        info = probe.get(item)
        if item == "cpu":
            cpu_seen += 1
            label = "cpu" if cpu_seen == 1 else f"cpu#{cpu_seen}"
            choices.append(DeviceChoice(torch.device("cpu"), label, _cpu_name(per_worker),
                                        per_worker))
        else:
            choices.append(DeviceChoice(torch.device(item), item, info.name if info else item))
    return choices, messages
