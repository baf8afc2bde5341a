"""Keep freed memory in the process for reuse instead of handing it back to the OS.

torch's CPU tensors come from glibc's malloc, which by default serves blocks above a (moving)
threshold with fresh ``mmap`` pages and gives freed memory back to the OS. An evaluation
allocates and frees megabyte-sized tensors thousands of times (every attack batch, every eps),
and every fresh page costs a page fault and zeroing: FGSM on 10,000 MNIST images with 5 eps took
0.10-0.20 s from run to run with glibc's defaults and 0.096-0.113 s with freed memory kept
(benchmarks/README.md). ``keep_freed_memory`` sets glibc's trim threshold to 1 GiB and its mmap
threshold to 32 MiB (blocks up to that size come from the reusable heap), so such blocks are
recycled; the cost is that the process keeps up to 1 GiB of freed memory for itself. Numbers
computed are unchanged. It acts on the whole process, so ``benchbench run`` (and the benchmark)
call it, not the library.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def keep_freed_memory(trim: int = 1 << 30, mmap: int = 1 << 25) -> bool:
    """Tune glibc's malloc as above; False where there is no ``mallopt`` or it refuses a
    setting (the other may then have taken effect: both only tune speed, never results)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # macOS, musl without mallopt, Windows
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, trim)) and bool(mallopt(M_MMAP_THRESHOLD, mmap))
