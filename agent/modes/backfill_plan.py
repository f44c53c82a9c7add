"""What a backfill reads, in which order and from where: planning before anything is sent.

- Order: by the time of each file's earliest parsable record (files without one: by mtime), so
  `app.log.2.gz` goes before `app.log.1` whatever the names say. The head of each file goes
  through the same engine as the run itself, so a GBK input is probed as GBK.
- Resume: per file content (a hash of its head), the offset every record before which is final.
  A file done and unchanged on disk is not even opened.
"""

from __future__ import annotations

import fnmatch
import os
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from llmtail.agent.config import Config
from llmtail.agent.engine.engine import Engine
from llmtail.agent.modes.pipeline import UserError
from llmtail.agent.reading.fingerprint import HEAD_BYTES
from llmtail.agent.reading.wholefile import DamagedFileError, is_gzip, read_chunks
from llmtail.agent.state.backfill_state import BackfillState, FileProgress

CHUNK_SIZE = 64 * 1024
PROBE_BYTES = 256 * 1024  # how far into a file to look for its first timestamp


def parse_when(text: str, timezone: str | None, option: str) -> float:
    """`2025-07-09`, `2025-07-09 14:00`, `2025-07-09T14:00:00` in the parser's zone -> epoch s."""
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UserError(
            f"{option} {text!r}: expected a date or time like 2025-07-09, 2025-07-09 14:00 "
            "or 2025-07-09T14:00:00"
        ) from None
    if when.tzinfo is None:
        zone = ZoneInfo(timezone) if timezone else None
        when = when.replace(tzinfo=zone) if zone else when.astimezone()
    return when.timestamp()


@dataclass(slots=True)
class PlannedFile:
    path: str
    input_index: int
    head: bytes  # the first HEAD_BYTES of its decompressed content
    first_time: float  # its first record's time, or its mtime
    disk_size: int
    content_size: int  # decompressed size (a .gz's ISIZE trailer), for the ETA
    progress: FileProgress | None = None  # set by `plan`
    same_as: str | None = None  # a path read in this run with the same content

    def complete(self, p: FileProgress) -> bool:
        """Delivered to its end already: unchanged on disk, or since renamed or compressed
        (a .gz trailer holds its content size mod 2**32, which then equals the offset)."""
        return p.done and (p.disk_size == self.disk_size or self.content_size == p.offset % 2**32)

    @property
    def unreadable(self) -> bool:
        """Bytes on disk but no content at all: a .gz damaged in its first block."""
        return not self.head and self.disk_size > 0


def input_index_for(config: Config, path: str) -> int:
    """The input whose globs name `path` (its encoding applies); else the first input."""
    for i, inp in enumerate(config.inputs):
        if any(fnmatch.fnmatch(path, pattern) for pattern in inp.paths):
            return i
    return 0


def probe(path: str, engine: Engine, input_index: int) -> PlannedFile:
    """Read a file's head: its fingerprint and the time of its first parsable record."""
    st = os.stat(path)
    data = bytearray()
    try:
        for chunk in read_chunks(path, 0, CHUNK_SIZE):
            data += chunk
            if len(data) >= PROBE_BYTES:
                break
    except DamagedFileError:
        pass  # what was recovered is the head; the damage is reported when the file is read
    stream = engine.open(path, path, 0, input_index)
    sealed = stream.feed(bytes(data), 0.0, 0.0) + stream.drain(0.0)
    firsts = [b.first[0] for b in sealed if b.first is not None]
    first_time = min(firsts) / 1e9 if firsts else st.st_mtime
    content_size = st.st_size
    if is_gzip(path):
        content_size = _gzip_content_size(path, st.st_size)
    return PlannedFile(
        path, input_index, bytes(data[:HEAD_BYTES]), first_time, st.st_size, content_size
    )


def _gzip_content_size(path: str, disk_size: int) -> int:
    """The ISIZE trailer (content size mod 2**32), for the ETA; a guess when it is implausible
    (a truncated file ends in compressed data, not in a trailer)."""
    guess = disk_size * 8
    if disk_size < 18:
        return guess
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        size: int = struct.unpack("<I", f.read(4))[0]
    # Deflate cannot expand data by more than a few bytes, nor compress it beyond ~1032:1.
    return size if disk_size - 64 <= size <= disk_size * 1032 else guess


def plan(
    paths: Sequence[str],
    config: Config,
    engine: Engine,
    state: BackfillState | None,
) -> list[PlannedFile]:
    """Probe, order by content time, and match each file to its saved progress."""
    files = []
    for path in paths:
        index = input_index_for(config, path)
        try:
            files.append(probe(path, engine, index))
        except OSError as exc:
            raise UserError(f"{path}: cannot read: {exc.strerror or exc}") from None
    files.sort(key=lambda f: (f.first_time, f.path))
    if state is None:
        return files
    claimed: dict[str, str] = {}
    for f in files:
        if not f.head:
            continue  # empty: nothing to send, nothing to remember
        progress = state.find(f.head) or state.add(f.path, f.head)
        if progress.key in claimed:
            f.same_as = claimed[progress.key]
            continue
        claimed[progress.key] = f.path
        f.progress = progress
    return files
