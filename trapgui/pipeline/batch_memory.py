"""What one batch costs in memory at its peak, and how much a batch may cost, per device.

Speed alone does not choose a batch size on a CPU: past a handful of crops (one 4K image for
a detector) the cores are saturated and larger batches differ by cache effects and noise,
while their working memory grows with the batch. Measured on 2 cores (MobileNet Faster R-CNN
on a 4096x2160 image; ResNet-50 at 128 px), peak memory above the resident size before the
call: detector 240 MB at 1 image, 330-385 at 2, 706 at 4; classifier 45 MB at 8 crops,
115-138 at 16, 160-170 at 32, 288 at 64. Chosen by speed alone, noise between equally fast
sizes moved a run's peak by up to 270 MB from one first use to the next (docs/engine.md,
"Measured figures (issue 11)", eighth stop). So the tuner measures each size's peak and
considers only the sizes under a cap: on a CPU ``CPU_BATCH_MB`` (which keeps a run with detector + two
classifiers under 1.5 GiB on 4K images), on a GPU a share of its memory (the caching
allocator keeps what a batch once took). Where the peak cannot be read (not Linux, MPS) the
sizes are chosen by speed alone.
"""

from __future__ import annotations

import torch

from trapgui.core import process_memory
from trapgui.core.allocator import release_free_memory

CPU_BATCH_MB = 256.0
GPU_BATCH_SHARE = 0.25  # of the device's memory, per batch


def batch_memory_cap_mb(device: torch.device) -> float | None:
    """The most memory one batch may take on ``device``, MB (None: no cap)."""
    if device.type == "cpu":
        return CPU_BATCH_MB
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return GPU_BATCH_SHARE * torch.cuda.get_device_properties(index).total_memory / 2**20
    return None


class PeakMemory:
    """``start()`` before a call and ``stop()`` after it: the call's peak memory above what was
    in use at ``start``, MB, or None where it cannot be measured on this device.

    On a CPU the process's high-water mark (other threads' allocations meanwhile count too,
    which errs towards smaller batches); the free pages of the C allocator go back to the
    system first, or a call reusing them would look free. On CUDA the caching allocator's
    own peak statistics for that device."""

    def __init__(self, device: torch.device):
        self.device = device
        self._base: float | None = None

    def start(self) -> None:
        self._base = None
        if self.device.type == "cpu":
            release_free_memory()
            base = process_memory.resident_mb()
            if base is not None and process_memory.reset_peak():
                self._base = base
        elif self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self._base = torch.cuda.memory_allocated(self.device) / 2**20

    def stop(self) -> float | None:
        if self._base is None:
            return None
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device) / 2**20
        else:
            peak = process_memory.peak_mb()
        return None if peak is None else max(0.0, peak - self._base)
