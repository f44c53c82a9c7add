"""A turn's reads into one buffer kept from turn to turn, instead of a fresh `bytes` per read.

`os.pread` of up to a turn's megabyte returns a new block each time; with glibc's mmap
threshold fixed at 1 MiB (agent/ops/malloc.py) it came from the heap's kept top when that
fitted and from a fresh mapping otherwise, so some runs faulted in 256 new pages per MB of log
(~4% of the agent's CPU). Here every read of a turn goes into the next free part of one
buffer (the core's `ReadBuffer`), and the chunks handed on are views of it (`ReadChunk`s):
the Streams read them in place.

No one can see a chunk's bytes change: a chunk's part of the buffer is not read into again
while the chunk lives (the core counts them), and a turn that finds a chunk of the last one
still held somewhere (a caller that kept it) reads into a new buffer and leaves the old one to
its holder. Whoever keeps bytes beyond a turn copies them (the tail marker, the Python engine)
so the buffer is normally free again at the next turn.

Without the compiled core (the Python engine alone), reads are `os.pread` as before.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, TypeAlias

try:
    from llmtail._core import ReadBuffer
except ImportError:  # the core is not built: plain reads
    ReadBuffer = None  # type: ignore[assignment,misc]

if TYPE_CHECKING:
    from llmtail._core import ReadChunk

ChunkData: TypeAlias = "bytes | ReadChunk"
"""A chunk's bytes: a view of the kept buffer, or `bytes` (no core, or a read past its room)."""


class TurnBuffer:
    """The reads of one turn, each into the next free part of a buffer of `capacity` bytes.

    A read that does not fit in what is left (a turn's budget above `capacity`) gets bytes of
    its own, so a budget is never cut short by the buffer."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        self._buffer = ReadBuffer(capacity) if ReadBuffer is not None else None
        self.replaced = 0  # turns that found a chunk of the last still held (tests, debugging)

    def start_turn(self) -> None:
        """Reads start again at the buffer's beginning, or in a new buffer if a chunk of the
        old one is still referenced (its bytes must stay as they are)."""
        if self._buffer is not None and not self._buffer.reset():
            self._buffer = ReadBuffer(self._capacity)
            self.replaced += 1

    def pread(self, fd: int, n: int, offset: int) -> ChunkData:
        """Up to `n` bytes of `fd` from `offset`; empty at the end of the file."""
        if self._buffer is None or n > self._buffer.room:
            return os.pread(fd, n, offset)
        return self._buffer.pread(fd, n, offset)
