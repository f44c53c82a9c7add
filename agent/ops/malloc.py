"""glibc malloc tuned for megabyte buffers: two arenas, and big blocks always mmapped.

Every batch passes through megabyte-sized buffers (the core's encoding buffer, reused from
batch to batch, the LogGroup bytes it hands over, the lz4 output). Two glibc defaults kept
such buffers resident after they were freed:

- Arenas: glibc gives each thread that allocates while another holds an arena an arena of its
  own, up to 8 per core, and keeps freed blocks there for that thread: with four senders the
  agent carried ~10 MiB of such blocks (bench_e2e: peak RSS 85-87 MiB, 77-79 MiB with two
  arenas, the same CPU per MB within the noise).
- The mmap threshold: a block over it is mmapped and unmapped when freed, but glibc raises the
  threshold to the size of every mmapped block freed, so after the first batch each later one
  came from the heap and stayed there, fragmented between small objects (bench_e2e with the
  core engine: peak RSS 76-90 MiB, 66-70 MiB with the threshold fixed at 1 MiB). A fixed
  threshold turns the raising off. It costs CPU: each batch's buffers are fresh pages that
  fault in (18-43% more CPU per MB in three pairs, bench/README.md); the memory target wins.

`MALLOC_ARENA_MAX` and `MALLOC_MMAP_THRESHOLD_` in the environment are the user's choice and
are left alone; other C libraries (musl) have neither knob.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable

M_MMAP_THRESHOLD = -3  # glibc's malloc.h
M_ARENA_MAX = -8
DEFAULT_ARENAS = 2
MMAP_THRESHOLD = 1 << 20


def _mallopt() -> Callable[[int, int], int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: the options mean nothing elsewhere
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return None
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return mallopt


def limit_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas (before the threads start); True when the cap was set."""
    mallopt = _mallopt()
    if mallopt is None or "MALLOC_ARENA_MAX" in os.environ:
        return False
    return bool(mallopt(M_ARENA_MAX, arenas))


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Blocks of `threshold` bytes or more are always mmapped; True when it was set."""
    mallopt = _mallopt()
    if mallopt is None or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))


def tune_malloc() -> None:
    """Both settings, for the long-running modes (before any thread starts)."""
    limit_arenas()
    fix_mmap_threshold()
