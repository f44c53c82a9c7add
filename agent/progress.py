"""What a long backfill shows while it runs: one line redrawn in place on a terminal, a plain
line every `plain_every` seconds otherwise (journald and CI logs keep every line, so redrawing
there would only flood them). Time is passed in; nothing here sleeps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TextIO


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Where the backfill stands; bytes are of decompressed log content."""

    files_done: int
    files_total: int
    records: int
    bytes_done: int
    bytes_total: int


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    if seconds >= 60:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds}s"


class Progress:
    def __init__(
        self,
        stream: TextIO,
        *,
        tty: bool,
        clock: Callable[[], float],
        tty_every: float = 0.25,
        plain_every: float = 10.0,
    ) -> None:
        self._stream = stream
        self._tty = tty
        self._clock = clock
        self._every = tty_every if tty else plain_every
        self._started = clock()
        self._next = self._started + self._every
        self._last: tuple[float, int] = (self._started, 0)  # (when, records) of the last line
        self._drawn = False

    def update(self, snap: Snapshot, *, force: bool = False) -> None:
        """Show `snap` if the last line is old enough (or `force`)."""
        now = self._clock()
        if not force and now < self._next:
            return
        self._next = now + self._every
        line = self.line(snap, now)
        if self._tty:
            self._stream.write(f"\r{line}\x1b[K")
            self._drawn = True
        else:
            self._stream.write(f"backfill: {line}\n")
        self._stream.flush()

    def line(self, snap: Snapshot, now: float) -> str:
        when, before = self._last
        rate = (snap.records - before) / (now - when) if now > when else 0.0
        self._last = (now, snap.records)
        elapsed = now - self._started
        text = (
            f"files {snap.files_done}/{snap.files_total}  records {snap.records:,}  {rate:,.0f}/s"
        )
        if snap.bytes_total:
            share = min(1.0, snap.bytes_done / snap.bytes_total)
            text += f"  {share:.0%}"
            if 0 < snap.bytes_done < snap.bytes_total and elapsed > 0:
                # By bytes, not records: file sizes are known up front, record counts are not.
                eta = (snap.bytes_total - snap.bytes_done) * elapsed / snap.bytes_done
                text += f"  ETA {_duration(eta)}"
        return text

    def close(self) -> None:
        """End the redrawn line so the summary starts on a line of its own."""
        if self._drawn:
            self._stream.write("\n")
            self._stream.flush()
            self._drawn = False
