"""Keep freed memory in the process heap, so large tensors of one training step reuse the pages of the last.

glibc's malloc serves every block above its mmap threshold (128 KiB to 32 MiB, adapting) with a fresh mmap and
returns it to the kernel on free. A stage-3 training step allocates and frees the same ~75 MB vocabulary logits
and their gradient at every step, so each step pays page faults and zero-filling for memory it just gave back.
Serving large blocks from the heap (M_MMAP_MAX = 0) and trimming the heap only past 2 GiB of free top memory
keeps those pages mapped: a stage-3 step 1.27x faster for ~0.3 GiB more resident memory, while the encoder's
training and inference do not change (`benchmarks/recognize.py --configs 22 [--system-malloc]`,
`benchmarks/encoder.py [--hold-freed-memory]`; docs/benchmarks.md).

So `sugar tune` applies it at start, and nothing else does (recognition keeps its smaller footprint);
`SUGAR_SYSTEM_MALLOC=1` leaves glibc's defaults. Elsewhere (macOS, musl, Windows) there is nothing to change and
`hold_freed_memory` returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform

M_TRIM_THRESHOLD = -1  # <malloc.h>: free heap top memory returned to the kernel only past this size
M_MMAP_MAX = -4  # <malloc.h>: most blocks served by mmap at once; 0 serves every block from the heap
TRIM_THRESHOLD_BYTES = 2**31 - 1  # mallopt takes a C int
OPT_OUT = "SUGAR_SYSTEM_MALLOC"


def on_glibc() -> bool:
    """Whether this process's allocator is glibc's malloc (the only one the settings exist for)."""
    return platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def hold_freed_memory() -> bool:
    """Tune glibc malloc for training-step reuse; True when the settings took effect."""
    if os.environ.get(OPT_OUT) == "1" or not on_glibc():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return False
    return bool(libc.mallopt(M_MMAP_MAX, 0)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES))
