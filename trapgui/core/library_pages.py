"""The pages of GPU libraries a CPU-only run has in memory, given back (Linux).

PyPI's torch is the CUDA build: importing it maps libtorch_cuda, cuBLAS, NVRTC, nvJitLink and
the other CUDA libraries, and their start-up code and the pages around it (the kernel maps
already-cached neighbours of each page touched) stay resident: 116 MB here right after the
imports, 87 MB of a `trapgui process` run's peak (292 -> 205 MB file-backed, the same in every
round of bench_process_memory.py), for code a CPU run never executes. Called once the models
are loaded, ``madvise(MADV_PAGEOUT)`` asks the kernel to reclaim them (27 ms). It never loses
data: a clean page is dropped and read again from the file if it is ever needed (a later GPU run in
the same process just faults it back in); a page the process wrote to is kept (or swapped).
Pages another process maps too (a second trapgui, a benchmark's parent that imported torch)
stay resident. Kernels before 5.4 refuse the advice, and nothing changes.

``TRAPGUI_PAGE_OUT_GPU_LIBRARIES=0`` turns it off (to measure it).
"""

from __future__ import annotations

import ctypes
import os
import re

from trapgui.core.allocator import libc

MADV_PAGEOUT = 21  # linux/mman.h, 5.4+

# the GPU libraries of torch's CUDA wheels (nvidia-* packages) and of torchvision (nvJPEG)
_NAMES = ("torch_cuda", "c10_cuda", "cudart", "cublas", "cublasLt", "cufft", "cufile", "curand",
          "cusolver", "cusparse", "cusparseLt", "cudnn", "nccl", "nvrtc", "nvJitLink",
          "nvToolsExt", "nvjpeg", "nvshmem", "cupti", "triton")
GPU_LIBRARY = re.compile(r"/lib(?:%s)[^/]*\.so[^/]*$" % "|".join(_NAMES))


def gpu_library_mappings(maps: str) -> list[tuple[int, int, str]]:
    """(start, end, path) of the file mappings in a /proc/PID/maps text that are GPU libraries."""
    out = []
    for line in maps.splitlines():
        parts = line.split(maxsplit=5)
        if len(parts) < 6 or not GPU_LIBRARY.search(parts[5].strip()):
            continue
        start, end = (int(x, 16) for x in parts[0].split("-"))
        out.append((start, end, parts[5].strip()))
    return out


def page_out_gpu_libraries() -> int:
    """Ask the kernel to reclaim the resident pages of the GPU libraries mapped into this
    process; returns the bytes of mappings advised (0 where it cannot, or is turned off)."""
    if os.environ.get("TRAPGUI_PAGE_OUT_GPU_LIBRARIES", "1") == "0":
        return 0
    madvise = getattr(libc(), "madvise", None)
    if madvise is None:  # not Linux
        return 0
    madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
    madvise.restype = ctypes.c_int
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as f:
            mappings = gpu_library_mappings(f.read())
    except OSError:
        return 0
    advised = 0
    for start, end, _ in mappings:
        if madvise(start, end - start, MADV_PAGEOUT) == 0:
            advised += end - start
    return advised
