"""Records of whole local files, for `llmtail report` and `llmtail trace` (nothing is sent).

`scan` is the one reading loop both commands share: files (plain, rotated, .gz by magic bytes)
through `read_chunks`, frames through the parser's assembler, records through `parse`. The
engine's Stream will take its place; nothing else here knows how files are read.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from llmtail.agent.reading.wholefile import DamagedFileError, read_chunks
from llmtail.parsers.multiline import Frame
from llmtail.parsers.record import Record, RecordParser


@dataclass(slots=True)
class Scanned:
    """One record with where it came from."""

    path: str
    frame: Frame
    record: Record


def scan(path: str, parser: RecordParser, damaged: list[str]) -> Iterator[Scanned]:
    """Every record of `path` in file order; a damaged .gz yields what it could, noted in
    `damaged` (the message names the file and how much was read)."""
    assembler = parser.assembler(0)
    try:
        for chunk in read_chunks(path):
            for frame in assembler.feed(chunk, 0.0):
                yield Scanned(path, frame, parser.parse(frame))
    except DamagedFileError as exc:
        damaged.append(str(exc))
    for frame in assembler.drain():
        yield Scanned(path, frame, parser.parse(frame))
