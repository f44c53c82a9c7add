"""The engine's contract: settings in, a Stream per file read, sealed batches out (docs/engine.md).

A sealed batch is plain data: the records are already encoded in the output's wire form, and
what the rest of the agent needs per record (where each one ends in `data`, its time) is packed
into bytes. So nothing per record crosses this boundary as a Python object, whichever engine
(the compiled core or the Python reference) produced it.
"""

from __future__ import annotations

import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from llmtail.agent.engine.llm_aggregate import DEFAULT_MAX_LABEL_SETS, Aggregate
from llmtail.agent.reading.readbuffer import ChunkData
from llmtail.parsers.mask import MaskSettings
from llmtail.parsers.record import ParserSettings

# "count": no bytes at all, for the modes that read only a batch's counters (validate and
# report without --records); its batches seal by max_records alone.
Wire = Literal["loggroup", "ndjson", "count"]
MAX_ERROR_EXAMPLES = 20  # per batch: validate shows the first ones, metrics only count


class Encoded(Protocol):
    """A batch's encoded bytes: `bytes` (the Python engine, and the core's NDJSON), or the
    core's `BatchBytes` (its LogGroup buffer, handed over without a copy and reused once let
    go). Read through the buffer protocol (memoryview, lz4, hashlib, file and socket writes),
    never by index or slice."""

    def __len__(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """Everything a Stream depends on; one per input (inputs differ in encoding)."""

    parser: ParserSettings
    wire: Wire = "ndjson"
    max_records: int = 4096
    max_bytes: int = 3 * 1024 * 1024  # encoded bytes; a bigger single record travels alone
    linger: float = 1.0
    partial_after: float = 60.0
    pending_after: float = 5.0
    topic: str = ""
    source: str = "127.0.0.1"
    hostname: str = "localhost"
    tags: tuple[tuple[str, str], ...] = ()
    since: float | None = None  # backfill's window: epoch s, inclusive
    until: float | None = None  # exclusive
    max_label_sets: int = DEFAULT_MAX_LABEL_SETS  # of a batch's LLM aggregate
    mask: MaskSettings | None = None  # secrets and personal data masked before encoding
    mask_key: bytes | None = field(default=None, repr=False)  # for hmac:sha256 replacements


@dataclass(slots=True)
class SealedBatch:
    """Records of one file, encoded, with what delivery and bookkeeping need to know."""

    key: str
    path: str
    end: int  # offset just past the last record's last line: what a checkpoint may take
    records: int
    raw_bytes: int  # file bytes the records cover
    # loggroup: the whole LogGroup, the concatenated `Logs` entries then the trailer (posted as
    # it is, no copy); ndjson: whole lines; count: b""
    data: Encoded
    trailer: bytes  # loggroup: Topic, Source, LogTags (also at the end of `data`); else b""
    bounds: bytes  # u32 LE: end of each record in `data`
    times: bytes  # u32 LE: each record's __time__
    min_time: int
    max_time: int
    pack_seq: int
    events: dict[str, int] = field(default_factory=dict)
    parse_errors: int = 0
    internal_errors: int = 0  # of those, the parser's own bugs (logged once per kind)
    error_examples: list[tuple[int, str]] = field(default_factory=list)
    skipped_before: int = 0
    skipped_after: int = 0
    first: tuple[int, str] | None = None  # (epoch ns, `time` text) of the earliest timed record
    last: tuple[int, str] | None = None
    llm: Aggregate | None = None  # its llm_call and feedback records, aggregated
    masked: dict[str, int] = field(default_factory=dict)  # values masked, by rule
    id: int = -1  # set by the Ledger when registered

    @property
    def memory(self) -> int:
        """Bytes this batch holds until its outcome: the exact charge against in-flight memory."""
        return len(self.data) + len(self.trailer) + len(self.bounds) + len(self.times)

    def ends(self) -> list[int]:
        """Each record's end offset in `data` (unpacked on demand: splits and restamps only)."""
        return _u32s(self.bounds)

    def record_times(self) -> Sequence[int]:
        """Each record's own time, as a packed array: the SLS output reads two of them (the
        batch's min and max decide) and a list made 4,096 ints per batch for nothing."""
        return _u32_array(self.times)


def _u32s(packed: bytes) -> list[int]:
    return _u32_array(packed).tolist()


def _u32_array(packed: bytes) -> array.array[int]:
    values = array.array("I")
    values.frombytes(packed)
    return values


class Stream(Protocol):
    """One file read: bytes in order, sealed batches out. Implementations never raise on input."""

    @property
    def offset(self) -> int:
        """Bytes consumed so far (where the next chunk starts)."""
        ...

    @property
    def pending_bytes(self) -> int:
        """Bytes held in an unfinished record or partial line."""
        ...

    @property
    def next_pack_seq(self) -> int: ...

    def feed(self, data: ChunkData, now: float, wall: float) -> list[SealedBatch]:
        """Bytes at `offset`; `now` is monotonic (linger, idleness), `wall` stamps timeless
        records. `data` may be a view of the reader's buffer, valid during the call only: a
        Stream that keeps bytes of it copies them."""
        ...

    def due(self, now: float, wall: float, caught_up: bool) -> list[SealedBatch]:
        """Batches whose linger passed; idle flushes of held records only when `caught_up`."""
        ...

    def drain(self, wall: float) -> list[SealedBatch]:
        """End of the file: everything held, a partial last line included."""
        ...

    def cut(self) -> list[SealedBatch]:
        """Seal the open batch; held records stay held."""
        ...

    def flush_pending(self, wall: float) -> list[SealedBatch]:
        """Emit held records as they are (flagged partial) and seal: the memory bound."""
        ...

    def rename(self, path: str) -> None:
        """Later batches carry `path`; the open one keeps the name its records were read under."""
        ...
