"""Retry policy: which SLS answers are retried how, and the shared concurrency limit."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtail.agent.delivery.retry import AdaptiveLimit, Backoff, Failure, RetryPolicy, classify


@pytest.mark.parametrize(
    ("status", "code", "message", "expected"),
    [
        (0, "ConnectionError", "connection refused", Failure.TRANSIENT),
        (0, "Timeout", "no answer", Failure.TRANSIENT),
        (500, "InternalServerError", "internal server error", Failure.TRANSIENT),
        (500, "RequestTimeout", "request timeout", Failure.TRANSIENT),
        (503, "ServerBusy", "busy", Failure.TRANSIENT),
        (502, "LogRequestError", "Bad Gateway html", Failure.TRANSIENT),
        (403, "WriteQuotaExceed", "Project write quota exceed", Failure.QUOTA),
        (403, "ShardWriteQuotaExceed", "shard write quota exceed", Failure.QUOTA),
        (
            401,
            "Unauthorized",
            "The security token you provided has expired.",
            Failure.TOKEN_EXPIRED,
        ),
        (401, "SecurityTokenExpired", "expired", Failure.TOKEN_EXPIRED),
        (
            413,
            "PostBodyTooLarge",
            "body size 11000000 must little than 10485760",
            Failure.TOO_LARGE,
        ),
        (400, "PostBodyInvalid", "The post data time is out of range", Failure.TIME_RANGE),
        (400, "RequestTimeExpired", "Request time ... has been expired", Failure.CLOCK_SKEW),
        (401, "InvalidAccessKeyId", "AccessKeyId not found: LTAIx", Failure.HOLD),
        (401, "SignatureNotMatch", "signature x not match", Failure.HOLD),
        (401, "Unauthorized", "The security token you provided is invalid.", Failure.HOLD),
        (403, "Unauthorized", "denied by sts or ram", Failure.HOLD),
        (404, "ProjectNotExist", "The Project does not exist : p", Failure.HOLD),
        (404, "LogStoreNotExist", "logstore l does not exist", Failure.HOLD),
        (400, "PostBodyInvalid", "Protobuffer content cannot be parsed.", Failure.INVALID),
        (400, "InvalidKey", "Invalid key", Failure.INVALID),
    ],
)
def test_sls_answers_are_classified_as_design_section_6_says(
    status: int, code: str, message: str, expected: Failure
) -> None:
    assert classify(status, code, message) is expected


@given(st.integers(0, 200), st.floats(0.0, 1.0))
def test_full_jitter_stays_within_the_capped_exponential(attempt: int, r: float) -> None:
    backoff = Backoff(0.1, 30.0)
    delay = backoff.delay(attempt, lambda: r)
    assert 0.0 <= delay <= min(30.0, 0.1 * 2.0 ** min(attempt, 100))


def test_backoff_doubles_until_the_cap() -> None:
    ceilings = [Backoff(0.1, 30.0).delay(n, lambda: 1.0) for n in range(12)]
    assert ceilings[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert ceilings[-1] == 30.0 and max(ceilings) == 30.0


def test_quota_waits_longer_and_holds_probe_slowly() -> None:
    policy = RetryPolicy()
    top = lambda: 1.0  # noqa: E731 - the worst case of the jitter
    assert policy.delay(Failure.QUOTA, 0, top) > policy.delay(Failure.TRANSIENT, 0, top)
    assert policy.delay(Failure.HOLD, 0, top) == policy.probe_interval
    assert policy.delay(Failure.CLOCK_SKEW, 5, top) == policy.probe_interval
    assert policy.delay(Failure.TOKEN_EXPIRED, 0, top) == 0.0  # the new token may be there


def test_quota_errors_halve_the_limit_and_successes_win_it_back() -> None:
    limit = AdaptiveLimit(8)
    limit.on_quota()
    limit.on_quota()
    assert limit.limit == 2
    limit.on_quota()
    limit.on_quota()
    assert limit.limit == 1  # never below one request in flight
    rounds = 0
    while limit.limit < 8:
        for _ in range(limit.limit):
            limit.on_success()
        rounds += 1
    assert rounds == 7  # additive: one more slot per round of requests
    for _ in range(100):
        limit.on_success()
    assert limit.limit == 8


def test_the_limit_caps_requests_in_flight() -> None:
    limit = AdaptiveLimit(4)
    limit.on_quota()
    assert limit.acquire(timeout=0) and limit.acquire(timeout=0)
    assert not limit.acquire(timeout=0.01)
    limit.release()
    assert limit.acquire(timeout=0)


def test_abort_wakes_a_sender_waiting_for_a_slot() -> None:
    limit = AdaptiveLimit(1)
    assert limit.acquire()
    result: list[bool] = []
    waiter = threading.Thread(target=lambda: result.append(limit.acquire()))
    waiter.start()
    limit.abort()
    waiter.join(timeout=1.0)
    assert result == [False]
