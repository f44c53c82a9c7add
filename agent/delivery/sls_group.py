"""A sealed batch as the LogGroup the SLS output sends: the time window SLS accepts, and the
logs cut apart only when a split (413) or a time-range problem needs it."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from llmtail.agent.engine.loggroup import SerializedGroup, read_log_length, split_logs
from llmtail.agent.engine.stream import Encoded

ORIGINAL_TIME_KEY = "original_time"
PAST_WINDOW = 7 * 24 * 3600
FUTURE_WINDOW = 15 * 60


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """The log times SLS accepts, narrowed by safety margins for clock differences."""

    past_margin: float = 300.0
    future_margin: float = 60.0

    def bounds(self, now: float) -> tuple[float, float]:
        return now - PAST_WINDOW + self.past_margin, now + FUTURE_WINDOW - self.future_margin


WIDE_WINDOW = TimeWindow(past_margin=3600.0, future_margin=600.0)


@dataclass(slots=True)
class Pending:
    """A LogGroup on its way: its encoded logs and each one's own time.

    `data` is the whole LogGroup, the logs then the `trailer`, posted as it is: most batches
    travel as the one block they were sealed in (no copy between the core and lz4); they are
    cut into logs only when a split or a time-range problem needs it.
    `restamped` holds the indexes already sent with the current time instead of their own.
    """

    data: Encoded
    ends: list[int] | None  # each log's end in `data`; None: not needed yet
    times: Sequence[int]
    trailer: bytes
    restamped: set[int] = field(default_factory=set)

    def __len__(self) -> int:
        return len(self.times)

    @property
    def logs_end(self) -> int:
        """Where the logs end in `data` (the trailer follows)."""
        return len(self.data) - len(self.trailer)

    def group(self) -> SerializedGroup:
        return SerializedGroup(self.data)

    def framed_ends(self) -> list[int]:
        """Each log's end in `data`, read from the protobuf framing itself (a block sent whole
        has no `ends` yet)."""
        ends, pos, stop, view = [], 0, self.logs_end, memoryview(self.data)
        while pos < stop:
            length, body_at = read_log_length(view, pos)
            pos = body_at + length
            ends.append(pos)
        return ends

    def logs(self) -> list[bytes]:
        if self.ends is None:
            raise ValueError("log boundaries are unknown")
        return split_logs(self.data, self.ends)

    @classmethod
    def of(
        cls, logs: list[bytes], times: Sequence[int], trailer: bytes, restamped: set[int]
    ) -> Pending:
        ends, total = [], 0
        for log_bytes in logs:
            total += len(log_bytes)
            ends.append(total)
        return cls(b"".join([*logs, trailer]), ends, times, trailer, restamped)

    def halves(self) -> tuple[Pending, Pending]:
        logs, mid = self.logs(), len(self) // 2
        return (
            Pending.of(
                logs[:mid], self.times[:mid], self.trailer, {i for i in self.restamped if i < mid}
            ),
            Pending.of(
                logs[mid:],
                self.times[mid:],
                self.trailer,
                {i - mid for i in self.restamped if i >= mid},
            ),
        )
