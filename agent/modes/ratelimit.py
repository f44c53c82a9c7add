"""`--max-rate`: a token bucket, so a backfill leaves the shard quota that live traffic needs.

Pure: the bucket says how long to wait and the caller waits (on its stop event, so Ctrl-C is
not held up by a sleep). Taking more than the bucket holds is allowed and becomes debt; the
wait pays it off. That keeps the long-run rate exact without splitting chunks of records.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

_RATE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(|/s|[kKmM]i?[bB](?:/s)?)\s*$")
_UNITS = {"kb": 1e3, "mb": 1e6, "kib": 1024.0, "mib": 1024.0 * 1024.0}


@dataclass(frozen=True, slots=True)
class Rate:
    """A limit: `per_second` records, or raw log bytes when `unit` is "bytes"."""

    per_second: float
    unit: Literal["records", "bytes"]

    def __str__(self) -> str:
        if self.unit == "records":
            return f"{self.per_second:,.0f} records/s"
        return f"{self.per_second / 1e6:,.2f} MB/s"


def parse_rate(text: str) -> Rate:
    """`5000` (records/s), `10MB`, `512KiB`, `1.5MB/s` (bytes of log text per second).

    MB and KB are decimal (10^6, 10^3), MiB and KiB binary; ValueError for anything else."""
    m = _RATE.match(text)
    if m is None:
        raise ValueError(
            f"--max-rate {text!r}: expected records per second (5000) or a size per second "
            "(10MB, 512KB, 1MiB)"
        )
    number, unit = float(m.group(1)), m.group(2).lower().removesuffix("/s")
    value = number * _UNITS[unit] if unit else number
    if value <= 0:
        raise ValueError(f"--max-rate {text!r}: must be more than zero")
    return Rate(value, "bytes" if unit else "records")


class TokenBucket:
    """`rate` tokens per second, at most `burst` saved up (default: one second's worth)."""

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self._rate = rate
        self._burst = rate if burst is None else burst
        self._clock = clock
        self._tokens = self._burst
        self._at = clock()

    def take(self, amount: float) -> float:
        """Spend `amount` tokens; the seconds to wait before going on (0.0: go now)."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._at) * self._rate)
        self._at = now
        self._tokens -= amount
        return 0.0 if self._tokens >= 0 else -self._tokens / self._rate
