"""Reading whole files to their end, plain or gzip: what `validate` and `backfill` consume.

Offsets of a `.gz` file are positions in its decompressed content, so a resumed backfill skips
what was delivered by decompressing and discarding it.

Damaged gzip (decided here, with bounded memory): a gzip file is one or more members, each a
deflate stream followed by the CRC-32 and size of its content, so a corruption that still
decodes is only caught at the member's end, after its garbage would have been handed on.
So a `.gz` is read twice: a verify pass decompresses it to the end and discards the output,
checking each member's trailer; the second pass hands on only what the first found sound:

- every member whose CRC and size match;
- of a member cut short (a truncated file, a copy still being written), the bytes that decode
  before the cut: truncation does not alter what precedes it, and it is the readable part;
- nothing of a member whose trailer does not match or whose deflate data is invalid: there is
  no telling its good bytes from garbage. Nothing after it either.

The read then ends with `DamagedFileError`, carrying how many bytes (of decompressed content,
counted from 0) were recovered and why. The cost is decompressing twice (about half the time of
parsing what comes out); memory stays one chunk.
"""

from __future__ import annotations

import glob
import os
import zlib
from collections.abc import Iterator
from pathlib import Path

from llmtail.agent.reading.readbuffer import ChunkData, TurnBuffer

CHUNK_SIZE = 1 << 20
_IN_CHUNK = 64 * 1024  # compressed bytes read at a time
_GZIP_MAGIC = b"\x1f\x8b"


class DamagedFileError(Exception):
    """The file could be read only up to `recovered` bytes (of decompressed content)."""

    def __init__(self, path: str, recovered: int, reason: str) -> None:
        super().__init__(f"{path}: damaged ({reason}); recovered {recovered:,} bytes before it")
        self.path = path
        self.recovered = recovered
        self.reason = reason


class PathError(Exception):
    """A path named by the user that cannot be read; the message says which and why."""


def is_gzip(path: str | Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def expand_paths(patterns: list[str]) -> list[str]:
    """Globs and plain paths -> existing regular files, each once, in the order named.

    A pattern that matches nothing is the user's mistake and is reported, never skipped quietly.
    """
    seen: set[str] = set()
    out: list[str] = []
    for pattern in patterns:
        matches = sorted(glob.glob(pattern, recursive=True)) if glob.has_magic(pattern) else []
        if not glob.has_magic(pattern):
            if not os.path.exists(pattern):
                raise PathError(f"{pattern}: no such file")
            matches = [pattern]
        if not matches:
            raise PathError(f"{pattern}: the pattern matches no file")
        for match in matches:
            if os.path.isdir(match):
                if not glob.has_magic(pattern):
                    raise PathError(
                        f"{match}: is a directory (name files or a glob like DIR/*.log)"
                    )
                continue
            if not os.access(match, os.R_OK):
                raise PathError(f"{match}: permission denied (the agent's user cannot read it)")
            real = os.path.realpath(match)
            if real not in seen:
                seen.add(real)
                out.append(match)
    return out


def read_chunks(path: str, start: int = 0, chunk_size: int = CHUNK_SIZE) -> Iterator[ChunkData]:
    """Yield the file's content from `start` to its end, decompressing `.gz` by magic bytes.

    A plain file's chunks are views of two buffers kept for the whole read, taken in turn (a
    caller's loop still holds the last chunk while the next is read, not the one before). A
    chunk held longer is never read over: that read takes a fresh buffer, so whoever keeps
    bytes copies them to keep reads in the two buffers."""
    if is_gzip(path):
        yield from _read_gzip(path, start, chunk_size)
        return
    with open(path, "rb") as f:
        buffers = (TurnBuffer(chunk_size), TurnBuffer(chunk_size))
        offset, turn = start, 0
        while True:
            buffer = buffers[turn % 2]
            buffer.start_turn()
            chunk = buffer.pread(f.fileno(), chunk_size, offset)
            if not chunk:
                return
            offset, turn = offset + len(chunk), turn + 1
            yield chunk


def _read_gzip(path: str, start: int, chunk_size: int) -> Iterator[bytes]:
    sound, damage = _verify_gzip(path, chunk_size)
    position = 0
    try:
        for chunk in _gunzip(path, chunk_size):
            if position >= sound:
                break
            end = min(position + len(chunk), sound)
            if end > start:
                yield chunk[max(0, start - position) : end - position]
            position = end
    except _GzipDamageError:
        pass  # the verify pass found it first: it is reported below
    if damage is not None:
        raise DamagedFileError(path, sound, damage)


class _GzipDamageError(Exception):
    """Where the gzip stream went wrong: `sound` bytes before it can be trusted."""

    def __init__(self, sound: int, reason: str) -> None:
        super().__init__(reason)
        self.sound = sound
        self.reason = reason


def _verify_gzip(path: str, chunk_size: int) -> tuple[int, str | None]:
    """(bytes that may be handed on, why not more or None), by decompressing to the end."""
    total = 0
    try:
        for chunk in _gunzip(path, chunk_size):
            total += len(chunk)
    except _GzipDamageError as damage:
        return damage.sound, damage.reason
    return total, None


def _gunzip(path: str, chunk_size: int) -> Iterator[bytes]:
    """Decompressed content, member after member; `_GzipDamageError` where it goes wrong."""
    members = _Members()
    with open(path, "rb") as f:
        while data := f.read(_IN_CHUNK):
            yield from members.feed(data, chunk_size)
    yield from members.end(chunk_size)


class _Members:
    """Decompresses gzip members one after the other. At most `chunk_size` bytes come out of
    one call to zlib, however well the input compresses, so memory stays bounded."""

    def __init__(self) -> None:
        self.total = 0  # content bytes so far
        self.member = 1
        self.member_start = 0  # content offset where the current member began
        self._d: zlib._Decompress | None = None  # None between members

    def feed(self, data: bytes, chunk_size: int) -> Iterator[bytes]:
        while data:
            if self._d is None:
                data = data.lstrip(b"\0")  # NUL padding between members, as gzip allows
                if not data:
                    return
                if not _GZIP_MAGIC.startswith(data[:2]):
                    raise _GzipDamageError(
                        self.total, f"what follows member {self.member - 1} is not gzip"
                    )
                self._d = zlib.decompressobj(zlib.MAX_WBITS | 16)
            try:
                out = self._d.decompress(data, chunk_size)
            except zlib.error as exc:
                reason = f"member {self.member}: {_zlib_reason(exc)}"
                raise _GzipDamageError(self.member_start, reason) from None
            if out:
                self.total += len(out)
                yield out
            if self._d.eof:
                data = self._d.unused_data
                self._d = None
                self.member += 1
                self.member_start = self.total
            else:
                data = self._d.unconsumed_tail

    def end(self, chunk_size: int) -> Iterator[bytes]:
        """The file ended: inside a member, what decoded before the cut is the readable part."""
        if self._d is None:
            return
        try:
            out = self._d.flush()  # what zlib still held: at most a match or a window
        except zlib.error:
            out = b""
        for i in range(0, len(out), chunk_size):
            piece = out[i : i + chunk_size]
            self.total += len(piece)
            yield piece
        reason = f"member {self.member}: the file ends before the member does (truncated)"
        raise _GzipDamageError(self.total, reason)


def _zlib_reason(exc: zlib.error) -> str:
    text = str(exc)
    if "incorrect data check" in text or "incorrect length check" in text:
        return "its content does not match its checksum (corrupt)"
    return f"invalid compressed data ({text.rpartition(': ')[2]})"
