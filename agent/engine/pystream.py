"""The Python engine: the Stream contract built on the reference parsers (`parsers/`).

It is the readable definition of what the compiled core does, used by `engine: python`, by the
differential tests and for diagnosis. Per record it frames, parses, stamps, filters by the time
window, masks secrets and personal data (parsers/mask.py) and hands the fields to the batch
builder; nothing per record leaves it.
"""

from __future__ import annotations

from llmtail.agent.engine.batch import BatchBuilder
from llmtail.agent.engine.loggroup import LogEncoder
from llmtail.agent.engine.stream import SealedBatch, StreamSettings
from llmtail.agent.reading.readbuffer import ChunkData
from llmtail.parsers.mask import Masker
from llmtail.parsers.multiline import Frame
from llmtail.parsers.record import RecordParser


class PyStream:
    """One file read from `offset` (see agent.engine.stream.Stream)."""

    def __init__(
        self,
        settings: StreamSettings,
        parser: RecordParser,
        encoder: LogEncoder,
        key: str,
        path: str,
        offset: int,
        pack_prefix: str,
        pack_seq: int,
        masker: Masker | None = None,
    ) -> None:
        self._s = settings
        self._mask = masker.mask_fields if masker is not None and masker.active else None
        self._parse = parser.parse
        self._asm = parser.assembler(offset)
        self._batch = BatchBuilder(settings, encoder, key, path, pack_prefix, pack_seq)
        self._windowed = settings.since is not None or settings.until is not None
        self._side = 0  # the time window side of the last timed record: -1 before, 0 in, 1 after

    @property
    def offset(self) -> int:
        return self._asm.offset

    @property
    def pending_bytes(self) -> int:
        return self._asm.pending_bytes

    @property
    def next_pack_seq(self) -> int:
        return self._batch.next_seq

    def feed(self, data: ChunkData, now: float, wall: float) -> list[SealedBatch]:
        # The reference's assembler keeps slices of what it is fed: bytes of its own (a copy
        # of a view of the reader's buffer; `bytes` itself when it is one).
        return self._add(self._asm.feed(bytes(data), now), now, wall)

    def due(self, now: float, wall: float, caught_up: bool) -> list[SealedBatch]:
        out: list[SealedBatch] = []
        if caught_up:
            s = self._s
            out += self._add(self._asm.due(now, s.partial_after, s.pending_after), now, wall)
        started = self._batch.started
        if started is not None and now - started >= self._s.linger:
            out.append(self._batch.seal())
        return out

    def drain(self, wall: float) -> list[SealedBatch]:
        return self._add(self._asm.drain(), 0.0, wall) + self.cut()

    def cut(self) -> list[SealedBatch]:
        return [] if self._batch.empty else [self._batch.seal()]

    def flush_pending(self, wall: float) -> list[SealedBatch]:
        return self.drain(wall)

    def rename(self, path: str) -> None:
        self._batch.path = path

    def _add(self, frames: list[Frame], now: float, wall: float) -> list[SealedBatch]:
        out: list[SealedBatch] = []
        if not frames:
            return out
        stamp: tuple[int, int] | None = None
        add, parse = self._batch.add, self._parse
        for frame in frames:
            record = parse(frame)
            fields = record.fields
            t = record.time
            own = t is not None
            if t is None:
                if stamp is None:
                    stamp = (int(wall), int((wall % 1) * 1e9))
                t, ns = stamp
            else:
                ns = record.time_ns
            if self._windowed:
                side = self._window_side(fields, t, ns)
                if side:
                    out += self._batch.skip(side > 0, frame.end, frame.size, now)
                    continue
            masked = self._mask(fields) if self._mask is not None else None
            out += add(fields, t, ns, own, frame.end, frame.size, frame.line_no, now, masked)
        return out

    def _window_side(self, fields: dict[str, str | int | None], t: int, ns: int) -> int:
        """-1 before `since`, 1 at or after `until`, 0 inside. A record without a reliable time
        of its own (it did not parse) follows the record before it in this stream."""
        if "__raw_log__" in fields:
            return self._side
        when = t + ns / 1e9
        since, until = self._s.since, self._s.until
        side = -1 if since is not None and when < since else 0
        side = 1 if until is not None and when >= until else side
        self._side = side
        return side
