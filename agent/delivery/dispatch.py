"""Sender threads between the batcher and a sink, with a bound on memory in flight.

The bound is the backpressure: the reader asks for `room()` before reading more, so when the
output is slow or down the files stay unread on disk instead of growing this process's memory.

It bounds memory, not file bytes: a parsed record costs the process far more than its line, so a
batch is charged `memory_cost(batch)` and the reader turns room back into file bytes with
`raw_budget(room)`. The constants are calibrated on RSS, not on tracemalloc: a 160-byte llm_call
line holds about 1.4 KB as fields, and allocator slack, the sink's encoded copies of the
requests it is retrying and the open batches add about as much again (test_backpressure:
about 12 bytes of RSS per file byte in flight).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable

from agent.delivery.sink import Outcome, Sink
from agent.engine.acks import AckTracker
from agent.engine.events import Batch

log = logging.getLogger(__name__)

OnDone = Callable[[Batch, Outcome, float], None]

RECORD_OVERHEAD = 1792  # bytes a parsed record costs beyond its text: dict, keys, ints, slack
TEXT_COPIES = 3  # its text: in the fields, in `message` (or `__raw_log__`), encoded for sending
READ_EXPANSION = 13  # memory per file byte for short records, the worst case


def memory_cost(batch: Batch) -> int:
    """Estimated bytes the batch's parsed records hold until they are acknowledged."""
    return TEXT_COPIES * batch.nbytes + RECORD_OVERHEAD * len(batch.events)


def raw_budget(room: int) -> int:
    """File bytes that may be read when `room` bytes of memory are free."""
    return room // READ_EXPANSION


class Dispatcher:
    def __init__(
        self,
        sink: Sink,
        acks: AckTracker,
        concurrency: int,
        capacity: int,
        on_done: OnDone | None = None,
        on_submit: Callable[[Batch], None] | None = None,
    ) -> None:
        self._sink = sink
        self._on_submit = on_submit
        self._acks = acks
        self._capacity = capacity
        self._on_done = on_done
        self._queue: queue.SimpleQueue[Batch | None] = queue.SimpleQueue()
        self._in_flight = 0
        self._pending = 0
        self._cond = threading.Condition()
        self._threads = [
            threading.Thread(target=self._work, name=f"llmtail-sender-{i}", daemon=True)
            for i in range(concurrency)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def in_flight(self) -> int:
        """Estimated memory of batches handed over and not yet finished."""
        return self._in_flight

    def room(self) -> int:
        return max(0, self._capacity - self._in_flight)

    def submit(self, batch: Batch) -> None:
        """Hand a batch to the senders; registration order is the commit order per file."""
        if self._on_submit is not None:
            self._on_submit(batch)  # things that must follow file order, not sender order
        self._acks.register(batch)
        with self._cond:
            self._in_flight += memory_cost(batch)
            self._pending += 1
        self._queue.put(batch)

    def wait_for_room(self, timeout: float) -> bool:
        """Block until there is room or `timeout` passes (the one-shot modes use this)."""
        with self._cond:
            return self._cond.wait_for(lambda: self._in_flight < self._capacity, timeout)

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
            self._acks.finish(batch, outcome)
            with self._cond:
                self._in_flight -= memory_cost(batch)
                self._pending -= 1
                self._cond.notify_all()
            if self._on_done is not None:
                self._on_done(batch, outcome, time.monotonic() - started)
