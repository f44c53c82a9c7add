"""Types of the compiled core's bindings (core/src/lib.rs)."""

from collections.abc import Callable
from typing import Any

from llmtail.agent.engine.llm_aggregate import LlmAggregate as PyLlmAggregate

def version() -> str: ...
def count_lines(data: bytes | ReadChunk) -> int:
    """Newlines in `data`, counted without the GIL."""

def _panic_in_guard(what: str, offset: int) -> None:
    """Panics inside the wrapper of every Stream call (the panic-path test)."""

class PatternError(ValueError):
    """The pattern cannot be compiled (the text of parsers.pattern.PatternError)."""

# (fields, time, time_ns, flags, end, size, line_no) of one record.
RecordRow = tuple[dict[str, str | int | None], int | None, int, int, int, int, int]
# The same, and the record's text.
TextRow = tuple[dict[str, str | int | None], int | None, int, int, int, int, int, str]

class Records:
    """Framing and parsing of one file, record by record (debug binding for tests, and
    `llmtail trace`'s reader)."""

    def __init__(
        self,
        pattern: str,
        timezone: str | None,
        payload_separator: str,
        payload_fields: list[tuple[str, str]],
        max_record_bytes: int,
        encoding: str,
        offset: int = 0,
        feedback_fields: list[tuple[str, str]] | None = None,
    ) -> None: ...
    def feed(self, data: bytes | ReadChunk, now: float) -> list[RecordRow]: ...
    def due(self, now: float, partial_after: float, pending_after: float) -> list[RecordRow]: ...
    def drain(self) -> list[RecordRow]: ...
    def feed_containing(self, data: bytes | ReadChunk, needles: list[str]) -> list[TextRow]:
        """Only the records whose text holds one of `needles`; the others are not parsed."""
    def drain_containing(self, needles: list[str]) -> list[TextRow]: ...

FieldItems = list[tuple[str, str | int | None]]

def encode_log(fields: FieldItems, time: int, time_ns: int) -> bytes: ...
def encode_trailer(topic: str, source: str, tags: list[tuple[str, str]]) -> bytes: ...
def encode_line(
    fields: FieldItems,
    time: int,
    time_ns: int,
    topic: str,
    source: str,
    tags: list[tuple[str, str]],
) -> bytes: ...

class BatchBytes:
    """A LogGroup batch's `data`: the core's buffer, read-only through the buffer protocol
    (memoryview, lz4, hashlib, writes), no copy; back to its Stream when let go."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __eq__(self, other: object) -> bool: ...

class ReadBuffer:
    """The reader's kept buffer: reads fill it from its start to its end, turn after turn."""

    def __init__(self, capacity: int) -> None: ...
    @property
    def capacity(self) -> int: ...
    @property
    def room(self) -> int: ...
    def reset(self) -> bool:
        """Start a turn at the beginning; False (nothing changed) while a chunk of it lives."""
    def pread(self, fd: int, n: int, offset: int) -> ReadChunk:
        """Up to `n` bytes of `fd` from `offset`, without the GIL; OSError as os.pread."""

class ReadChunk:
    """Bytes read into a ReadBuffer, unchanged while this object (or a view of it) lives;
    read-only through the buffer protocol."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __eq__(self, other: object) -> bool: ...

def set_spare_limit(bytes: int) -> None:
    """Caps the capacity all Streams' spare buffers hold together, with the bytes written
    into the kept lz4 output buffers."""

def spare_bytes() -> int:
    """Capacity all Streams' spare buffers hold now, and the bytes written into the kept lz4
    output buffers."""

def lz4_block(data: object) -> BatchBytes:
    """`data` (bytes, BatchBytes or ReadChunk, else TypeError) as one lz4 block without a size
    prefix (python-lz4's blocks), compressed without the GIL into a kept output buffer, which
    goes back to the pool when the result goes."""

def set_lz4_spares(n: int) -> None:
    """Keep at most `n` lz4 output buffers between blocks."""

def lz4_spares() -> int:
    """lz4 output buffers kept now."""

def lz4_release_idle() -> int:
    """Frees the kept lz4 output buffers if no block was made since the last call; how many."""

class Parser:
    """The compiled parser of one parsers.record.ParserSettings, shared by the Streams of an
    input (`Stream(..., parser=)`)."""

    def __init__(self, settings: object) -> None: ...

# (model, workspace, record-time minute, calls, tokens) of a QPM/TPM window.
WindowCell = tuple[str, str, int, int, int]

class LlmAggregate:
    """agent.engine.llm_aggregate.LlmAggregate held in Rust: a core batch's `llm`, and the
    totals made of them (same `merge` semantics); `snapshot()` reads it as the Python one."""

    def __init__(self, max_label_sets: int = 2000, max_minute_cells: int = 1_000_000) -> None: ...
    @property
    def max_label_sets(self) -> int: ...
    @property
    def max_minute_cells(self) -> int: ...
    @property
    def label_sets(self) -> int: ...
    def merge(self, other: LlmAggregate, minutes: bool = True) -> None: ...
    def merge_window(self, other: LlmAggregate, lo: int, hi: int) -> list[WindowCell]: ...
    def snapshot(self) -> PyLlmAggregate:
        """The Python LlmAggregate of these numbers."""

class Stream:
    """The compiled Stream of docs/engine.md; sealed batches are dicts with the fields of
    agent.engine.stream.SealedBatch (`llm` as an `LlmAggregate` of this module), or
    `make(**fields)` if given."""

    def __init__(
        self,
        settings: object,
        key: str,
        path: str,
        offset: int,
        pack_prefix: str,
        pack_seq: int,
        make: Callable[..., Any] | None = None,
        parser: Parser | None = None,
    ) -> None: ...
    @property
    def offset(self) -> int: ...
    @property
    def pending_bytes(self) -> int: ...
    @property
    def next_pack_seq(self) -> int: ...
    def next_due(self) -> float | None: ...
    def feed(self, data: bytes | ReadChunk, now: float, wall: float) -> list[Any]: ...
    def due(self, now: float, wall: float, caught_up: bool) -> list[Any]: ...
    def drain(self, wall: float) -> list[Any]: ...
    def cut(self) -> list[Any]: ...
    def flush_pending(self, wall: float) -> list[Any]: ...
    def rename(self, path: str) -> None: ...

def mask_text(
    settings: object, key: bytes | None, text: str
) -> tuple[str | None, list[tuple[str, int]]]:
    """The core's masking of one text (None: nothing replaced) and the replacements per rule."""
