"""Keep a long-running service's resident memory flat: large buffers off glibc's heaps.

glibc serves a request of at least its mmap threshold (128 KiB to start with) from a mapping of
its own, returned to the system when freed. But the threshold is dynamic: each time such a
mapped block is freed, glibc raises the threshold to that block's size (up to 32 MiB). Kafka
consumers free many fetch buffers of about 1 MiB (aiokafka holds one per partition), so within
seconds every later buffer of that size is carved out of the heaps instead, between small
long-lived objects. Freed, their space stays in the heaps as fragments: resident and not reused
by the next buffer of the same size.

Measured on reporting catching up 6,000,000 events (glibc 2.36, side by side on one broker): gdb
read glibc's threshold at 18 MiB after a while; its heaps grew 79 → 122 MiB while the bytes in
use stayed near 50-70 MiB, and resident anonymous memory went 163 → 207 MiB. With the threshold
fixed at 128 KiB the heaps held 40-50 MiB and anonymous memory stayed at 148-165 MiB (150 when
caught up), for the same CPU (125 against 126 µs per event).
Setting the threshold explicitly is what turns glibc's raising off.

Left as it is when `MALLOC_MMAP_THRESHOLD_` is set (the operator's choice wins), and a no-op
where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
from typing import Any

log = logging.getLogger(__name__)

M_MMAP_THRESHOLD = -3  # glibc <malloc.h>
LARGE_BUFFER_BYTES = 128 * 1024  # glibc's own starting threshold


def keep_large_buffers_off_the_heap(threshold_bytes: int = LARGE_BUFFER_BYTES) -> bool:
    """Fix glibc's mmap threshold for this process; True when it was set here. Call at start."""
    if os.environ.get("MALLOC_MMAP_THRESHOLD_"):
        return False
    mallopt = _glibc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    if mallopt(M_MMAP_THRESHOLD, threshold_bytes) != 1:
        log.warning("could not fix the malloc mmap threshold", extra={"bytes": threshold_bytes})
        return False
    return True


def _glibc_function(name: str) -> Any:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others: their own allocators
        return None
    return getattr(libc, name, None)
