"""Fault injection: which requests fail, how, and for how long.

A `FaultPlan` holds rules; each PutLogs request asks it for a `Verdict` before it is processed.
Every matching delay rule adds its delay; the first matching error or drop rule decides the
outcome. A rule matches the next `count` requests, or each request with `probability`, or every
request until `seconds` have passed - combinations narrow it (a fraction within a time window).
Without `count`, a rule fires once unless `seconds` or `probability` is given: then it lasts
until its window ends or the plan is cleared (`seconds=math.inf`: until cleared).
"""

from __future__ import annotations

import enum
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.logstore.errors import SlsError, injected


class FaultKind(enum.Enum):
    ERROR = "error"  # answer with an SLS error; nothing stored
    DROP = "drop"  # close the connection without an answer; nothing stored
    DROP_AFTER_STORE = "drop_after_store"  # store the data, then close: the client retries a dup
    DELAY = "delay"  # sleep before answering (combines with the others)


@dataclass
class FaultRule:
    """One programmed fault; `count=None` is resolved by `add` (see the module docstring)."""

    kind: FaultKind
    code: str = "InternalServerError"
    status: int | None = None
    message: str | None = None
    delay: float = 0.0
    count: int | None = None
    probability: float = 1.0
    seconds: float | None = None
    started: float = field(default=0.0, repr=False)
    fired: int = 0

    def error(self) -> SlsError:
        return injected(self.code, self.status, self.message)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with one request: sleep `delay`, then fail, drop, or carry on."""

    delay: float = 0.0
    error: SlsError | None = None
    drop: bool = False
    drop_after_store: bool = False


class FaultPlan:
    """Thread-safe rule list; `clock` is injectable so tests of windows need no sleeps."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.monotonic) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()
        self._random = random.Random(seed)
        self._clock = clock

    def add(self, rule: FaultRule) -> FaultRule:
        if rule.kind is FaultKind.ERROR:
            rule.error()  # an unknown code without a status fails here, not mid-request
        if rule.count is None and rule.seconds is None and rule.probability >= 1.0:
            rule.count = 1
        if rule.seconds == math.inf:
            rule.seconds = None
        rule.started = self._clock()
        with self._lock:
            self._rules.append(rule)
        return rule

    def fail(
        self,
        code: str = "InternalServerError",
        *,
        count: int | None = None,
        probability: float = 1.0,
        seconds: float | None = None,
        status: int | None = None,
        message: str | None = None,
    ) -> FaultRule:
        """Answer matching requests with an SLS error (`code="TokenExpired"`: expired STS)."""
        rule = FaultRule(
            FaultKind.ERROR,
            code,
            status,
            message,
            count=count,
            probability=probability,
            seconds=seconds,
        )
        return self.add(rule)

    def drop(
        self,
        *,
        after_store: bool = False,
        count: int | None = None,
        probability: float = 1.0,
        seconds: float | None = None,
    ) -> FaultRule:
        """Close matching connections without an answer, before or after storing the data."""
        kind = FaultKind.DROP_AFTER_STORE if after_store else FaultKind.DROP
        return self.add(FaultRule(kind, count=count, probability=probability, seconds=seconds))

    def delay(
        self,
        seconds_each: float,
        *,
        count: int | None = None,
        probability: float = 1.0,
        seconds: float | None = None,
    ) -> FaultRule:
        """Sleep `seconds_each` before answering matching requests."""
        rule = FaultRule(
            FaultKind.DELAY,
            delay=seconds_each,
            count=count,
            probability=probability,
            seconds=seconds,
        )
        return self.add(rule)

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[FaultRule]:
        with self._lock:
            return list(self._rules)

    def verdict(self) -> Verdict:
        """Consume the rules that match this request and say what to do with it."""
        now = self._clock()
        delay = 0.0
        outcome: FaultRule | None = None
        with self._lock:
            for rule in list(self._rules):
                if rule.seconds is not None and now - rule.started >= rule.seconds:
                    self._rules.remove(rule)
                    continue
                if rule.kind is not FaultKind.DELAY and outcome is not None:
                    continue
                if rule.probability < 1.0 and self._random.random() >= rule.probability:
                    continue
                rule.fired += 1
                if rule.count is not None and rule.fired >= rule.count:
                    self._rules.remove(rule)
                if rule.kind is FaultKind.DELAY:
                    delay += rule.delay
                else:
                    outcome = rule
        if outcome is None:
            return Verdict(delay=delay)
        if outcome.kind is FaultKind.ERROR:
            return Verdict(delay=delay, error=outcome.error())
        if outcome.kind is FaultKind.DROP:
            return Verdict(delay=delay, drop=True)
        return Verdict(delay=delay, drop_after_store=True)
