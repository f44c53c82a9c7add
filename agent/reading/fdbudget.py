"""How many file descriptors the watcher may hold, so that what must never fail still can.

The process limit (RLIMIT_NOFILE) is shared by followed files, sender sockets, the metrics
listener, checkpoint saves (a temp file and the directory) and the state lock. Files are the
only holder that can give fds back and still lose nothing (a file keeps its name and is found
again by its inode), so they get what is left after a reserve: a checkpoint save or a new
connection never meets "Too many open files" because the watcher took the last fds.

    ceiling = soft limit - reserve - fds held by everything else   (never exceeded)
    target  = min(max_open_files, ceiling)                        (restored after each poll)

The fds held by everything else are counted in /proc/self/fd only when the process holds half
of what it may (by the last count), so an agent far from its limit pays nothing for it.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass

MIN_RESERVE = 32
"""Fds always left to the rest of the process (sockets, checkpoint saves, logs, inotify)."""

_GUESS_OTHERS = 32  # where /proc/self/fd cannot be listed


def soft_limit() -> int:
    """RLIMIT_NOFILE's soft limit (what `open` fails past); a large number if unlimited."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return soft if soft != resource.RLIM_INFINITY else 1 << 20


def open_fds() -> int | None:
    """Fds this process holds now; None where /proc is not available."""
    try:
        with os.scandir("/proc/self/fd") as entries:
            return sum(1 for _ in entries) - 1  # the listing's own fd
    except OSError:
        return None


@dataclass(slots=True)
class FdBudget:
    """The share of the fd limit the watcher may use: `ceiling` and `target`, per poll."""

    limit: int
    max_open: int
    reserve: int = MIN_RESERVE
    _others: int = 0

    @classmethod
    def for_process(cls, max_open: int) -> FdBudget:
        limit = soft_limit()
        budget = cls(limit=limit, max_open=max_open, reserve=max(MIN_RESERVE, limit // 8))
        budget.recount(0)
        return budget

    def recount(self, own: int) -> None:
        """Count what everything but the watcher's `own` fds holds."""
        total = open_fds()
        self._others = _GUESS_OTHERS if total is None else max(total - own, 0)

    def ceiling(self, own: int) -> int:
        """Fds the watcher must never go past (at least 1: one file at a time still moves)."""
        if (own + self._others) * 2 >= self.limit - self.reserve:
            self.recount(own)
        return max(self.limit - self.reserve - self._others, 1)

    def target(self, own: int) -> int:
        """Fds the watcher keeps to between polls: `max_open_files`, within the ceiling."""
        return min(self.max_open, self.ceiling(own))
