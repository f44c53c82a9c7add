"""Bytes -> whole lines, bounded in memory, and raw record bytes -> clean text.

`LineBuffer` hands out runs of complete lines as (buffer, start, end) ranges, so a 1 MB chunk
is never copied line by line. A partial last line is held until its newline, but never more than
`cap` bytes of it: past the cap the line is marked truncated and the rest is counted, not kept,
so a 20 MB line costs `cap` bytes of memory beyond the chunk that carries it.

Text decisions (documented in docs/architecture.md):
- lines end at `\\n`; one `\\r` before it is removed from the text, never from the offsets;
- a UTF-8 BOM at the start of a record is dropped from the text (its bytes still count);
- NUL bytes are removed from the text and the record is flagged `NUL`;
- bytes that are not valid in the encoding are kept as `\\xNN` escapes (nothing is lost) and
  the record is flagged `DECODE`; decoding never raises.
"""

from __future__ import annotations

import codecs
import enum
from dataclasses import dataclass

BOM = b"\xef\xbb\xbf"


class FrameFlag(enum.IntFlag):
    """What happened to a record's bytes on the way to its text."""

    NONE = 0
    TRUNCATED = 1  # over max_record_bytes: the text is cut, the rest was consumed and dropped
    DECODE = 2  # bytes invalid in the encoding, kept as \\xNN escapes
    NUL = 4  # NUL bytes removed
    HEADLESS = 8  # lines that no record header precedes (e.g. a banner before the first record)
    PARTIAL = 16  # flushed without its final newline (idle writer or end of file)


@dataclass(frozen=True, slots=True)
class Block:
    """Complete lines: `data[start:end]`, `end` just past a newline."""

    data: bytes
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class LongLine:
    """A line over the cap: its first `cap` bytes and its full size (newline included)."""

    kept: bytes
    size: int
    complete: bool  # False: flushed before its newline arrived


Piece = Block | LongLine


class LineBuffer:
    """Splits a byte stream into complete lines, holding at most `cap` bytes of a partial one."""

    def __init__(self, cap: int) -> None:
        self._cap = cap
        self._tail = b""
        self._skipped = 0  # > 0: inside an over-long line, bytes dropped past `_tail`

    @property
    def held(self) -> int:
        """Bytes of the current partial line seen so far (kept or dropped)."""
        return len(self._tail) + self._skipped

    def head(self) -> bytes:
        """The kept bytes of the partial line (to see whether it starts a record)."""
        return self._tail

    def push(self, chunk: bytes) -> list[Piece]:
        """Complete lines in `chunk` (after what was held), in order."""
        if not chunk:
            return []
        pieces: list[Piece] = []
        pos = 0
        if self._tail or self._skipped:
            nl = chunk.find(b"\n")
            if nl < 0:
                self._hold(chunk)
                return pieces
            self._hold(chunk[: nl + 1])
            pieces.append(self._release(complete=True))
            pos = nl + 1
        last = chunk.rfind(b"\n", pos)
        if last >= 0:
            pieces.append(Block(chunk, pos, last + 1))
            pos = last + 1
        if pos < len(chunk):
            self._hold(chunk[pos:] if pos else chunk)
        return pieces

    def take_partial(self) -> Piece | None:
        """The held partial line (no newline yet), handed out and forgotten."""
        if not self._tail and not self._skipped:
            return None
        return self._release(complete=False)

    def _hold(self, data: bytes) -> None:
        room = self._cap - len(self._tail)
        if self._skipped or len(data) > room:
            if room > 0:
                self._tail += data[:room]
            self._skipped += len(data) - max(room, 0)
        else:
            self._tail += data

    def _release(self, complete: bool) -> Piece:
        tail, skipped = self._tail, self._skipped
        self._tail, self._skipped = b"", 0
        if skipped:
            return LongLine(tail, len(tail) + skipped, complete)
        return Block(tail, 0, len(tail))


def decode(raw: bytes, encoding: str, cut: bool = False) -> tuple[str, FrameFlag]:
    """Record bytes (final newline excluded) -> text with `\\r`, BOM and NUL handled.

    `cut`: the bytes were cut at the size cap, so an incomplete last character is dropped
    instead of reported as a decode error."""
    flags = FrameFlag.NONE
    if raw.startswith(BOM):
        raw = raw[3:]
    try:
        if cut:
            text = codecs.getincrementaldecoder(encoding)("strict").decode(raw, final=False)
        else:
            text = raw.decode(encoding)
    except UnicodeDecodeError:
        flags |= FrameFlag.DECODE
        if cut:
            dec = codecs.getincrementaldecoder(encoding)("backslashreplace")
            text = dec.decode(raw, final=False)
        else:
            text = raw.decode(encoding, "backslashreplace")
    if "\r" in text:
        text = text.replace("\r\n", "\n")
        if text.endswith("\r"):
            text = text[:-1]
    if "\x00" in text:
        flags |= FrameFlag.NUL
        text = text.replace("\x00", "")
    return text, flags
