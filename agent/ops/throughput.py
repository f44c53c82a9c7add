"""The daemon's delivery rate, for `/status` and `llmtail status`."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable


class Throughput:
    """Records delivered per second over the last `window` seconds, computed when asked.

    The rate the daemon used to show was sampled every 10 s, starting at 0 at startup: a status
    asked during the first 10 s, or 10 s after a burst, said 0.0 records/s however much had just
    been delivered. Counting per second and dividing at query time over the last minute (or the
    time since start, when shorter) always reflects what was delivered recently.
    """

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window
        self._clock = clock
        self._started = clock()
        self._buckets: deque[list[int]] = deque()  # [second, records], oldest first
        self._lock = threading.Lock()
        self.total = 0

    def add(self, records: int) -> None:
        """Count delivered records (from sender threads)."""
        second = int(self._clock())
        with self._lock:
            self.total += records
            if self._buckets and self._buckets[-1][0] == second:
                self._buckets[-1][1] += records
            else:
                self._buckets.append([second, records])
                self._trim(second)

    def rate(self) -> float:
        """Records per second over the window (over the time since start while shorter)."""
        now = self._clock()
        with self._lock:
            self._trim(int(now))
            recent = sum(count for _, count in self._buckets)
        return recent / max(min(self._window, now - self._started), 1.0)

    def _trim(self, second: int) -> None:
        while self._buckets and self._buckets[0][0] <= second - self._window:
            self._buckets.popleft()
