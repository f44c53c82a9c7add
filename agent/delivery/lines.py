"""The send loop shared by the file and stdout outputs: a batch's NDJSON written whole.

The Stream already encoded the lines (envelope included), so a send is one write of
`batch.data`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Protocol

from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.engine.stream import Encoded, SealedBatch

log = logging.getLogger(__name__)


class LineTarget(Protocol):
    """Where NDJSON bytes end up. `write` is called under the sink's lock."""

    def write(self, data: Encoded) -> None:
        """Write all of `data` durably or raise OSError (retried) or TargetGoneError (gives up)."""
        ...

    def close(self) -> None: ...


class TargetGoneError(Exception):
    """The destination went away for good (stdout reader exited): sends end ABORTED."""


class LineSink:
    """A Sink writing NDJSON to a LineTarget: retries until abort, never drops a batch.

    Write errors (disk full, permission) are logged once per distinct error, then retried with
    exponential backoff; the batch is DELIVERED only once `write` returned, which for a file
    means flushed and fsynced.
    """

    def __init__(
        self,
        target: LineTarget,
        name: str,
        *,
        initial_backoff: float = 0.1,
        max_backoff: float = 30.0,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self._target = target
        self._name = name
        self._initial_backoff = initial_backoff
        self._max_backoff = max_backoff
        self._on_retry = on_retry
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._failing: str | None = None  # the error last logged, to log each one once

    def send(self, batch: SealedBatch) -> Outcome:
        if self._stop.is_set():
            return Outcome.ABORTED
        data = batch.data
        delay = self._initial_backoff
        while True:
            with self._lock:
                if self._stop.is_set() or self._closed:
                    return Outcome.ABORTED
                try:
                    self._target.write(data)
                except TargetGoneError as gone:
                    log.warning("%s: %s; stopping this output", self._name, gone)
                    self._stop.set()
                    return Outcome.ABORTED
                except OSError as exc:
                    self._note_failure(exc, delay)
                else:
                    if self._failing is not None:
                        log.warning("%s: writing again after: %s", self._name, self._failing)
                        self._failing = None
                    return Outcome.DELIVERED
            if self._on_retry is not None:
                self._on_retry()
            # Waiting on the abort event keeps shutdown prompt during a long outage.
            if self._stop.wait(delay):
                return Outcome.ABORTED
            delay = min(delay * 2, self._max_backoff)

    def state(self) -> str:
        return "retrying" if self._failing is not None else "delivering"

    def abort(self) -> None:
        self._stop.set()

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._target.close()

    def _note_failure(self, exc: OSError, delay: float) -> None:
        what = exc.strerror or str(exc)
        if exc.filename:
            what = f"{exc.filename}: {what}"
        if what != self._failing:
            log.error("%s: cannot write (%s); holding the data and retrying", self._name, what)
            self._failing = what
        else:
            log.debug("%s: still failing, next try in %.1fs", self._name, delay)
