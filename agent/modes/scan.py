"""Records of whole local files for `llmtail trace` (nothing is sent).

Files (plain, rotated, .gz by magic bytes) come through `read_chunks`. `scan` yields every
record through the Python reference parser. `scan_containing` yields only the records whose
text holds one of some needles, through either engine. A record's trace and request ids are
substrings of its text, so the filter never drops a record that `trace` wants. The core frames
the rest without parsing them (and without making a Python object per record), which is what
makes a trace through gigabytes of history take seconds.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Literal

from llmtail.agent.reading.wholefile import DamagedFileError, read_chunks
from llmtail.parsers.multiline import Frame
from llmtail.parsers.record import FieldValue, ParserSettings, Record, RecordParser

try:
    from llmtail import _core
except ImportError:  # not built: the reference parser still traces
    _core = None  # type: ignore[assignment]

EngineKind = Literal["core", "python"]


@dataclass(slots=True)
class Scanned:
    """One record with where it came from."""

    path: str
    line_no: int  # 1-based number of its first line in the file (decompressed, for .gz)
    text: str  # as the application wrote it (bad bytes as \\xNN)
    fields: dict[str, FieldValue]
    time: int | None
    time_ns: int

    @classmethod
    def of(cls, path: str, frame: Frame, record: Record) -> Scanned:
        return cls(path, frame.line_no, frame.text, record.fields, record.time, record.time_ns)


def scan(path: str, parser: RecordParser, damaged: list[str]) -> Iterator[Scanned]:
    """Every record of `path` in file order, through the reference parser; a damaged .gz
    yields what it could, noted in `damaged` (the message names the file and how much was
    read)."""
    return _python_scan(path, parser, None, damaged)


def scan_containing(
    path: str,
    parser: RecordParser,
    needles: Sequence[str],
    damaged: list[str],
    engine: EngineKind = "python",
) -> Iterator[Scanned]:
    """The records of `path` whose text holds one of `needles`, in file order, through
    `engine` (the core when built: `core_available()`)."""
    if engine == "core":
        return _core_scan(path, parser.settings, list(needles), damaged)
    return _python_scan(path, parser, needles, damaged)


def core_available() -> bool:
    return _core is not None


def core_records(s: ParserSettings, offset: int = 0) -> _core.Records:
    """The core's framing and parsing of one file read from `offset`, under `s`."""
    return _core.Records(
        s.pattern,
        s.timezone,
        s.payload_separator,
        list(s.payload_fields),
        s.max_record_bytes,
        s.encoding,
        offset,
        list(s.feedback_fields),
    )


def _python_scan(
    path: str, parser: RecordParser, needles: Sequence[str] | None, damaged: list[str]
) -> Iterator[Scanned]:
    assembler = parser.assembler(0)

    def wanted(frames: Iterable[Frame]) -> Iterator[Scanned]:
        for frame in frames:
            if needles is None or any(n in frame.text for n in needles):
                yield Scanned.of(path, frame, parser.parse(frame))

    try:
        for chunk in read_chunks(path):
            # The reference's assembler keeps slices of what it is fed: bytes of its own.
            yield from wanted(assembler.feed(bytes(chunk), 0.0))
    except DamagedFileError as exc:
        damaged.append(str(exc))
    yield from wanted(assembler.drain())


def _core_scan(
    path: str, s: ParserSettings, needles: list[str], damaged: list[str]
) -> Iterator[Scanned]:
    records = core_records(s)

    def rows(found: list[_core.TextRow]) -> Iterator[Scanned]:
        for fields, time, time_ns, _flags, _end, _size, line_no, text in found:
            yield Scanned(path, line_no, text, fields, time, time_ns)

    try:
        for chunk in read_chunks(path):
            yield from rows(records.feed_containing(chunk, needles))
    except DamagedFileError as exc:
        damaged.append(str(exc))
    yield from rows(records.drain_containing(needles))
