"""What a backfill tells its user: progress while it runs, a summary when it ends.

Progress is one line redrawn in place on a terminal, a plain line every `plain_every` seconds
otherwise (journald and CI logs keep every line, so redrawing there would only flood them).
Time is passed in; nothing here sleeps.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
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


@dataclass
class Summary:
    """Counts of one run; `render` is what the user reads (and scripts grep).

    "records sent" are those handed to the output after the time window; byte counts are of
    decompressed content."""

    files: int = 0
    files_complete_before: int = 0  # done in an earlier run, not opened
    records_read: int = 0
    events: Counter[str] = field(default_factory=Counter)
    parse_errors: int = 0
    skipped_before: int = 0
    skipped_after: int = 0
    bytes_already_delivered: int = 0
    bytes_read: int = 0
    delivered: int = 0
    rejected: int = 0
    restamped: int | None = None  # by the output's time_policy, when it says
    damaged: dict[str, int] = field(default_factory=dict)  # path -> bytes recovered
    why_damaged: dict[str, str] = field(default_factory=dict)  # path -> the reader's reason
    rejected_files: set[str] = field(default_factory=set)
    same_content: list[tuple[str, str]] = field(default_factory=list)
    interrupted: str | None = None  # the signal's name
    unsettled: list[str] = field(default_factory=list)  # paths with records still owed

    @property
    def failed(self) -> bool:
        return bool(self.rejected or self.damaged or self.unsettled)

    def render(self) -> str:
        lines = []
        if self.files and self.files == self.files_complete_before + len(self.same_content):
            lines.append(
                f"nothing to send: all {self.files} files were delivered by an earlier backfill"
            )
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in self.events.most_common())
        lines += [
            f"files: {self.files} ({self.files_complete_before} complete before this run)",
            f"records sent: {self.records_read:,}" + (f" ({kinds})" if kinds else ""),
            f"delivered: {self.delivered:,}   not delivered (refused or time_policy reject): "
            f"{self.rejected:,}",
            f"parse errors: {self.parse_errors:,}",
            f"skipped by time window: {self.skipped_before + self.skipped_after:,} "
            f"({self.skipped_before:,} before --since, {self.skipped_after:,} after --until)",
            f"already delivered, skipped: {self.bytes_already_delivered:,} bytes "
            f"(duplicates avoided); read now: {self.bytes_read:,} bytes",
        ]
        if self.restamped is not None:
            lines.append(
                f"restamped (too old for the Logstore; original time in field original_time): "
                f"{self.restamped:,}"
            )
        lines += [
            f"same content as {first}, read once: {path}" for path, first in self.same_content
        ]
        lines += [
            f"damaged: {path}: recovered {n:,} bytes"
            + (f" ({self.why_damaged[path]})" if path in self.why_damaged else "")
            for path, n in self.damaged.items()
        ]
        lines += [
            f"not delivered (refused by the output): {p}" for p in sorted(self.rejected_files)
        ]
        lines += [f"not finished: {p}" for p in self.unsettled]
        if self.interrupted:
            lines.append(
                f"interrupted by {self.interrupted}: state saved; rerun the same command to go on"
            )
        return "\n".join(lines)
