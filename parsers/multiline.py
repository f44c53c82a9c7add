"""Records out of a byte stream: continuation lines join the record whose header started them.

A record is complete when the next header arrives, when the writer has been idle long enough
(`due`), or when the file is finished (`drain`). Decisions:
- lines before the first header of a read form one record flagged HEADLESS (parsed as raw);
- a record over `max_record_bytes` keeps its first `max_record_bytes` bytes and is flagged
  TRUNCATED; its remaining lines are consumed (their bytes count in `size` and `end`) but not
  kept, and not emitted as records of their own: they belong to the record, so splitting them
  off would produce garbage records with no header;
- a frame's `end` is the offset just past its last line, the only offset a checkpoint may take.
Pure: no I/O; time is passed in.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from llmtail.parsers.lines import BOM, Block, FrameFlag, LineBuffer, Piece, decode

_TEXT_SPAN = 1 << 20


@dataclass(slots=True)
class Frame:
    """One record's text and where it ends in the file."""

    text: str
    end: int  # byte offset just past the record's last line
    line_no: int  # 1-based number of its first line, counted from where the assembler started
    size: int  # bytes of the file the record covers (BOM, CRs, NULs and dropped bytes included)
    flags: FrameFlag = FrameFlag.NONE
    # The record regex's groups when framing already matched it (saves parse a second match).
    groups: tuple[str | None, ...] | None = field(default=None, compare=False, repr=False)


