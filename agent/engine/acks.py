"""Per file, the highest offset below which every batch is final, whatever order batches end in.

Senders finish batches out of order (several threads, retries); a checkpoint may only move past
a record once that record and everything before it in its file were delivered or rejected. This
is Vector's ordered finalizer, kept per file.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass

from agent.delivery.sink import Outcome
from agent.engine.events import Batch


@dataclass(slots=True)
class _Entry:
    end: int  # the batch's highest end offset in this file
    final: bool = False


@dataclass(slots=True)
class _FileAcks:
    key: str
    pending: deque[_Entry]


@dataclass(frozen=True, slots=True)
class AckStats:
    """Totals since start, for metrics and the final log line."""

    delivered_records: int
    rejected_records: int
    aborted_batches: int
    outstanding_batches: int


class AckTracker:
    """Tracks batches from `register` (handed to a sink) to `finish` (the sink's outcome).

    `register` must be called in the order batches of a file were cut; `finish` may come in any
    order from any thread. ABORTED is not final: the offset stays before that batch for good (the
    records are read again on the next start), so later batches of the file cannot move it either.
    """

    def __init__(self) -> None:
        self._files: dict[str, _FileAcks] = {}
        self._committed: dict[str, int] = {}
        self._inflight: dict[int, tuple[Batch, list[tuple[_FileAcks, _Entry]]]] = {}
        self._delivered = 0
        self._rejected = 0
        self._aborted = 0
        self._cond = threading.Condition()

    def register(self, batch: Batch) -> None:
        """Record that `batch` was handed to the sink."""
        with self._cond:
            if batch.seq in self._inflight:
                raise ValueError(f"batch {batch.seq} is already registered")
            entries = []
            for key, end in batch.offsets.items():
                acks = self._files.get(key)
                if acks is None:
                    acks = self._files[key] = _FileAcks(key, deque())
                entry = _Entry(end)
                acks.pending.append(entry)
                entries.append((acks, entry))
            self._inflight[batch.seq] = (batch, entries)

    def finish(self, batch: Batch, outcome: Outcome) -> None:
        """Record the sink's outcome; unknown or already finished batches are ignored."""
        with self._cond:
            found = self._inflight.pop(batch.seq, None)
            if found is None:
                return
            registered, entries = found
            if outcome is Outcome.DELIVERED:
                self._delivered += len(registered.events)
            elif outcome is Outcome.REJECTED:
                self._rejected += len(registered.events)
            else:
                self._aborted += 1
            if outcome is not Outcome.ABORTED:
                for acks, entry in entries:
                    entry.final = True
                    self._advance(acks)
            self._cond.notify_all()

    def committed(self) -> dict[str, int]:
        """Per file key, the offset every record before which is final (files with one at least)."""
        with self._cond:
            return dict(self._committed)

    def forget(self, key: str) -> None:
        """Drop a file's state (it was let go); its batches still in flight are ignored for it."""
        with self._cond:
            self._files.pop(key, None)
            self._committed.pop(key, None)

    def stats(self) -> AckStats:
        with self._cond:
            return AckStats(self._delivered, self._rejected, self._aborted, len(self._inflight))

    def wait_settled(self, timeout: float | None) -> bool:
        """Block until no registered batch awaits its outcome (shutdown drain); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._inflight, timeout)

    def _advance(self, acks: _FileAcks) -> None:
        pending = acks.pending
        last: int | None = None
        while pending and pending[0].final:
            last = pending.popleft().end
        # A forgotten file's state is detached: late outcomes must not resurrect its offset.
        if last is not None and self._files.get(acks.key) is acks:
            self._committed[acks.key] = last
