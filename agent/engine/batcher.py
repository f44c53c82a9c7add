"""Groups events into batches within a sink's limits; pure, no threads, time is passed in.

A batch holds events of one source file only: a LogGroup carries one `__path__` and one
`__pack_id__` sequence, as in iLogtail, and the ack tracker then moves one file's offset per batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.engine.events import Batch, Event


@dataclass(slots=True)
class _Open:
    batch: Batch
    started: float  # `now` when its first event arrived, for the linger deadline


class Batcher:
    """Cuts batches by record count, raw bytes and linger time.

    Sequence numbers are assigned when a batch leaves the batcher, so every list returned is in
    increasing `seq` order and batches of one file leave in the order their events arrived.
    An event bigger than `max_bytes` on its own travels alone rather than being dropped.
    """

    def __init__(self, max_records: int, max_bytes: int, linger: float, first_seq: int = 0) -> None:
        if max_records < 1 or max_bytes < 1 or linger < 0:
            raise ValueError("max_records and max_bytes must be positive, linger not negative")
        self._max_records = max_records
        self._max_bytes = max_bytes
        self._linger = linger
        self._next_seq = first_seq
        self._open: dict[str, _Open] = {}
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        """Raw bytes held in batches that have not left yet (for buffer accounting)."""
        return self._nbytes

    def push(self, event: Event, now: float) -> list[Batch]:
        """Add one event; returns the batches that became full (usually none)."""
        out: list[Batch] = []
        slot = self._open.get(event.source)
        if slot is not None and slot.batch.nbytes + event.size > self._max_bytes:
            out.append(self._close(event.source))
            slot = None
        if slot is None:
            slot = _Open(Batch(seq=-1), now)
            self._open[event.source] = slot
        slot.batch.add(event)
        self._nbytes += event.size
        batch = slot.batch
        if len(batch.events) >= self._max_records or batch.nbytes >= self._max_bytes:
            out.append(self._close(event.source))
        return out

    def due(self, now: float) -> list[Batch]:
        """Batches whose first event has waited at least `linger` seconds."""
        late = [key for key, slot in self._open.items() if now - slot.started >= self._linger]
        return [self._close(key) for key in late]

    def next_due(self) -> float | None:
        """When `due` will next return something (None: nothing is open), to sleep until then."""
        if not self._open:
            return None
        return min(slot.started for slot in self._open.values()) + self._linger

    def drain(self, source: str | None = None) -> list[Batch]:
        """Everything still open (shutdown, end of a backfill), or only one file's (truncation)."""
        if source is not None:
            return [self._close(source)] if source in self._open else []
        return [self._close(key) for key in list(self._open)]

    def _close(self, key: str) -> Batch:
        batch = self._open.pop(key).batch
        batch.seq = self._next_seq
        self._next_seq += 1
        self._nbytes -= batch.nbytes
        return batch