class Assembler:
    """Joins lines into records for one file; feed it the file's bytes in order."""

    def __init__(
        self,
        starts: re.Pattern[bytes],
        encoding: str = "utf-8",
        max_record_bytes: int = 512 * 1024,
        start_offset: int = 0,
        records: re.Pattern[str] | None = None,
    ) -> None:
        """`records`: optional MULTILINE str regex matching one whole clean record (header,
        message, continuation lines) with the parse regex's groups; given, clean UTF-8 blocks
        are framed by one pass of it over the decoded block instead of line by line."""
        self._records = records
        self._starts = starts  # `\n` + a record header (see CompiledPattern.start_regex)
        self._first = re.compile(starts.pattern[1:])  # a record header at a line start
        self._encoding = encoding
        self._cap = max_record_bytes
        self._lines = LineBuffer(max_record_bytes)
        self._offset = start_offset  # bytes fed so far
        self._done = start_offset  # end of the last complete line handed to framing
        self._line_no = 1  # number of the next line
        self._last_data: float | None = None
        # The pending record: kept bytes, their count, and where it stands.
        self._parts: list[bytes] = []
        self._kept = 0
        self._size = 0
        self._pend_line = 0  # 0: no pending record
        self._pend_flags = FrameFlag.NONE

    @property
    def offset(self) -> int:
        """Bytes consumed so far (the next chunk starts here)."""
        return self._offset

    @property
    def pending_bytes(self) -> int:
        """Memory held for records not yet complete: the pending record and a partial line."""
        return self._kept + len(self._lines.head())

    def feed(self, chunk: bytes, now: float) -> list[Frame]:
        """Records completed by `chunk`; the last record stays pending until its end is known."""
        out: list[Frame] = []
        if not chunk:
            return out
        self._offset += len(chunk)
        self._last_data = now
        for piece in self._lines.push(chunk):
            self._piece(piece, out, FrameFlag.NONE)
        return out

    def due(self, now: float, partial_after: float, pending_after: float) -> list[Frame]:
        """Records to flush because the writer went idle.

        A pending record waits `pending_after` seconds for continuation lines. A partial last
        line waits `partial_after` seconds for its newline; while it waits, the pending record
        is held too unless the partial line already shows a record header (it could still be a
        stack-trace line being written)."""
        out: list[Frame] = []
        if self._last_data is None:
            return out
        idle = now - self._last_data
        if self._lines.held and idle >= partial_after:
            return self.drain()
        if self._pend_line and idle >= pending_after:
            held = self._lines.head()
            if not held or self._first.match(held):
                self._flush(out)
        return out

    def drain(self) -> list[Frame]:
        """Everything held, the partial last line included (end of a finished file)."""
        out: list[Frame] = []
        piece = self._lines.take_partial()
        if piece is not None:
            self._piece(piece, out, FrameFlag.PARTIAL)
        self._flush(out)
        return out

    # -- framing -------------------------------------------------------------------------

    def _piece(self, piece: Piece, out: list[Frame], flags: FrameFlag) -> None:
        if isinstance(piece, Block):
            self._block(piece.data, piece.start, piece.end, out, flags)
            return
        size = piece.size
        if self._first.match(piece.kept):
            self._flush(out)
        self._append(piece.kept, size, flags | FrameFlag.TRUNCATED)
        self._done += size
        self._line_no += 1 if piece.complete else 0

    def _block(self, data: bytes, start: int, end: int, out: list[Frame], flags: FrameFlag) -> None:
        if self._records is None or flags:
            self._scan(data, start, end, out, flags)
            return
        # Decode at most _TEXT_SPAN bytes at a time, so memory stays bounded by that, not by
        # the chunk; a line longer than that goes to `_scan`, which keeps only the cap of it.
        while start < end:
            stop = data.rfind(b"\n", start, start + _TEXT_SPAN) + 1
            if stop <= start:
                stop = data.find(b"\n", start, end) + 1 or end
                self._scan(data, start, stop, out, flags)
            elif not self._text_block(data, start, stop, out):
                self._scan(data, start, stop, out, flags)
            start = stop

    def _text_block(self, data: bytes, start: int, end: int, out: list[Frame]) -> bool:
        """The fast path: frame a clean block (no CR, NUL, BOM; valid UTF-8) with one finditer
        over its text. Everything else (a gap before or between records, an oversized record,
        the last record, which may continue in the next block) goes to `_scan`, so both paths
        frame the same bytes the same way. False: not clean, nothing done."""
        if (
            data.find(b"\r", start, end) >= 0
            or data.find(b"\x00", start, end) >= 0
            or data.find(BOM, start, end) >= 0
        ):
            return False
        try:
            text = data[start:end].decode("utf-8")
        except UnicodeDecodeError:
            return False
        assert self._records is not None
        # One match alive at a time (each is a GC-tracked object holding its groups' spans);
        # the last match is left to `_scan`: its record may continue in the next block.
        matches = self._records.finditer(text, 0, len(text) - 1)
        m = next(matches, None)
        if m is None:
            return False
        ascii_only = len(text) == end - start
        cap = self._cap
        none = FrameFlag.NONE
        append = out.append
        pos = 0  # text position handled so far
        bpos = start  # the same position in `data`
        done, line_no = self._done, self._line_no  # written back before any other call
        for following in matches:
            current, m = m, following
            a, b = current.span()
            record = text[a:b]
            size = (b - a if ascii_only else len(record.encode())) + 1
            if a != pos or size > cap or self._pend_line:
                self._done, self._line_no = done, line_no
                if a != pos:
                    gap = a - pos if ascii_only else len(text[pos:a].encode())
                    self._scan(data, bpos, bpos + gap, out, none)
                    bpos += gap
                if size > cap:
                    self._scan(data, bpos, bpos + size, out, none)
                    bpos += size
                    pos = b + 1
                    done, line_no = self._done, self._line_no
                    continue
                self._flush(out)
                done, line_no = self._done, self._line_no
            done += size
            append(Frame(record, done, line_no, size, none, current.groups()))
            line_no += record.count("\n") + 1
            bpos += size
            pos = b + 1
        self._done, self._line_no = done, line_no
        self._scan(data, bpos, end, out, none)
        return True

    def _scan(self, data: bytes, start: int, end: int, out: list[Frame], flags: FrameFlag) -> None:
        """Frame the complete lines `data[start:end]` (a partial line when flags has PARTIAL)."""
        base = self._done - start  # absolute offset of data[0]
        positions = [m.start() + 1 for m in self._starts.finditer(data, start, end)]
        if self._first.match(data, start, end):
            positions.insert(0, start)
        if not positions or positions[0] > start:
            stop = positions[0] if positions else end
            self._append_range(data, start, stop, flags)
        if not positions:
            self._done = base + end
            return
        self._flush(out)
        last = len(positions) - 1
        cap = self._cap
        line_no = self._line_no
        enc = self._encoding
        clean = (
            data.find(b"\r", start, end) < 0
            and data.find(b"\x00", start, end) < 0
            and data.find(BOM, start, end) < 0
        )
        for i in range(last):
            a, b = positions[i], positions[i + 1]
            lines = data.count(b"\n", a, b)
            if clean and b - a <= cap:
                try:
                    text = data[a : b - 1].decode(enc)
                    frame_flags = flags
                except UnicodeDecodeError:
                    text, frame_flags = decode(data[a : b - 1], enc)
                    frame_flags |= flags
                out.append(Frame(text, base + b, line_no, b - a, frame_flags))
                line_no += lines
                continue
            self._line_no = line_no
            self._done = base + a
            self._append_range(data, a, b, flags)
            self._flush(out)
            line_no = self._line_no
        self._line_no = line_no
        self._done = base + positions[last]
        self._append_range(data, positions[last], end, flags)

    def _append_range(self, data: bytes, a: int, b: int, flags: FrameFlag) -> None:
        """Lines `data[a:b]` join the pending record (or start a headless one)."""
        if a >= b:
            return
        room = self._cap - self._kept
        if b - a <= room:
            self._append(data[a:b], b - a, flags)
        else:
            self._append(data[a : a + max(room, 0)], b - a, flags | FrameFlag.TRUNCATED)
        self._done += b - a
        self._line_no += data.count(b"\n", a, b)

    def _append(self, kept: bytes, size: int, flags: FrameFlag) -> None:
        if not self._pend_line:
            self._pend_line = self._line_no
            self._pend_flags = flags
            if not self._first.match(kept):
                self._pend_flags |= FrameFlag.HEADLESS
        else:
            self._pend_flags |= flags
        room = self._cap - self._kept
        if len(kept) > room:
            kept = kept[: max(room, 0)]
            self._pend_flags |= FrameFlag.TRUNCATED
        if kept:
            self._parts.append(kept)
            self._kept += len(kept)
        self._size += size

    def _flush(self, out: list[Frame]) -> None:
        if not self._pend_line:
            return
        raw = b"".join(self._parts)
        flags = self._pend_flags
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        text, text_flags = decode(raw, self._encoding, cut=bool(flags & FrameFlag.TRUNCATED))
        out.append(Frame(text, self._done, self._pend_line, self._size, flags | text_flags))
        self._parts = []
        self._kept = 0
        self._size = 0
        self._pend_line = 0
        self._pend_flags = FrameFlag.NONE
