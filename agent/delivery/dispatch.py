"""Sender threads between the engine and a sink, with a bound on memory in flight.

The bound is the backpressure: the reader asks for `room()` before reading more, so when the
output is slow or down the files stay unread on disk instead of growing this process's memory.
A sealed batch is charged exactly what it holds (`SealedBatch.memory`): its encoded bytes.
Buffers the engine keeps between batches (`held`: the core's spare buffers, each the buffer of
a batch already sent) count against the same bound past an allowance (`reuse`): the reader's
next batches are encoded into them, so reading into them adds no memory. Charged in full, the
spares had to be held to half the bound (spares filling it with nothing in flight would leave
the reader no room), and when a burst of batches came back at once its surplus was freed and
the next batches were encoded into fresh pages (bench_e2e: 180-300 page faults per MB of log,
76-125 with all kept, and 4% less CPU per MB: bench/README.md). Batches in flight and kept
buffers together stay within `capacity + reuse`.

Outcomes travel back through a completion queue that the reading loop drains (`completions`):
sender threads never touch the loop's state, so the ledger and the counters need no locks.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from llmtail.agent.delivery.sink import Outcome, Sink
from llmtail.agent.engine.stream import SealedBatch

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Done:
    """A batch's outcome, without its data (which was freed when the send ended)."""

    id: int
    key: str
    path: str
    records: int
    raw_bytes: int
    nbytes: int
    outcome: Outcome
    seconds: float


def _nothing_held() -> int:
    return 0


def _no_one() -> None:
    pass


class Dispatcher:
    def __init__(
        self,
        sink: Sink,
        concurrency: int,
        capacity: int,
        held: Callable[[], int] = _nothing_held,
        reuse: int = 0,
    ) -> None:
        self._sink = sink
        self._capacity = capacity
        self._held = held
        self._reuse = reuse
        self._queue: queue.SimpleQueue[SealedBatch | None] = queue.SimpleQueue()
        self._done: queue.SimpleQueue[Done] = queue.SimpleQueue()
        self._in_flight = 0
        self._pending = 0
        self._cond = threading.Condition()
        # Called on a sender thread after each batch finished and its charge was returned:
        # a reader held back by the bound waits on it (with its stop) instead of a timer.
        self.on_finish: Callable[[], None] = _no_one
        self._threads = [
            threading.Thread(target=self._work, name=f"llmtail-sender-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def in_flight(self) -> int:
        """Bytes of batches handed over and not yet finished."""
        return self._in_flight

    @property
    def charged(self) -> int:
        """Bytes counted against the bound: batches in flight and the engine's kept buffers."""
        return self._in_flight + self._held()

    @property
    def pending(self) -> int:
        """Batches handed over whose outcome is not known yet."""
        return self._pending

    def output_state(self) -> str:
        return self._sink.state()

    def room(self) -> int:
        """Bytes the reader may still hand over: kept buffers within `reuse` take none of it."""
        kept = max(0, self._held() - self._reuse)
        return max(0, self._capacity - self._in_flight - kept)

    def submit(self, batch: SealedBatch) -> None:
        """Hand a registered batch to the senders."""
        with self._cond:
            self._in_flight += batch.memory
            self._pending += 1
        self._queue.put(batch)

    def completions(self) -> list[Done]:
        """Outcomes that arrived since the last call (non-blocking)."""
        out: list[Done] = []
        while True:
            try:
                out.append(self._done.get_nowait())
            except queue.Empty:
                return out

    def wait(self, timeout: float) -> None:
        """Block until a batch finishes or `timeout` passes (the one-shot modes' pacing)."""
        with self._cond:
            if self._done.empty():
                self._cond.wait(timeout)

    def wait_for_room(self, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.room() > 0, timeout)

    def wait_idle(self, timeout: float) -> bool:
        """Block until every submitted batch finished, or `timeout` passes."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending == 0, timeout)

    def stop(self, deadline: float) -> bool:
        """Deliver what is in flight until the monotonic `deadline`, then abort the rest.

        Returns True when everything submitted reached a final outcome. Aborted batches keep
        their offsets uncommitted, so their records are read again on the next start.
        """
        drained = self.wait_idle(max(0.0, deadline - time.monotonic()))
        if not drained:
            log.warning("shutdown deadline reached with batches in flight; they will be re-read")
        self._sink.abort()
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(timeout=max(1.0, deadline - time.monotonic()))
        self.on_finish = _no_one  # its listener may be gone (the daemon frees its flag's pipe)
        self._sink.close()
        return drained

    def _work(self) -> None:
        while (batch := self._queue.get()) is not None:
            started = time.monotonic()
            try:
                outcome = self._sink.send(batch)
            except Exception:  # a sink bug must not kill the sender and stall the file
                log.exception("output failed unexpectedly; the batch will be re-read on restart")
                outcome = Outcome.ABORTED
            memory = batch.memory
            done = Done(
                batch.id,
                batch.key,
                batch.path,
                batch.records,
                batch.raw_bytes,
                len(batch.data),
                outcome,
                time.monotonic() - started,
            )
            del batch  # its data is freed before the charge is returned
            self._done.put(done)
            with self._cond:
                self._in_flight -= memory
                self._pending -= 1
                self._cond.notify_all()
            self.on_finish()
