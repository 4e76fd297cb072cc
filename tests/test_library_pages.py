"""GPU library pages given back on a CPU run (core/library_pages), against this process's own
memory map: the real libraries torch mapped, the real kernel advice."""

from __future__ import annotations

import ctypes
import sys
from pathlib import Path

import pytest

from trapgui.core import library_pages

MAPS = """\
7f00a0000000-7f00a4000000 r-xp 00000000 08:01 11 /venv/site-packages/torch/lib/libtorch_cuda.so
7f00a4000000-7f00a4100000 r--p 04000000 08:01 11 /venv/site-packages/torch/lib/libtorch_cuda.so
7f00b0000000-7f00b1000000 r-xp 00000000 08:01 12 /venv/site-packages/torch/lib/libtorch_cpu.so
7f00c0000000-7f00c2000000 r-xp 00000000 08:01 13 /venv/site-packages/nvidia/cu13/lib/libcublasLt.so.13
7f00c3000000-7f00c3100000 r-xp 00000000 08:01 14 /venv/site-packages/nvidia/cu13/lib/libnvrtc.so.13
7f00c4000000-7f00c4100000 r-xp 00000000 08:01 15 /usr/lib/x86_64-linux-gnu/libc.so.6
7f00c5000000-7f00c5100000 r-xp 00000000 08:01 16 /usr/lib/x86_64-linux-gnu/libcurl.so.4
7f00c6000000-7f00c6100000 rw-p 00000000 00:00 0
7f00c7000000-7f00c7100000 r-xp 00000000 08:01 17 /venv/site-packages/torchvision.libs/libnvjpeg.4a0b5c81.so.13
"""


def test_only_gpu_libraries_are_chosen():
    names = [Path(p).name for _, _, p in library_pages.gpu_library_mappings(MAPS)]
    assert names == ["libtorch_cuda.so", "libtorch_cuda.so", "libcublasLt.so.13",
                     "libnvrtc.so.13", "libnvjpeg.4a0b5c81.so.13"]


def _gpu_library_private_clean_kb() -> int:
    """Resident, unmodified pages of GPU libraries that only this process maps: the ones the
    kernel can reclaim (pages another process maps too, say a test's child, stay)."""
    total, counting = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split(maxsplit=5)
        if head and "-" in head[0] and not head[0].endswith(":"):
            counting = len(head) == 6 and bool(library_pages.GPU_LIBRARY.search(head[5]))
        elif counting and line.startswith("Private_Clean:"):
            total += int(line.split()[1])
    return total


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="madvise and /proc are Linux's")
def test_resident_gpu_library_pages_are_given_back_and_torch_still_runs(monkeypatch):
    import torch

    text = Path("/proc/self/maps").read_text()
    if not library_pages.gpu_library_mappings(text):
        pytest.skip("this torch maps no GPU library (a CPU-only build)")
    # an earlier test's run may have given them back already: read some in again
    readable = "\n".join(line for line in text.splitlines() if line.split()[1].startswith("r"))
    for start, end, _ in library_pages.gpu_library_mappings(readable):
        for address in range(start, min(end, start + (2 << 20)), 4096):
            ctypes.string_at(address, 1)
    before = _gpu_library_private_clean_kb()
    assert before >= 1024
    advised = library_pages.page_out_gpu_libraries()
    if advised == 0:
        pytest.skip("this kernel refuses MADV_PAGEOUT (before Linux 5.4)")
    assert _gpu_library_private_clean_kb() < before / 2
    x = torch.arange(12.0).reshape(3, 4)
    assert torch.equal(x @ x.T, torch.tensor([[14.0, 38, 62], [38, 126, 214], [62, 214, 366]]))
    monkeypatch.setenv("TRAPGUI_PAGE_OUT_GPU_LIBRARIES", "0")
    assert library_pages.page_out_gpu_libraries() == 0
