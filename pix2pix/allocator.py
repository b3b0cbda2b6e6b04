"""glibc's malloc told to keep freed memory for reuse, so that a training step's tensors do not
page-fault afresh at every step.

PyTorch's CPU tensors come from ``malloc``. glibc hands blocks of 128 KiB and more (its threshold
then adapts upwards) straight back to the kernel when they are freed, and trims the heap's free top
beyond twice that; the next step's tensors of those sizes are then fresh pages, each of them a
page fault and a zeroing by the kernel. In fp32 training of the paper's pix2pix on 2 CPU cores
(issue 22, PERFORMANCE.md) that was 11-17 thousand faults per step at ngf 16, batch 4, and 67-100
thousand at ngf 64: 7-12 % of the step's CPU time. bf16 steps, whose tensors are half the size,
had few.
"""

from __future__ import annotations

import ctypes
import os
import platform

# mallopt's parameters (glibc's malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
# The largest mmap threshold glibc accepts on 64-bit systems (HEAP_MAX_SIZE / 2); blocks above
# it are still mapped and unmapped at each use.
MMAP_THRESHOLD = 32 * 1024 * 1024

ENV = "PIX2PIX_MALLOC"  # "default": leave glibc's settings as they are


def keep_freed_memory() -> str:
    """Set glibc's malloc to serve blocks up to ``MMAP_THRESHOLD`` (32 MiB) from its heap and never
    to trim the heap, so that memory freed by one training step is reused by the next without
    page faults. The process keeps its peak memory until it exits (a training run's peak recurs at
    every step anyway).

    Affects the whole process, from the next allocation on; call it once at the start of a
    training process. Returns one line for the log saying what was done, or why nothing was: not
    glibc (macOS, Windows, musl), ``$PIX2PIX_MALLOC=default``, or ``mallopt`` refused.
    """
    if os.environ.get(ENV, "").strip().lower() == "default":
        return f"malloc: glibc's defaults (${ENV}=default)"
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return "malloc: left as it is (not glibc)"
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return "malloc: left as it is (mallopt not found)"
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    if not mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) or not mallopt(_M_TRIM_THRESHOLD, -1):
        return "malloc: left as it is (mallopt refused the settings)"
    return (
        f"malloc: freed blocks up to {MMAP_THRESHOLD >> 20} MiB kept for reuse (${ENV}=default "
        "leaves glibc's defaults)"
    )
