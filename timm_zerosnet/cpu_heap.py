"""Keep freed CPU memory in the process during training, instead of handing it back to the OS every step.

With glibc's default settings, a block above the mmap threshold (128 KiB, raised dynamically up to 32 MiB) is a
fresh mapping that is unmapped when freed, and freed memory at the top of the heap is returned to the OS. A training
step frees most of its activations at the end of backward and allocates them again in the next forward, so every
step pays those pages again as page faults. Measured with ``benchmarks/bench_keep_heap.py`` on a 2-core Xeon VM:
85,000-119,000 faults per training step of preresnet50, lmresnet50 or zerosnet50 at batch 8, and 6,000-8,300 per
lmresnet20_cifar or zerosnet20_cifar step at batch 64. With the heap kept, 0-2,200 remain and peak RSS moves by
less than 3%. The steps took 0.97x (preresnet50), 0.90x (lmresnet50) and 0.79-0.80x (the CIFAR models) of the
time. zerosnet50 took 1.05x, inside this VM's noise.

``keep_heap()`` tells glibc to serve every block from the heap and to keep what is freed there, which is what
jemalloc or tcmalloc do for PyTorch (the allocators PyTorch's CPU performance guide recommends). It changes the
whole process, so the training entry point calls it on CPU runs (``--no-keep-heap`` turns it off), and nothing
calls it at import. A process whose allocator is already chosen through the environment (``LD_PRELOAD``,
``GLIBC_TUNABLES`` or ``MALLOC_*`` variables) is left as it is.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

__all__ = ["keep_heap", "require_kept_heap", "allocator_env", "ALLOCATOR_ENV"]

ALLOCATOR_ENV = ("LD_PRELOAD", "GLIBC_TUNABLES", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_MAX_")

_M_TRIM_THRESHOLD = -1  # from glibc's malloc.h
_M_MMAP_MAX = -4
_DEFAULT_MMAP_MAX = 65536
_INT_MAX = 2**31 - 1  # mallopt takes a C int
_KEPT = "CPU heap kept"


def allocator_env() -> list[str]:
    """The variables of ``ALLOCATOR_ENV`` that this process's environment sets."""
    return [k for k in ALLOCATOR_ENV if os.environ.get(k)]


def keep_heap() -> str:
    """Serve every allocation from the heap and never trim it (glibc only). Returns what was done, for the log."""
    if chosen := allocator_env():
        return f"CPU allocator left as configured by {', '.join(chosen)}"
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return f"CPU allocator left as it is: no glibc mallopt in {name or 'this C library'}"
    # mallopt returns 1 on success. Both settings or neither: a heap that is kept but still maps large blocks
    # would re-fault exactly the biggest tensors
    if mallopt(_M_MMAP_MAX, 0) != 1:
        return "CPU allocator left as it is: glibc refused M_MMAP_MAX"
    if mallopt(_M_TRIM_THRESHOLD, _INT_MAX) != 1:
        mallopt(_M_MMAP_MAX, _DEFAULT_MMAP_MAX)
        return "CPU allocator left as it is: glibc refused M_TRIM_THRESHOLD"
    return f"{_KEPT}: glibc serves every block from the heap and does not trim it (--no-keep-heap: off)"


def require_kept_heap(why: str) -> str:
    """``keep_heap()`` for a process that must not run otherwise (a benchmark worker measuring the kept heap):
    raises RuntimeError, prefixed with ``why``, where the heap could not be kept."""
    note = keep_heap()
    if not note.startswith(_KEPT):
        raise RuntimeError(f"{why}: {note}")
    return note
