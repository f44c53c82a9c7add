"""How the SLS output talks about its state: once per change, not once per retry.

`Health` logs when the output starts failing in a new way and when it delivers again, and says
which state it is in (`delivering`, `retrying`, `held`) for metrics and `/ready`. `Tally` counts
an event and says so at most once a minute (a backfill of old files would otherwise log a line
per batch).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from llmtail.agent.delivery.retry import Failure
from llmtail.agent.delivery.sls_client import SlsError

log = logging.getLogger(
    "llmtail.agent.delivery.sls"
)  # the output's one voice, whichever module speaks


class Health:
    """Says loudly when the output's state changes, not on every retry."""

    def __init__(self, monotonic: Callable[[], float], quiet: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._state: tuple[Failure, str] | None = None
        self._logged_failure = False
        self._last: dict[tuple[Failure, str], float] = {}
        self._monotonic = monotonic
        self._quiet = quiet

    def failed(self, failure: Failure, err: SlsError, what: str, level: int) -> None:
        key = (failure, err.code)
        now = self._monotonic()
        with self._lock:
            if key == self._state:
                return
            self._state = key
            # Flapping transient errors (a success between two failures) are not news again
            # within `quiet` seconds; holds and skew always are.
            last = self._last.get(key)
            if level < logging.ERROR and last is not None and now - last < self._quiet:
                return
            self._last[key] = now
            self._logged_failure = True
        log.log(level, "SLS output: %s: %s", what, err)

    def state(self) -> str:
        with self._lock:
            failure = None if self._state is None else self._state[0]
        if failure is None:
            return "delivering"
        return "held" if failure in (Failure.HOLD, Failure.CLOCK_SKEW) else "retrying"

    def succeeded(self) -> None:
        with self._lock:
            if self._state is None:
                return
            self._state = None
            said, self._logged_failure = self._logged_failure, False
        if said:
            log.info("SLS output: delivering again")


class Tally:
    """Counts an event and says so at most once per `every` seconds (backfills of old files
    would otherwise log a line per batch)."""

    def __init__(self, monotonic: Callable[[], float], every: float = 60.0) -> None:
        self._lock = threading.Lock()
        self._monotonic = monotonic
        self._every = every
        self._pending = 0
        self._last: float | None = None

    def add(self, count: int) -> int:
        """Record `count` more; the total to report now, or 0 while it is too soon."""
        now = self._monotonic()
        with self._lock:
            self._pending += count
            if self._last is not None and now - self._last < self._every:
                return 0
            self._last = now
            total, self._pending = self._pending, 0
            return total
