"""Keep a process's freed memory for reuse, so that TensorFlow's large CPU buffers are not faulted in anew every step.

TensorFlow's CPU allocator takes its tensors from the C library's `malloc`. glibc
serves a block above its mmap threshold (dynamic, at most 32 MiB) with a fresh `mmap`
and returns it with `munmap` when freed, so the pair path's per-pair maps (42 MB at the
low level for a PK batch of 64) come back as new zeroed pages at every step: 73,000 to 98,000
page faults per all-levels training step, a fifth to a quarter of its time on this
project's machine (docs/RESULTS.md, "Freed memory kept for reuse"). Telling malloc to take every
block from its heap and never to give the heap back makes the second step reuse the
first one's pages. One heap for all threads: TensorFlow's worker threads would each get
an arena of their own, whose heaps are handed back to the system as they shrink.

Example:

>>> keep_freed_memory()  # before the first training step; True where glibc took it
True
"""

import ctypes
import ctypes.util
import sys

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8
# The largest trim threshold mallopt takes (an int): freed memory at the heap's top is
# given back to the system only beyond 2 GiB, so a training step's peak stays mapped.
_NEVER_TRIM = 2**31 - 1


def keep_freed_memory():
    """On Linux with glibc, serve every allocation from one heap and keep what is freed there.

    Call it before TensorFlow starts its threads (an arena a thread already has stays
    its own). Memory freed after the peak stays with the process until it exits, as a
    training or an evaluation run does; the peak itself did not grow in the measurement
    above. A no-op elsewhere (another platform or C library).

    Returns:
        True if glibc took all three settings, False otherwise.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # no C library by that name, or not glibc (musl has no mallopt)
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    settings = ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _NEVER_TRIM), (_M_ARENA_MAX, 1))
    return all([bool(mallopt(parameter, value)) for parameter, value in settings])
