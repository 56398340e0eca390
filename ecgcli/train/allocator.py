"""Keep freed memory in the process on CPU, so each training step stops page-faulting.

A training step on CPU allocates and frees the same large buffers again and again (a batch
of views is 12 MB; FFTs, projections and gradients add more). glibc hands blocks of 128 kB
and more straight back to the operating system and maps them afresh on the next request,
and touching a freshly mapped page costs a page fault: measured here, about a fifth of the
time of the SSL augmentations went into that. PyTorch's CPU performance guide recommends
swapping the allocator (jemalloc, tcmalloc) for the same reason; raising glibc's mmap and
trim thresholds gets most of the benefit without a preload. No-op outside glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_LIMIT = 1 << 30  # keep blocks up to 1 GiB on the heap
_done = False


def keep_freed_memory() -> bool:
    """Ask glibc to reuse freed blocks instead of returning them; True if it took effect."""
    global _done
    if _done or not sys.platform.startswith("linux"):
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # musl and other C libraries have no mallopt
        return False
    _done = bool(mallopt(_M_MMAP_THRESHOLD, _LIMIT)) and bool(mallopt(_M_TRIM_THRESHOLD, _LIMIT))
    return _done
