"""glibc malloc tuned for megabyte buffers: two arenas, big blocks mmapped, a kept heap top.

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

Blocks under the threshold (a long record's line buffer, a small batch) are freed into the
heap, where glibc returns only its top: a thousand files each shipping a 500 KB unfinished
record left the agent 30-40 MiB above what it held (tests/test_unfinished_records.py peaked at
136 MiB on CI against 128). `Trimmer` calls malloc_trim, which since glibc 2.8 also gives back
the free pages inside the heap, at most once a second from the modes' housekeeping, and only
when 4 MiB or more are free there (a steady reader refaults whatever a trim gives back).

The heap's top: glibc gives free memory at the top back as soon as it exceeds 128 KiB, so the
reader's megabyte chunks (`os.pread`) faulted in afresh on every read (245 faults per MB of
log). A top of up to 4 MiB is kept between trims (`keep_heap_top`); a request the top can serve
is served from it even over the mmap threshold. bench_e2e: 674-704 faults per MB, 373-416 with
it, peak RSS and CPU the same within the noise (bench/README.md). It did not always fit (some
runs still faulted ~250 pages per MB of log): the reader now reads into a buffer it keeps
(agent/reading/readbuffer.py), which no longer depends on the heap's layout.

`MALLOC_ARENA_MAX`, `MALLOC_MMAP_THRESHOLD_` and `MALLOC_TRIM_THRESHOLD_` in the environment
are the user's choice and are left alone; other C libraries (musl) have none of these knobs.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable
from functools import cache
from typing import Any, cast

M_TRIM_THRESHOLD = -1  # glibc's malloc.h
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8
DEFAULT_ARENAS = 2
MMAP_THRESHOLD = 1 << 20
TOP_KEPT = 4 << 20
TRIM_INTERVAL = 1.0  # seconds


@cache
def _glibc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 - glibc only: the calls mean nothing elsewhere
    except (OSError, AttributeError):
        return None
    return libc


@cache
def _glibc_function(name: str, restype: Any, *argtypes: Any) -> Callable[..., Any] | None:
    """glibc's `name`, typed once; None off glibc or where this glibc has no such function."""
    libc = _glibc()
    function = getattr(libc, name, None) if libc is not None else None
    if function is None:
        return None
    function.argtypes = argtypes
    function.restype = restype
    return cast(Callable[..., Any], function)


def _mallopt() -> Callable[[int, int], int] | None:
    return _glibc_function("mallopt", ctypes.c_int, ctypes.c_int, ctypes.c_int)


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


def keep_heap_top(kept: int = TOP_KEPT) -> bool:
    """Free memory at the heap's top up to `kept` bytes stays mapped (the `Trimmer` gives it
    back once a second); True when it was set."""
    mallopt = _mallopt()
    if mallopt is None or "MALLOC_TRIM_THRESHOLD_" in os.environ:
        return False
    return bool(mallopt(M_TRIM_THRESHOLD, kept))


def tune_malloc() -> None:
    """All three settings, for the long-running modes (before any thread starts)."""
    limit_arenas()
    fix_mmap_threshold()
    keep_heap_top()


def release_free_memory() -> bool:
    """Return the heap's free pages to the kernel; True when glibc released some."""
    trim = _glibc_function("malloc_trim", ctypes.c_int, ctypes.c_size_t)
    return trim is not None and bool(trim(0))


_MALLINFO2: tuple[str, ...] = ("arena", "ordblks", "smblks", "hblks", "hblkhd")
_MALLINFO2 += ("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")


class _MallInfo2(ctypes.Structure):
    """glibc's `struct mallinfo2`: ten size_t counters."""

    _fields_ = [(name, ctypes.c_size_t) for name in _MALLINFO2]


def heap_slack() -> int | None:
    """Free bytes inside the heaps, their tops left out (what a trim could give back beyond
    what `keep_heap_top` keeps); None where glibc cannot say (mallinfo2 is glibc 2.33+)."""
    info = _glibc_function("mallinfo2", _MallInfo2)
    if info is None:
        return None
    m = info()
    return max(0, int(m.fordblks) - int(m.keepcost))


class Trimmer:
    """`release_free_memory` at most once per `interval` seconds of `now` (a monotonic clock),
    when the heaps hold at least `slack` free bytes: called from a loop's housekeeping.

    A trim gives back every free page, and an agent reading steadily writes into the same
    few megabytes again a moment later: at 1 MB/s the trims and the page faults after them
    were 4% of its CPU. Free memory under `slack` is left for that reuse, as `keep_heap_top`
    leaves the heap's top; a thousand unfinished records freed at once are well over it.
    `idle` is called just before: it frees buffers kept for reuse that went unused since its
    last call (the core's lz4 output buffers), so their pages are given back in the same trim."""

    def __init__(
        self,
        interval: float = TRIM_INTERVAL,
        idle: Callable[[], object] | None = None,
        slack: int = TOP_KEPT,
    ) -> None:
        self._interval = interval
        self._idle = idle
        self._slack = slack
        self._next: float | None = None

    def __call__(self, now: float) -> None:
        if self._next is not None and now < self._next:
            return
        self._next = now + self._interval
        if self._idle is not None:
            self._idle()
        free = heap_slack()
        if free is None or free >= self._slack:
            release_free_memory()
