"""The sls output against the local Logstore, through the real SDK: what users rely on when the
network, the quota, the credentials or the Logstore misbehave."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.config import SlsOutput
from llmtail.agent.delivery.credentials import (
    Credentials,
    CredentialsError,
    FileCredentials,
    StaticCredentials,
)
from llmtail.agent.delivery.retry import Backoff, RetryPolicy
from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.delivery.sls import ORIGINAL_TIME_KEY, SlsSink
from llmtail.agent.delivery.sls_check import OutputCheckError, check_output
from llmtail.agent.engine.loggroup import RESERVED_KEYS
from llmtail.agent.engine.stream import SealedBatch
from llmtail.parsers.record import Record
from tests.batches import sealed, sealed_all
from tests.logstore.server import LocalLogstore

FAST = RetryPolicy(transient=Backoff(0.005, 0.05), quota=Backoff(0.01, 0.05), probe_interval=0.05)
DAY = 24 * 3600


def config(server: LocalLogstore, **overrides: Any) -> SlsOutput:
    values: dict[str, Any] = {
        "type": "sls",
        "endpoint": server.endpoint,
        "project": server.project,
        "logstore": server.logstore,
        "topic": "llm",
        "tags": {"env": "test"},
        "request_timeout": 2.0,
    }
    values.update(overrides)
    return SlsOutput(**values)


def sink(server: LocalLogstore, **kwargs: Any) -> SlsSink:
    creds = StaticCredentials(Credentials(server.access_key_id, server.access_key_secret))
    kwargs.setdefault("credentials", creds)
    kwargs.setdefault("policy", FAST)
    overrides = kwargs.pop("overrides", {})
    return SlsSink(config(server, **overrides), **kwargs)


_seq = iter(range(10**9))


def record(i: int, t: int | None = None) -> Record:
    return Record(
        fields={
            "time": "2026-11-27 14:23:24.748",
            "level": "ERROR",
            "trace_id": f"t{i}",
            "logger": "c.a.c.s.i.ChatServiceImpl",
            "line": None if i % 3 == 0 else 42,
            "event": "llm_call",
            "message": f"call {i}, with commas, 中文 and a\nstack\n\tat x",
            "status_code": 429,
            "duration_ms": 1234 + i,
        },
        time=int(time.time()) - 60 if t is None else t,
        time_ns=748_000_000,
    )


def batch(records: list[Record], source: str = "f1") -> SealedBatch:
    return sealed(records, source, wire="loggroup", seq=next(_seq))


def in_thread(fn: Callable[[], Outcome]) -> tuple[threading.Thread, list[Outcome]]:
    result: list[Outcome] = []
    thread = threading.Thread(target=lambda: result.append(fn()))
    thread.start()
    return thread, result


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.005)


@pytest.fixture
def server() -> Iterator[LocalLogstore]:
    """The shared local Logstore (tests/logstore), fresh per test."""
    with LocalLogstore() as running:
        yield running


@pytest.fixture
def quiet_sdk_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


def test_records_arrive_with_fields_time_topic_source_and_tags(server: LocalLogstore) -> None:
    s = sink(server)
    records = [record(i) for i in range(20)]
    sent = batch(records)
    assert s.send(sent) is Outcome.DELIVERED
    (group,) = server.groups()
    assert (group.topic, group.source) == ("llm", "10.0.0.7")
    tags = group.tag_dict
    assert tags["__hostname__"] == "h1" and tags["__path__"] == "/logs/f1.log"
    assert tags["env"] == "test" and tags["__pack_id__"].endswith("-0")
    assert group.compress_type == "lz4"
    for got, rec in zip(group.logs, records, strict=True):
        assert (got.time, got.time_ns) == (rec.time, rec.time_ns)
        expected = {k: str(v) for k, v in rec.fields.items() if v is not None}
        assert got.as_dict() == expected
    stats = s.stats()
    assert stats.delivered_logs == 20 and stats.requests == 1 and stats.bytes_sent > 0
    assert stats.last_delivery is not None and stats.retries == {}
    s.close()


def test_5000_records_go_in_two_loggroups_within_the_limits(server: LocalLogstore) -> None:
    s = sink(server)
    batches = sealed_all([record(i) for i in range(5000)], wire="loggroup", max_records=4096)
    assert [s.send(b) for b in batches] == [Outcome.DELIVERED] * 2
    assert [len(g.logs) for g in server.groups()] == [4096, 904]
    packs = [g.tag_dict["__pack_id__"] for g in server.groups()]
    assert packs[0] != packs[1] and packs[0].split("-")[0] == packs[1].split("-")[0]
    assert [r["trace_id"] for r in server.records()] == [f"t{i}" for i in range(5000)]


def test_the_output_state_says_retrying_during_5xx_and_delivering_after(
    server: LocalLogstore,
) -> None:
    server.faults.fail("InternalServerError", count=10**6)
    s = sink(server)
    thread, result = in_thread(lambda: s.send(batch([record(0)])))
    wait_until(lambda: s.state() == "retrying")
    server.faults.clear()
    thread.join(timeout=30)
    assert result == [Outcome.DELIVERED] and s.state() == "delivering"


def test_5xx_bursts_and_dropped_connections_are_retried_until_delivered(
    server: LocalLogstore,
) -> None:
    server.faults.fail("InternalServerError", count=3)
    server.faults.fail("ServerBusy", count=2)
    server.faults.drop(count=2)
    retried: list[None] = []
    s = sink(server, on_retry=lambda: retried.append(None))
    assert s.send(batch([record(i) for i in range(10)])) is Outcome.DELIVERED
    assert len(server.records()) == 10
    assert s.stats().retries == {"transient": 7} and len(retried) == 7
    assert s.stats().requests == 8


def test_a_quota_storm_slows_down_and_lowers_concurrency(server: LocalLogstore) -> None:
    s = sink(server, overrides={"concurrency": 8})
    server.faults.fail("ShardWriteQuotaExceed", count=3)
    assert s.send(batch([record(0)])) is Outcome.DELIVERED
    assert s.stats().retries == {"quota": 3}
    assert s.stats().concurrency_limit == 2  # 8 -> 4 -> 2 -> 1, and the success won one back
    for i in range(3):  # successes win the slots back, one per round of `limit` requests
        s.send(batch([record(i)]))
    assert s.stats().concurrency_limit == 3


def test_concurrent_senders_through_a_quota_storm_lose_nothing(server: LocalLogstore) -> None:
    s = sink(server, overrides={"concurrency": 4})
    server.faults.fail("WriteQuotaExceed", count=None, probability=0.4)
    batches = [batch([record(b * 10 + i) for i in range(10)], f"f{b % 3}") for b in range(16)]
    outcomes: list[Outcome] = []
    threads = [
        threading.Thread(target=lambda part=part: outcomes.extend(s.send(b) for b in part))
        for part in (batches[i::4] for i in range(4))
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [Outcome.DELIVERED] * 16
    got = sorted(r["trace_id"] for r in server.records())
    assert got == sorted(f"t{i}" for i in range(160))
    assert s.stats().retries["quota"] > 0


def test_an_expired_token_is_replaced_from_the_rotated_file(
    server: LocalLogstore, tmp_path: Path, quiet_sdk_logs: pytest.LogCaptureFixture
) -> None:
    key_id, old_secret, new_secret = "STS.NUrotate1234", "old-sts-secret-xyz", "new-sts-secret-xyz"
    old_token, new_token = "CAISold-token-abc", "CAISnew-token-def"
    server.add_credential(key_id, old_secret, old_token)
    path = tmp_path / "sts.yaml"
    body = "access_key_id: {}\naccess_key_secret: {}\nsecurity_token: {}\n"
    path.write_text(body.format(key_id, old_secret, old_token))
    path.chmod(0o600)
    s = sink(server, credentials=FileCredentials(path))
    assert s.send(batch([record(0)])) is Outcome.DELIVERED
    server.expire_token(old_token)
    thread, result = in_thread(lambda: s.send(batch([record(1)])))
    wait_until(lambda: server.stats().rejected.get("Unauthorized", 0) >= 3)
    server.add_credential(key_id, new_secret, new_token)  # the STS rotation, server side
    tmp = tmp_path / "sts.yaml.tmp"  # and the agent side: a new file renamed over the old
    tmp.write_text(body.format(key_id, new_secret, new_token))
    tmp.chmod(0o600)
    tmp.replace(path)
    thread.join(timeout=5)
    assert result == [Outcome.DELIVERED]
    assert [r["trace_id"] for r in server.records()] == ["t0", "t1"]
    assert s.stats().retries["token_expired"] >= 3
    for secret in (old_secret, new_secret, old_token, new_token):
        assert secret not in quiet_sdk_logs.text
    expired_lines = [r for r in quiet_sdk_logs.records if "expired" in r.getMessage()]
    assert len([r for r in expired_lines if r.levelno >= logging.WARNING]) == 1


def test_a_401_storm_never_logs_the_secret_and_holds_the_data(
    server: LocalLogstore, quiet_sdk_logs: pytest.LogCaptureFixture
) -> None:
    secret, token = "wrong-secret-1234567890", "CAIStoken-zyxwvu"
    creds = StaticCredentials(Credentials(server.access_key_id, secret, token))
    s = sink(server, credentials=creds)
    assert s.state() == "delivering"
    thread, result = in_thread(lambda: s.send(batch([record(0)])))
    wait_until(lambda: server.stats().rejected.get("SignatureNotMatch", 0) >= 5)
    assert result == []  # held: neither delivered nor rejected
    assert s.state() == "held"  # what /ready and llmtail_output_state say
    s.abort()
    thread.join(timeout=1)
    assert result == [Outcome.ABORTED]
    assert secret not in quiet_sdk_logs.text and token not in quiet_sdk_logs.text
    errors = [r for r in quiet_sdk_logs.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "SignatureNotMatch" in errors[0].getMessage()


def test_a_missing_logstore_holds_the_data_until_it_is_created(
    server: LocalLogstore, caplog: pytest.LogCaptureFixture
) -> None:
    server.remove_logstore(server.project, server.logstore)
    server.add_logstore(server.project, "other")  # keep the project
    s = sink(server)
    with caplog.at_level(logging.INFO, logger="llmtail.agent.delivery.sls"):
        thread, result = in_thread(lambda: s.send(batch([record(i) for i in range(5)])))
        wait_until(lambda: server.stats().rejected.get("LogStoreNotExist", 0) >= 4)
        assert result == []
        server.add_logstore(server.project, server.logstore)
        thread.join(timeout=5)
    assert result == [Outcome.DELIVERED]
    assert len(server.records()) == 5
    held = [r for r in caplog.records if "LogStoreNotExist" in r.getMessage()]
    assert len(held) == 1 and held[0].levelno == logging.ERROR  # once, not per probe
    assert "delivering again" in caplog.records[-1].getMessage()


def test_a_413_splits_the_loggroup_and_sends_the_halves(server: LocalLogstore) -> None:
    server.faults.fail("PostBodyTooLarge", count=2)
    s = sink(server)
    assert s.send(batch([record(i) for i in range(8)])) is Outcome.DELIVERED
    assert [len(g.logs) for g in server.groups()] == [2, 2, 4]
    assert sorted(r["trace_id"] for r in server.records()) == [f"t{i}" for i in range(8)]


def test_old_and_future_records_are_restamped_keeping_the_original_time(
    server: LocalLogstore,
) -> None:
    now = int(time.time())
    old, future, fine = now - 8 * DAY, now + 3600, now - 10
    s = sink(server)
    assert s.send(batch([record(0, old), record(1, future), record(2, fine)])) is Outcome.DELIVERED
    logs = server.logs()
    assert [log.as_dict().get(ORIGINAL_TIME_KEY) for log in logs] == [str(old), str(future), None]
    assert abs(logs[0].time - now) < 60 and abs(logs[1].time - now) < 60 and logs[2].time == fine
    assert s.stats().restamped_logs == 2 and server.stats().rejected == {}


def test_with_time_policy_reject_only_the_out_of_range_records_are_dropped(
    server: LocalLogstore,
) -> None:
    now = int(time.time())
    s = sink(server, overrides={"time_policy": "reject"})
    outcome = s.send(batch([record(0, now - 8 * DAY), record(1, now - 5)]))
    assert outcome is Outcome.DELIVERED
    assert [r["trace_id"] for r in server.records()] == ["t1"]
    assert s.stats().rejected_logs == 1
    assert s.send(batch([record(2, now - 9 * DAY)])) is Outcome.REJECTED  # final: never stuck
    assert s.stats().rejected_logs == 2 and server.stats().requests == 1


def test_when_the_server_disagrees_on_time_the_policy_still_applies(
    server: LocalLogstore,
) -> None:
    skew = DAY  # this host believes it is a day earlier than the server does
    real_now = int(time.time())
    s = sink(server, clock=lambda: time.time() - skew)
    edge = real_now - 7 * DAY - 600  # fine for the host's clock, too old for the server's
    assert s.send(batch([record(0, edge)])) is Outcome.DELIVERED
    (log,) = server.logs()
    assert log.as_dict()[ORIGINAL_TIME_KEY] == str(edge)
    assert server.stats().rejected == {"PostBodyInvalid": 1}


def test_abort_during_backoff_returns_promptly(server: LocalLogstore) -> None:
    slow = RetryPolicy(transient=Backoff(600.0, 600.0))
    retrying = threading.Event()  # set just before the sender starts its 600 s backoff
    s = sink(server, policy=slow, rand=lambda: 1.0, on_retry=retrying.set)
    server.faults.fail("InternalServerError", count=10**6)
    thread, result = in_thread(lambda: s.send(batch([record(0)])))
    assert retrying.wait(30)
    s.abort()
    thread.join(timeout=60)  # only the abort can end a 600 s backoff this soon
    assert result == [Outcome.ABORTED]
    assert s.send(batch([record(1)])) is Outcome.ABORTED  # later sends do not start
    assert server.stats().requests == 1


def blocked_in(thread: threading.Thread, function: str, filename: str) -> bool:
    """Whether `thread` is inside `function` of a file ending in `filename` right now."""
    frame = sys._current_frames().get(thread.ident or -1)
    while frame is not None:
        if frame.f_code.co_name == function and frame.f_code.co_filename.endswith(filename):
            return True
        frame = frame.f_back
    return False


def test_abort_ends_a_request_in_flight_and_a_sender_waiting_for_a_slot(
    server: LocalLogstore,
) -> None:
    s = sink(server, overrides={"concurrency": 1, "request_timeout": 600.0})
    server.faults.delay(600.0, count=1)  # the server holds the first request for 10 minutes
    first, first_result = in_thread(lambda: s.send(batch([record(0)])))
    wait_until(lambda: server.stats().requests >= 1)
    second, second_result = in_thread(lambda: s.send(batch([record(1)])))
    wait_until(lambda: blocked_in(second, "acquire", "delivery/retry.py"))  # waits for the slot
    s.abort()
    second.join(timeout=60)
    first.join(timeout=60)  # not 600 s: the abort closed the connection under the request
    assert second_result == [Outcome.ABORTED]
    assert first_result == [Outcome.ABORTED]
    assert server.stats().requests == 1


def test_give_up_after_turns_a_long_outage_into_rejected(server: LocalLogstore) -> None:
    server.faults.fail("InternalServerError", count=10**6)
    s = sink(server, give_up_after=0.1)
    assert s.send(batch([record(0), record(1)])) is Outcome.REJECTED
    assert s.stats().rejected_logs == 2


def test_an_outage_is_ridden_out(server: LocalLogstore) -> None:
    s = sink(server)
    server.outage(0.3)
    assert s.send(batch([record(i) for i in range(3)])) is Outcome.DELIVERED
    assert len(server.records()) == 3
    assert s.stats().retries["transient"] >= 1


def test_uncompressed_output_when_configured(server: LocalLogstore) -> None:
    s = sink(server, overrides={"compress": "none"})
    assert s.send(batch([record(0)])) is Outcome.DELIVERED
    assert server.groups()[0].compress_type == ""


def check(server: LocalLogstore, creds: Credentials | None = None, **overrides: Any) -> str:
    source = StaticCredentials(creds or Credentials(server.access_key_id, server.access_key_secret))
    try:
        return check_output(config(server, **overrides), credentials=source, timeout=0.5)
    except OutputCheckError as exc:
        message = str(exc)
        assert "\n" not in message and server.access_key_secret not in message
        return message


def test_check_output_proves_the_whole_path_and_stores_nothing(server: LocalLogstore) -> None:
    message = check(server)
    assert message.startswith("OK: llmtail-test/llmtail at http://127.0.0.1:")
    assert server.logs() == [] and server.stats().accepted_requests == 1


def test_check_output_accepts_a_complaint_about_the_empty_probe_itself(
    server: LocalLogstore,
) -> None:
    server.faults.fail("PostBodyInvalid", message="LogGroup has no logs", count=1)
    assert check(server).startswith("OK: llmtail-test/llmtail")
    server.faults.fail("PostBodyInvalid", status=400, count=1)
    server.faults.fail("InvalidKey", status=400, count=1)
    assert check(server).startswith("OK:")
    assert check(server).startswith("SLS refused the check: HTTP 400 InvalidKey")


def test_check_output_says_what_is_wrong_in_one_line(server: LocalLogstore) -> None:
    key = server.access_key_id
    assert "secret does not match" in check(server, Credentials(key, "not-the-secret"))
    assert "is not known to SLS" in check(server, Credentials("LTAI5tUnknownKey99", "x"))
    assert "project 'nope' does not exist" in check(server, project="nope")
    assert "logstore 'nope' does not exist in project" in check(server, logstore="nope")
    server.faults.delay(2.0, count=1)
    assert "no answer within the timeout" in check(server)
    server.add_credential("STS.key12345", "sts-secret", "tok")
    server.expire_token("tok")
    assert "token has expired" in check(server, Credentials("STS.key12345", "sts-secret", "tok"))
    server.stop()
    assert f"cannot reach {server.endpoint}: connection refused" in check(server)


def test_unusable_credentials_or_endpoint_are_one_line(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    path.write_text("access_key_id: LTAI5tExampleKeyId\naccess_key_secret: top-secret\n")
    path.chmod(0o644)
    cfg = SlsOutput(
        type="sls", endpoint="127.0.0.1:1", project="p", logstore="l", credentials_file=str(path)
    )
    with pytest.raises(OutputCheckError, match=r"chmod 600"):
        check_output(cfg)
    with pytest.raises(CredentialsError, match=r"chmod 600"):
        SlsSink(cfg)
    bad = cfg.model_copy(update={"endpoint": "ftp://x", "credentials_file": None})
    creds = StaticCredentials(Credentials("LTAI5tExampleKeyId", "x"))
    with pytest.raises(OutputCheckError, match="scheme must be http or https"):
        check_output(bad, credentials=creds)


def test_restamping_is_said_once_a_minute_not_per_batch(
    server: LocalLogstore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [1000.0]
    s = sink(server, monotonic=lambda: clock[0])
    old = int(time.time()) - 8 * DAY
    with caplog.at_level(logging.WARNING, logger="llmtail.agent.delivery.sls"):
        for i in range(3):
            assert s.send(batch([record(i, old)])) is Outcome.DELIVERED
        clock[0] += 61
        s.send(batch([record(3, old)]))
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 2
    assert said[0].startswith("SLS output: sent 1 record(s) with the current time")
    assert said[1].startswith("SLS output: sent 3 record(s) with the current time")
    assert s.stats().restamped_logs == 4 and len(server.records()) == 4


def test_a_split_group_keeps_track_of_which_records_were_restamped(server: LocalLogstore) -> None:
    real_now = int(time.time())
    s = sink(server, clock=lambda: time.time() - DAY)  # as in the disagreement above
    records = [
        record(0, real_now - 9 * DAY),  # restamped before sending: too old even for this host
        record(1, real_now - 7 * DAY - 600),  # restamped after the server's answer
        record(2, real_now - 2 * DAY),  # fine for both clocks
        record(3, real_now - 2 * DAY),
    ]
    server.faults.fail("PostBodyTooLarge", count=1)
    assert s.send(batch(records)) is Outcome.DELIVERED
    got = {r["trace_id"]: r.get(ORIGINAL_TIME_KEY) for r in server.records()}
    assert got == {"t0": str(real_now - 9 * DAY), "t1": str(real_now - 7 * DAY - 600)} | {
        "t2": None,
        "t3": None,
    }
    assert s.stats().restamped_logs == 2
    assert server.stats().rejected == {"PostBodyTooLarge": 1, "PostBodyInvalid": 1}


legal_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,30}", fullmatch=True).filter(
    lambda k: k not in RESERVED_KEYS
)
field_values = st.one_of(st.none(), st.text(max_size=200), st.integers(-(2**63), 2**63 - 1))


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.dictionaries(legal_keys, field_values, max_size=8), min_size=1, max_size=6),
    st.integers(-6 * DAY, 10 * 60),
    st.integers(0, 999_999_999),
)
def test_any_record_arrives_unchanged_through_the_sdk(
    fields: list[dict[str, Any]], age: int, ns: int
) -> None:
    t = int(time.time()) + age
    with LocalLogstore() as server:
        s = sink(server)
        sent = batch([Record(fields=f, time=t, time_ns=ns) for f in fields])
        assert s.send(sent) is Outcome.DELIVERED
        got = server.logs()
        s.close()
    assert [(log.time, log.time_ns) for log in got] == [(t, ns)] * len(fields)
    expected = [[(k, str(v)) for k, v in f.items() if v is not None] for f in fields]
    assert [list(log.contents) for log in got] == expected


class Flaky:
    """Credentials whose first `get` fails with an unexpected error (a bug, not a user error)."""

    def __init__(self, server: LocalLogstore) -> None:
        self.calls = 0
        self.creds = Credentials(server.access_key_id, server.access_key_secret)

    def get(self) -> Credentials:
        self.calls += 1
        if self.calls == 1:
            raise RuntimeError("unexpected")
        return self.creds

    def refresh(self) -> None:
        pass


def test_an_unexpected_client_error_is_retried_not_fatal(server: LocalLogstore) -> None:
    s = sink(server, credentials=Flaky(server))
    assert s.send(batch([record(0)])) is Outcome.DELIVERED
    assert s.stats().retries == {"transient": 1}
    assert s.stats().last_error == "no response ClientError: RuntimeError"


def test_flapping_errors_are_said_once_a_minute(
    server: LocalLogstore, caplog: pytest.LogCaptureFixture
) -> None:
    clock = [0.0]
    s = sink(server, monotonic=lambda: clock[0])
    with caplog.at_level(logging.INFO, logger="llmtail.agent.delivery.sls"):
        for i in range(3):  # each send: one 500, then success
            server.faults.fail("InternalServerError", count=1)
            assert s.send(batch([record(i)])) is Outcome.DELIVERED
        clock[0] += 61
        server.faults.fail("InternalServerError", count=1)
        s.send(batch([record(3)]))
    said = [r.getMessage() for r in caplog.records]
    assert len([m for m in said if "InternalServerError" in m]) == 2  # at 0 s and at 61 s
    assert len([m for m in said if "delivering again" in m]) == 2
    assert s.stats().retries == {"transient": 4}
