"""Reading whole files to their end, plain or gzip: what `validate` and `backfill` consume.

Offsets of a `.gz` file are positions in its decompressed content, so a resumed backfill skips
what was delivered by decompressing and discarding it. A truncated or corrupt gzip stream ends
the read with `DamagedFileError`, carrying how many bytes were recovered; the bytes before the
damage were already yielded.
"""

from __future__ import annotations

import glob
import gzip
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

CHUNK_SIZE = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"


class DamagedFileError(Exception):
    """The file could be read only up to `recovered` bytes (of decompressed content)."""

    def __init__(self, path: str, recovered: int, reason: str) -> None:
        super().__init__(f"{path}: damaged after {recovered} bytes: {reason}")
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


def read_chunks(path: str, start: int = 0, chunk_size: int = CHUNK_SIZE) -> Iterator[bytes]:
    """Yield the file's content from `start` to its end, decompressing `.gz` by magic bytes."""
    if is_gzip(path):
        yield from _read_gzip(path, start, chunk_size)
        return
    with open(path, "rb") as f:
        f.seek(start)
        while chunk := f.read(chunk_size):
            yield chunk


def _read_gzip(path: str, start: int, chunk_size: int) -> Iterator[bytes]:
    position = 0
    with gzip.open(path, "rb") as raw:
        stream: BinaryIO = raw  # type: ignore[assignment]
        while True:
            try:
                chunk = stream.read(chunk_size)
            except (EOFError, OSError, zlib.error) as exc:
                raise DamagedFileError(path, position, str(exc) or type(exc).__name__) from None
            if not chunk:
                return
            end = position + len(chunk)
            if end > start:
                yield chunk[max(0, start - position) :]
            position = end
