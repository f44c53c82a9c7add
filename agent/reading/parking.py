"""Keeping the watcher's open fds within the ceiling and the target (agent/reading/fdbudget.py).

Over the target, the followed files idle the longest (fully read) are suspended first (fd closed,
path stat'ed each poll); then draining (rotated) files are parked, least recently changed first
(and, at the ceiling only, followed ones too): no fd, just the identity and the name they have
now. Parked files are reopened in turn, oldest rotation first, when fds are free, found again by
inode next to that name (agent/reading/locate.py). That is logged once per episode.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from llmtail.agent.reading.fdbudget import FdBudget
from llmtail.agent.reading.locate import Locator
from llmtail.agent.reading.tailer import Change, Tailer

_log = logging.getLogger("llmtail.agent.reading.watcher")


def open_count(tailers: Mapping[str, Tailer]) -> int:
    return sum(1 for t in tailers.values() if not t.closed)


class FdKeeper:
    """The watcher's fd policy; the watcher owns the tailers, this only closes and reopens."""

    def __init__(self, fds: FdBudget) -> None:
        self._fds = fds
        self._parking = False  # an episode of parked files is under way (logged once)

    def bound(self, tailers: Mapping[str, Tailer], followed: set[str], ceiling: int) -> None:
        """Back within the budget after a poll: past the ceiling any file not deleted may be
        closed; past the target, idle files and then draining (rotated) ones."""
        if len(tailers) <= min(ceiling, self._fds.max_open):
            return  # even with every file open, within both
        own = open_count(tailers)
        over = own - self._fds.ceiling(own)
        if over > 0:
            self.close_some(tailers, followed, over, followed_too=True)
        own = open_count(tailers)
        excess = own - self._fds.target(own)
        if excess > 0:
            self.close_some(tailers, followed, excess, followed_too=False)

    def make_room(self, tailers: Mapping[str, Tailer], followed: set[str], ceiling: int) -> bool:
        """Before opening a file: free an fd at the ceiling. False: none could be freed."""
        if len(tailers) < ceiling:
            return True  # even with every file open there is room: no need to count
        excess = open_count(tailers) + 1 - ceiling
        return (
            excess <= 0 or self.close_some(tailers, followed, excess, followed_too=True) >= excess
        )

    def close_some(
        self,
        tailers: Mapping[str, Tailer],
        followed: set[str],
        count: int,
        *,
        followed_too: bool,
    ) -> int:
        """Suspend the longest-idle fully read followed files, then park draining files (and,
        with `followed_too`, followed ones) changed least recently. Returns the fds freed.

        Never a deleted file: it could not be reopened. A followed file can be deleted before
        the next rescan notices, so each candidate's link count is checked first. Followed
        files are parked only at the ceiling: one deleted while parked loses its unread bytes.
        """
        locate = Locator()
        open_now = [t for t in tailers.values() if not t.closed and t.deleted_since is None]
        idle = [t for t in open_now if t.behind == 0 and t.key in followed]
        idle.sort(key=lambda t: t.changed_at)
        freed = 0
        for t in idle:
            if freed >= count:
                return freed
            if t.linked():
                t.suspend()
                freed += 1
        # Under the target, a draining file read to its end keeps its fd: it is let go (or
        # it grew) by the next poll, and parking it would only reopen it to find that out.
        busy = [
            t
            for t in open_now
            if not t.closed and (followed_too or (t.key not in followed and t.behind > 0))
        ]
        # Followed files go last: they are being written to right now.
        busy.sort(key=lambda t: (t.key in followed, t.behind == 0, t.changed_at))
        for t in busy:
            if freed >= count:
                break
            where = locate.where(t) if t.linked() else None
            if where is None:
                continue  # deleted: only its fd still reaches it
            t.path = where
            t.park()
            freed += 1
            if not self._parking:
                self._parking = True
                _log.warning(
                    "more files than fds to hold them (max_open_files %d, RLIMIT_NOFILE %d of "
                    "which %d are kept for sockets and checkpoints): files not yet read to "
                    "their end are closed and reopened in turn",
                    self._fds.max_open,
                    self._fds.limit,
                    self._fds.reserve,
                )
        return freed

    def unpark(
        self,
        tailers: Mapping[str, Tailer],
        followed: set[str],
        gone_at: Mapping[str, float],
        now: float,
        release: Callable[[str], None],
        after_change: Callable[[str, Tailer, Change], bool],
    ) -> list[Tailer]:
        """Reopen parked files while fds are free, oldest rotation first; returns them."""
        parked = [t for t in tailers.values() if t.parked]
        if not parked:
            if self._parking:
                self._parking = False
                _log.info("every file is open again")
            return []
        own = open_count(tailers)
        room = self._fds.target(own) - own
        if room < len(parked):
            # Fully read followed files give their fds in turn, so parked ones are not starved.
            idle = [
                t for t in tailers.values() if not t.closed and t.behind == 0 and t.key in followed
            ]
            idle.sort(key=lambda t: t.changed_at)
            for t in idle[: len(parked) - room]:
                if t.linked():
                    t.suspend()
                    room += 1
        parked.sort(key=lambda t: (t.key in followed, gone_at.get(t.key, now)))
        reopened: list[Tailer] = []
        locate = Locator()
        for t in parked[: max(room, 0)]:
            path = locate.where(t)
            change: Change | None = None
            if path is not None:
                try:
                    change = t.reopen(path, now)
                except OSError as exc:
                    _log.warning("%s: cannot reopen: %s", path, exc.strerror or exc)
            if change is None:  # no name leads to it any more
                _log.warning(
                    "%s was deleted while closed to spare fds; bytes after offset %d were not read",
                    t.path,
                    t.offset,
                )
                release(t.key)
                continue
            if after_change(t.key, t, change) and t.behind > 0:
                reopened.append(t)
        return reopened
