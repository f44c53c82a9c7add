"""The engine side shared by the `run` and `backfill` drivers: streams, ledger and senders.

A driver says where bytes come from (`open`, `feed`, `finish`); the flow turns them into sealed
batches, registers each one in the ledger before a sender sees it (registration order is commit
order), and applies outcomes from the completion queue on the driver's own thread (`settle`).
So the two drivers share one loop body and differ only in where state is saved.

Unfinished records (a partial last line, a pending multi-line record) are memory too: when the
streams together hold more than `max_unfinished` bytes, the ones holding most are flushed as they
are (flagged partial), never dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from llmtail.agent.delivery.dispatch import Dispatcher, Done
from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.ledger import Ledger
from llmtail.agent.engine.stream import SealedBatch, Stream
from llmtail.agent.reading.readbuffer import ChunkData

log = logging.getLogger(__name__)

OnSealed = Callable[[SealedBatch], None]
OnDone = Callable[[Done], None]


class Flow:
    def __init__(
        self,
        engine: Engine,
        dispatcher: Dispatcher,
        *,
        max_unfinished: int,
        on_sealed: OnSealed | None = None,
        on_done: OnDone | None = None,
        final: Callable[[Outcome], Outcome] | None = None,
    ) -> None:
        """`final` maps an outcome to the one the ledger records (backfill keeps refused
        batches unsettled so that a rerun tries them again)."""
        self.engine = engine
        self.ledger = Ledger()
        self.dispatcher = dispatcher
        self._streams: dict[str, Stream] = {}
        self._max_unfinished = max_unfinished
        self._on_sealed = on_sealed
        self._on_done = on_done
        self._final = final
        self._warned_unfinished = False

    def open(self, key: str, path: str, offset: int, input_index: int = 0) -> None:
        """Start (or restart, after a truncation) reading `key` at `offset`."""
        old = self._streams.pop(key, None)
        if old is not None:
            self.engine.close(key, old)
        self._streams[key] = self.engine.open(key, path, offset, input_index)
        self.ledger.start(key, offset)

    def rename(self, key: str, path: str) -> None:
        stream = self._streams.get(key)
        if stream is not None:
            stream.rename(path)

    def feed(self, key: str, data: ChunkData, now: float, wall: float) -> None:
        self.submit(self._streams[key].feed(data, now, wall))

    def due(self, now: float, wall: float, caught_up: Callable[[str], bool]) -> None:
        """Lingering batches, and held records of files read to their current end (a file
        whose reading is paused ends its last chunk mid-record: that tail must wait)."""
        for key, stream in self._streams.items():
            self.submit(stream.due(now, wall, caught_up(key)))

    def finish(self, key: str, end: int, wall: float) -> None:
        """The file ended for good at `end` (let go, or read to EOF): everything it holds is
        sealed, and the ledger keeps it until those batches are final."""
        stream = self._streams.pop(key, None)
        if stream is None:
            return
        self.submit(stream.drain(wall))
        self.engine.close(key, stream)
        self.ledger.release(key, end)

    def restart(self, key: str, path: str, input_index: int, wall: float) -> None:
        """copytruncate: what the old content holds is shipped, then the file is read from 0;
        the old content's batches no longer move its offset."""
        stream = self._streams.get(key)
        if stream is not None:
            self.submit(stream.drain(wall))
        self.ledger.forget(key)
        self.open(key, path, 0, input_index)

    def drop(self, key: str) -> None:
        """Stop reading `key` without sealing what it holds (it is read again later)."""
        stream = self._streams.pop(key, None)
        if stream is not None:
            self.submit(stream.cut())
            self.engine.close(key, stream)

    def cut_all(self) -> None:
        """Seal every open batch (shutdown, reload); held records stay unsent and unsaved."""
        for stream in self._streams.values():
            self.submit(stream.cut())

    def submit(self, batches: list[SealedBatch]) -> None:
        for batch in batches:
            self.ledger.register(batch)
            if self._on_sealed is not None:
                self._on_sealed(batch)
            # Counted now; the senders never read it, and a batch of many label sets holds
            # ~1 MB of Python objects in it that the in-flight bound does not charge.
            batch.llm = None
            self.dispatcher.submit(batch)

    def settle(self) -> list[Done]:
        """Apply the outcomes that arrived; returns them."""
        done = self.dispatcher.completions()
        for d in done:
            outcome = d.outcome if self._final is None else self._final(d.outcome)
            self.ledger.finish(d.id, outcome)
            if self._on_done is not None:
                self._on_done(d)
        return done

    def unfinished(self) -> int:
        return sum(stream.pending_bytes for stream in self._streams.values())

    def bound_unfinished(self, wall: float, caught_up: Callable[[str], bool]) -> None:
        """Flush unfinished records until the streams hold at most the bound: first those of
        files read to their current end (the writer is slow: more bytes will not come soon),
        then the largest (cut, flagged partial; the rest follows as a record of its own)."""
        total = self.unfinished()
        if total <= self._max_unfinished:
            return
        if not self._warned_unfinished:
            self._warned_unfinished = True
            log.warning(
                "unfinished records hold %d bytes (bound %d): shipping the largest as they are, "
                "flagged partial",
                total,
                self._max_unfinished,
            )
        order = sorted(
            self._streams.items(),
            key=lambda item: (not caught_up(item[0]), -item[1].pending_bytes),
        )
        for _key, stream in order:
            if total <= self._max_unfinished:
                break
            total -= stream.pending_bytes
            self.submit(stream.flush_pending(wall))
