"""Device probe and the device setting: what was found, and a clear CPU fall-back."""

from __future__ import annotations

import torch

from trapgui.ml.devices import (DeviceInfo, DeviceProbe, arch_supported, probe_devices,
                                resolve_devices)


def _fake_gpu_probe() -> DeviceProbe:
    """A probe as found on a machine with one good and one too-old GPU (the probe's data, not
    its detection: this machine has no GPU)."""
    return DeviceProbe(devices=[
        DeviceInfo("cuda:0", "cuda", "NVIDIA RTX A5000", True, capability="sm_86",
                   total_mem=24 * 2**30, free_mem=20 * 2**30),
        DeviceInfo("cuda:1", "cuda", "Tesla K80", False, capability="sm_37",
                   reason="its compute capability 3.7 is not supported by the installed torch"),
        DeviceInfo("cpu", "cpu", "CPU (8 threads)", True, threads=8),
    ], arch_list=["sm_75", "sm_80", "sm_90"])


def test_capability_against_the_wheel_arch_list():
    arch = ["sm_50", "sm_60", "sm_70", "sm_75", "sm_80", "sm_86", "sm_90", "compute_90"]
    assert arch_supported((8, 6), arch)
    assert arch_supported((8, 9), arch)  # sm_86 cubin runs on 8.9
    assert arch_supported((12, 0), arch)  # PTX compute_90 JIT-compiles for newer GPUs
    assert not arch_supported((3, 7), arch)
    assert not arch_supported((12, 0), ["sm_80", "sm_90"])  # no PTX: no kernel image
    assert arch_supported((9, 0), ["sm_90a"])


def test_probe_on_this_machine_finds_a_usable_cpu():
    probe = probe_devices()
    cpu = probe.get("cpu")
    assert cpu is not None and cpu.usable and cpu.threads >= 1
    assert "cpu" in probe.summary()
    if not torch.cuda.is_available():
        assert not probe.usable("cuda")


def test_auto_takes_every_usable_gpu_and_explains_the_others():
    probe = _fake_gpu_probe()
    choices, messages = resolve_devices("auto", probe)
    assert [c.label for c in choices] == ["cuda:0"]
    choices, messages = resolve_devices("cuda:1", probe)
    assert [c.label for c in choices] == ["cpu"]
    assert "cuda:1" in messages[0] and "3.7" in messages[0] and "CPU" in messages[0]
    assert "not supported" in probe.summary()


def test_missing_device_falls_back_to_cpu_with_a_message():
    choices, messages = resolve_devices("cuda:3", probe_devices())
    assert [c.device.type for c in choices] == ["cpu"]
    assert messages and "cuda:3" in messages[0]


def test_several_cpu_workers_share_the_cores():
    probe = _fake_gpu_probe()
    choices, _ = resolve_devices(["cpu", "cpu"], probe)
    assert [c.label for c in choices] == ["cpu", "cpu#2"]
    assert all(c.threads and c.threads >= 1 for c in choices)
    choices, _ = resolve_devices("cuda:0,cuda:0,cpu", probe)
    assert [c.label for c in choices] == ["cuda:0", "cpu"]
    choices, _ = resolve_devices("mps", probe)
    assert [c.label for c in choices] == ["cpu"]
