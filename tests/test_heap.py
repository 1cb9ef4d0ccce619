"""keep_freed_memory: large buffers freed and taken again are not faulted in anew, in any thread."""

import subprocess
import sys

import pytest

# In a fresh interpreter: write a 64 MiB malloc'd buffer, free it, take and write another,
# counting the page faults of the second; first in the main thread, then in a new one
# (TensorFlow's pools allocate from their own threads). Plain malloc, as TensorFlow's CPU
# allocator uses: numpy's own allocations ask the kernel for huge pages, hiding the faults.
_SECOND_BUFFER_FAULTS = """
import ctypes, ctypes.util, resource, sys, threading
from keras_msreid.utils.heap import keep_freed_memory
applied = keep_freed_memory() if sys.argv[1] == "keep" else None
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)

def second_buffer_faults(out, size=64 * 2**20):
    for _ in range(2):  # the faults of the second turn are kept
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        buffer = libc.malloc(size)
        ctypes.memset(buffer, 1, size)
        libc.free(buffer)
    out.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)

faults = []
second_buffer_faults(faults)
worker = threading.Thread(target=second_buffer_faults, args=(faults,))
worker.start()
worker.join()
print(applied, *faults)
"""


def _second_buffer_faults(mode):
    result = subprocess.run([sys.executable, "-c", _SECOND_BUFFER_FAULTS, mode], capture_output=True, text=True,
                            check=True)
    applied, *faults = result.stdout.split()
    return applied, [int(count) for count in faults]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc only")
def test_freed_buffers_are_reused_instead_of_faulted_in_again():
    pages = 64 * 2**20 // 4096
    applied, (main_thread, worker_thread) = _second_buffer_faults("keep")
    assert applied == "True"
    assert main_thread < pages // 10 and worker_thread < pages // 10
    # Without it glibc maps each buffer afresh: every page faults again.
    applied, faults = _second_buffer_faults("default")
    assert faults == [pytest.approx(pages, rel=0.1)] * 2
