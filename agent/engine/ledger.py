"""Which offsets may be saved: per file, the highest end below which every batch is final.

Senders finish batches out of order (several threads, retries); a checkpoint may move past a
record only once that record and everything before it in its file were delivered or rejected.
This is Vector's ordered finalizer, kept per file. The ledger also remembers files that were let
go (rotated away and read to their end, deleted) while their last batches are in flight: their
offsets are still saved until those batches are final, then they are forgotten.

One thread owns a ledger (the loop that cuts batches and drains the completion queue), so it
takes no locks.
"""

from __future__ import annotations

import itertools
from collections import deque
from dataclasses import dataclass, field

from llmtail.agent.engine.outcome import Outcome
from llmtail.agent.engine.stream import SealedBatch

# Ids are unique in the process: after a reload, a new ledger never mistakes an outcome of the
# old one's batches for one of its own.
_IDS = itertools.count()


@dataclass(slots=True)
class _Entry:
    end: int
    final: bool = False


@dataclass(slots=True)
class _File:
    floor: int  # where reading started: the position before any batch is final
    committed: int | None = None
    pending: deque[_Entry] = field(default_factory=deque)
    released_at: int | None = None  # the end of a file let go

    @property
    def position(self) -> int:
        return self.floor if self.committed is None else self.committed


@dataclass(frozen=True, slots=True)
class LedgerStats:
    delivered_records: int
    rejected_records: int
    aborted_batches: int
    outstanding_batches: int


class Ledger:
    """From `register` (a batch is handed to the output) to `finish` (its outcome)."""

    def __init__(self) -> None:
        self._files: dict[str, _File] = {}
        self._open: dict[int, tuple[_File, _Entry, int]] = {}
        self._delivered = 0
        self._rejected = 0
        self._aborted = 0

    def start(self, key: str, offset: int) -> None:
        """Reading of `key` starts (or starts again, after a truncation) at `offset`."""
        self._files[key] = _File(offset)

    def register(self, batch: SealedBatch) -> None:
        """Call in the order the file's batches were sealed; sets `batch.id`."""
        f = self._files.get(batch.key)
        if f is None:
            f = self._files[batch.key] = _File(0)
        entry = _Entry(batch.end)
        f.pending.append(entry)
        batch.id = next(_IDS)
        self._open[batch.id] = (f, entry, batch.records)

    def finish(self, batch_id: int, outcome: Outcome) -> None:
        """Record an outcome; unknown or already finished ids are ignored."""
        found = self._open.pop(batch_id, None)
        if found is None:
            return
        f, entry, records = found
        if outcome is Outcome.ABORTED:
            self._aborted += 1  # not final: the offset stays before this batch for good
            return
        if outcome is Outcome.DELIVERED:
            self._delivered += records
        else:
            self._rejected += records
        entry.final = True
        pending = f.pending
        while pending and pending[0].final:
            f.committed = pending.popleft().end

    def position(self, key: str) -> int | None:
        """The offset of `key` that may be saved (None: unknown file)."""
        f = self._files.get(key)
        return None if f is None else f.position

    def positions(self) -> dict[str, int]:
        return {key: f.position for key, f in self._files.items()}

    def release(self, key: str, end: int) -> None:
        """The file was let go at `end`; keep it until every batch up to there is final."""
        f = self._files.get(key)
        if f is not None:
            f.released_at = end

    def settled(self) -> list[str]:
        """Released files whose every batch is final; they are forgotten here."""
        done = [
            key
            for key, f in self._files.items()
            if f.released_at is not None and f.position >= f.released_at and not f.pending
        ]
        for key in done:
            del self._files[key]
        return done

    def forget(self, key: str) -> None:
        """Drop a file; outcomes of its batches in flight no longer move any offset."""
        f = self._files.pop(key, None)
        if f is not None:
            f.pending = deque()  # detached: late outcomes pop entries of nobody's file

    @property
    def outstanding(self) -> int:
        return len(self._open)

    def stats(self) -> LedgerStats:
        return LedgerStats(self._delivered, self._rejected, self._aborted, len(self._open))
