"""Records of one file encoded into the open batch, and sealed by count, size and linger.

The Python engine's half of the Stream contract (docs/engine.md): `pystream.py` frames and parses,
this module encodes and counts. The rules here are the ones the compiled core mirrors byte for
byte, so they are spelled out:

- a record is encoded with the open batch's envelope; if the batch already holds records and
  this one would take its encoded bytes over `max_bytes`, the batch seals first and the record is
  encoded again with the next batch's envelope (ndjson lines carry the `__pack_id__`);
- after adding, the batch seals at `max_records` records or `max_bytes` encoded bytes;
- a batch opens with its first record (or its first skipped one): `linger` counts from there;
- each sealed batch takes the stream's next `__pack_id__` sequence.
"""

from __future__ import annotations

import struct
from collections import Counter
from collections.abc import Mapping

from llmtail.agent.engine.envelope import Envelope
from llmtail.agent.engine.llm_aggregate import LlmAggregate
from llmtail.agent.engine.loggroup import LogEncoder, encode_trailer
from llmtail.agent.engine.ndjson import encode_line, envelope_closing
from llmtail.agent.engine.stream import MAX_ERROR_EXAMPLES, SealedBatch, StreamSettings
from llmtail.parsers.record import INTERNAL_ERROR

_U32 = struct.Struct("<I").pack
FieldValue = str | int | None
_AGGREGATED = ("llm_call", "feedback")


def envelope_of(settings: StreamSettings, path: str, pack_prefix: str, seq: int) -> Envelope:
    """The topic, source and tags of one LogGroup of a file (design.md section 6)."""
    tags = (
        ("__hostname__", settings.hostname),
        ("__path__", path),
        ("__pack_id__", f"{pack_prefix}-{seq:X}"),
        *settings.tags,
    )
    return Envelope(settings.topic, settings.source, tags)


class BatchBuilder:
    """The open batch of one Stream."""

    def __init__(
        self,
        settings: StreamSettings,
        encoder: LogEncoder,
        key: str,
        path: str,
        pack_prefix: str,
        pack_seq: int,
    ) -> None:
        self._s = settings
        self._encoder = encoder
        self._ndjson = settings.wire == "ndjson"
        self._loggroup = settings.wire == "loggroup"
        self.key = key
        self.path = path
        self._prefix = pack_prefix
        self.next_seq = pack_seq
        self.started: float | None = None  # `now` of the open batch's first record
        self._reset()

    def _reset(self) -> None:
        self._parts: list[bytes] = []
        self._nbytes = 0
        self._bounds: list[bytes] = []
        self._times: list[bytes] = []
        self._min = self._max = 0
        self._end = 0
        self._raw = 0
        self._events: Counter[str] = Counter()
        self._errors = 0
        self._internal = 0
        self._examples: list[tuple[int, str]] = []
        self._before = self._after = 0
        self._first: tuple[int, str] | None = None
        self._last: tuple[int, str] | None = None
        self._llm: LlmAggregate | None = None
        self._masked: Counter[str] = Counter()
        self._closing = b""
        self._path = self.path
        self.started = None

    @property
    def empty(self) -> bool:
        return self.started is None

    def _open(self, now: float) -> None:
        self.started = now
        self._path = self.path
        if self._ndjson:
            env = envelope_of(self._s, self._path, self._prefix, self.next_seq)
            self._closing = envelope_closing(env)

    def _encode(self, fields: Mapping[str, FieldValue], t: int, ns: int) -> bytes:
        if self._ndjson:
            return encode_line(fields, t, ns, self._closing)
        if self._loggroup:
            return self._encoder.encode_log(fields, t, ns)
        return b""  # wire "count": nobody reads the bytes

    def skip(self, after: bool, end: int, size: int, now: float) -> list[SealedBatch]:
        """A record outside the time window: covered (its offset may be saved), not sent."""
        if self.started is None:
            self._open(now)
        if after:
            self._after += 1
        else:
            self._before += 1
        self._end, self._raw = end, self._raw + size
        return []

    def add(
        self,
        fields: Mapping[str, FieldValue],
        t: int,
        ns: int,
        own_time: bool,
        end: int,
        size: int,
        line_no: int,
        now: float,
        masked: dict[str, int] | None = None,
    ) -> list[SealedBatch]:
        """`masked`: what masking replaced in this record, by rule (counted with it)."""
        out: list[SealedBatch] = []
        if self.started is None:
            self._open(now)
        encoded = self._encode(fields, t, ns)
        if self._bounds and self._nbytes + len(encoded) > self._s.max_bytes:
            out.append(self.seal())
            self._open(now)
            encoded = self._encode(fields, t, ns)
        self._parts.append(encoded)
        self._nbytes += len(encoded)
        self._bounds.append(_U32(self._nbytes))
        self._times.append(_U32(t & 0xFFFFFFFF))
        if len(self._bounds) == 1:
            self._min = self._max = t
        elif t < self._min:
            self._min = t
        elif t > self._max:
            self._max = t
        self._end, self._raw = end, self._raw + size
        self._count(fields, t, ns, own_time, line_no)
        if masked:
            self._masked.update(masked)
        if len(self._bounds) >= self._s.max_records or self._nbytes >= self._s.max_bytes:
            out.append(self.seal())
        return out

    def _count(
        self, fields: Mapping[str, FieldValue], t: int, ns: int, own_time: bool, line_no: int
    ) -> None:
        kind = fields.get("event")
        self._events[kind if isinstance(kind, str) else "raw"] += 1
        reason = fields.get("parse_error")
        if reason is not None:
            self._errors += 1
            if str(reason).startswith(INTERNAL_ERROR):
                self._internal += 1
            if len(self._examples) < MAX_ERROR_EXAMPLES:
                self._examples.append((line_no, str(reason)))
        if own_time:
            text = fields.get("time")
            stamp = (t * 1_000_000_000 + ns, text if isinstance(text, str) else "")
            if self._first is None or stamp[0] < self._first[0]:
                self._first = stamp
            if self._last is None or stamp[0] > self._last[0]:
                self._last = stamp
        if kind in _AGGREGATED and reason is None:
            if self._llm is None:
                self._llm = LlmAggregate(self._s.max_label_sets)
            self._llm.add(fields, t if own_time else None)

    def seal(self) -> SealedBatch:
        """The open batch as it is (call only when not `empty`)."""
        seq = self.next_seq
        self.next_seq += 1
        trailer = b""
        if self._loggroup:
            env = envelope_of(self._s, self._path, self._prefix, seq)
            trailer = encode_trailer(env.topic, env.source, env.tags)
            self._parts.append(trailer)  # `data` is the whole LogGroup: sent as it is
        batch = SealedBatch(
            key=self.key,
            path=self._path,
            end=self._end,
            records=len(self._bounds),
            raw_bytes=self._raw,
            data=b"".join(self._parts),
            trailer=trailer,
            bounds=b"".join(self._bounds),
            times=b"".join(self._times),
            min_time=self._min,
            max_time=self._max,
            pack_seq=seq,
            events=dict(self._events),
            parse_errors=self._errors,
            internal_errors=self._internal,
            error_examples=self._examples,
            skipped_before=self._before,
            skipped_after=self._after,
            first=self._first,
            last=self._last,
            llm=self._llm,
            masked=dict(self._masked),
        )
        self._reset()
        return batch
