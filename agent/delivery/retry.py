"""What to do after a failed PutLogs: error classes, backoff delays, and a shared concurrency limit.

Pure policy, no I/O: time and randomness are injected, so tests drive it with a fake clock.
The classes follow design.md section 6 (SLS error codes and what producers do about them).
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from dataclasses import dataclass


class Failure(enum.Enum):
    """Why a request failed, grouped by what the sender does next."""

    TRANSIENT = "transient"  # network error, timeout, 5xx: fast exponential backoff
    QUOTA = "quota"  # 403 (Shard)WriteQuotaExceed: slower backoff and fewer requests in flight
    TOKEN_EXPIRED = "token_expired"  # 401 with an expired STS token: re-read credentials, retry
    TOO_LARGE = "too_large"  # 413 PostBodyTooLarge: split the LogGroup
    TIME_RANGE = "time_range"  # 400 PostBodyInvalid, log time out of range: apply time_policy
    CLOCK_SKEW = "clock_skew"  # 400 RequestTimeExpired: the host clock is off; slow retry
    HOLD = "hold"  # bad keys, missing project/logstore, no permission: hold data, probe slowly
    INVALID = "invalid"  # any other 4xx: the data itself is refused; retrying cannot help


_QUOTA_CODES = frozenset({"WriteQuotaExceed", "ShardWriteQuotaExceed", "ExceedQuota"})
_EXPIRED_CODES = frozenset({"SecurityToken.Expired", "SecurityTokenExpired"})
_HOLD_CODES = frozenset(
    {
        "Unauthorized",
        "InvalidAccessKeyId",
        "InvalidAccessKeyId.NotFound",
        "SignatureNotMatch",
        "ProjectNotExist",
        "LogStoreNotExist",
        "ProjectForbidden",
        "LogStoreWithoutShard",
        "AccessKeyIdDisabled",
    }
)


def classify(status: int, code: str, message: str) -> Failure:  # noqa: PLR0911 - one exit per class
    """Map an HTTP status (0: no response) and an SLS error code to what to do next."""
    if status == 0 or status >= 500:
        return Failure.TRANSIENT
    if code in _QUOTA_CODES:
        return Failure.QUOTA
    if code in _EXPIRED_CODES or (status == 401 and "expired" in message.lower()):
        return Failure.TOKEN_EXPIRED
    if status == 413 or code == "PostBodyTooLarge":
        return Failure.TOO_LARGE
    if code == "RequestTimeExpired":
        return Failure.CLOCK_SKEW
    if code == "PostBodyInvalid" and "time" in message.lower() and "range" in message.lower():
        return Failure.TIME_RANGE
    if code in _HOLD_CODES or status in (401, 403, 404):
        return Failure.HOLD
    if status in (408, 429):
        return Failure.TRANSIENT
    return Failure.INVALID


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with full jitter: uniform in [0, min(cap, base * 2**attempt)]."""

    base: float
    cap: float

    def delay(self, attempt: int, rand: Callable[[], float]) -> float:
        ceiling = self.cap if attempt >= 63 else min(self.cap, self.base * (2.0**attempt))
        return rand() * ceiling


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long each failure class waits. Defaults follow the official producers."""

    transient: Backoff = Backoff(0.1, 30.0)
    quota: Backoff = Backoff(1.0, 60.0)
    probe_interval: float = 30.0  # HOLD and CLOCK_SKEW: a slow, steady probe
    stuck_warning: float = 300.0  # warn once when one LogGroup has been retried this long

    def delay(self, failure: Failure, attempt: int, rand: Callable[[], float]) -> float:
        """Seconds to wait before the next attempt after `attempt` failures of this class."""
        if failure is Failure.QUOTA:
            return self.quota.delay(attempt, rand)
        if failure in (Failure.HOLD, Failure.CLOCK_SKEW):
            return self.probe_interval
        if failure is Failure.TOKEN_EXPIRED and attempt == 0:
            return 0.0  # fresh credentials may already be on disk
        return self.transient.delay(attempt, rand)


class AdaptiveLimit:
    """An AIMD limit on requests in flight, shared by the sender threads.

    Quota errors halve the limit (multiplicative decrease); `limit` successes in a row add one
    (additive increase: one more slot per round of requests) back up to `maximum`.
    """

    def __init__(self, maximum: int, minimum: int = 1) -> None:
        self._max = maximum
        self._min = minimum
        self._limit = maximum
        self._credit = 0  # successes since the limit last grew
        self._in_flight = 0
        self._aborted = False
        self._cond = threading.Condition()

    @property
    def limit(self) -> int:
        with self._cond:
            return self._limit

    def acquire(self, timeout: float | None = None) -> bool:
        """Take a slot; False when aborted (or on timeout) instead."""
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self._aborted or self._in_flight < self._limit, timeout
            )
            if not ok or self._aborted:
                return False
            self._in_flight += 1
            return True

    def release(self) -> None:
        with self._cond:
            self._in_flight -= 1
            self._cond.notify()

    def on_success(self) -> None:
        with self._cond:
            if self._limit >= self._max:
                return
            self._credit += 1
            if self._credit >= self._limit:
                self._credit = 0
                self._limit += 1
                self._cond.notify()

    def on_quota(self) -> None:
        with self._cond:
            self._limit = max(self._min, self._limit // 2)
            self._credit = 0

    def abort(self) -> None:
        with self._cond:
            self._aborted = True
            self._cond.notify_all()
