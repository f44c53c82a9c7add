"""glibc malloc: at most two arenas, so each sender thread does not keep megabytes of its own.

Every batch passes through megabyte-sized buffers (the LogGroup bytes the core hands over, the
sender's copy with the trailer, the lz4 output). glibc gives each thread that allocates while
another holds an arena an arena of its own, up to 8 per core, and keeps freed blocks there for
that thread: with four senders the agent carried ~10 MiB of such blocks (bench_e2e: peak RSS 85-87
MiB, 77-79 MiB with two arenas, the same CPU per MB within the noise; bench/README.md). The
senders spend little CPU in malloc, so sharing arenas costs nothing measurable.

`MALLOC_ARENA_MAX` in the environment is the user's choice and is left alone; other C libraries
(musl) have no arenas to limit.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_ARENA_MAX = -8  # glibc's malloc.h
DEFAULT_ARENAS = 2


def limit_arenas(arenas: int = DEFAULT_ARENAS) -> bool:
    """Cap glibc's malloc arenas (before the threads start); True when the cap was set."""
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: M_ARENA_MAX means nothing elsewhere
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_ARENA_MAX, arenas))
