"""The local Logstore accepts what SLS accepts, rejects what SLS rejects, and fails on demand.

Acceptance goes through the real SDK `LogClient`; fault tests mostly use raw signed requests so
that each test sees exactly one answer (the SDK retries 5xx ten times, a second apart).
"""

from __future__ import annotations

import http.client
import math
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import lz4.block
import pytest
from aliyun.log import LogException, LogItem, PutLogsRequest
from aliyun.log.log_logs_raw_pb2 import LogGroupRaw  # type: ignore[attr-defined]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.logstore import FaultPlan, LocalLogstore
from tests.logstore.client import (
    Answer,
    admin,
    raw_request,
    sdk_client,
    sdk_client_for,
    sdk_route,
    signed_post,
)
from tests.logstore.codec import RESERVED_KEYS
from tests.logstore.fixtures import logstore_fixture  # noqa: F401 - the `logstore` fixture
from tests.logstore.signing import http_date, signature, string_to_sign
from tests.logstore.sls import project_from_host

REPO = Path(__file__).resolve().parent.parent

# The SDK reaches the `logstore` fixture by name, through `requests`' proxy (tests/logstore).
pytestmark = pytest.mark.usefixtures("sdk_logstore")


def now() -> int:
    return int(time.time())


def group_bytes(
    logs: list[tuple[int, list[tuple[str, str]]]], topic: str = "", source: str = "10.0.0.9"
) -> bytes:
    group = LogGroupRaw()
    group.Topic = topic
    group.Source = source
    for t, contents in logs:
        log = group.Logs.add()
        log.Time = t
        for key, value in contents:
            content = log.Contents.add()
            content.Key = key
            content.Value = value.encode()
    data: bytes = group.SerializeToString()
    return data


def lz4_post(server: LocalLogstore, raw: bytes, **kwargs: object) -> Answer:
    body = lz4.block.compress(raw)[4:]
    return signed_post(server, body, raw_size=len(raw), **kwargs)  # type: ignore[arg-type]


def one_log(key: str = "message", value: str = "hello") -> bytes:
    return group_bytes([(now(), [(key, value)])])


def put(server: LocalLogstore, items: list[LogItem], **client_kwargs: str) -> None:
    client = sdk_client(server, **client_kwargs)
    with sdk_route(server.url):
        client.put_logs(PutLogsRequest(server.project, server.logstore, "", None, items))


def sdk_error(server: LocalLogstore, items: list[LogItem], **client_kwargs: str) -> LogException:
    with pytest.raises(LogException) as info:
        put(server, items, **client_kwargs)
    return info.value


# -- signing ---------------------------------------------------------------------------------


def test_signature_matches_the_published_test_vector() -> None:
    headers = {
        "Date": "Mon, 3 Jan 2010 08:33:47 GMT",
        "x-log-apiversion": "0.6.0",
        "x-log-bodyrawsize": "0",
        "x-log-signaturemethod": "hmac-sha1",
    }
    text = string_to_sign("GET", "/logstores", {}, headers)
    assert signature("mockAccessKeySecret", text) == "Rwm6cTKzoti4HWoe+GKcb6Kv07E="


def test_signature_ignores_x_log_date_and_sorts_query_parameters() -> None:
    base = {"Date": "d", "x-log-apiversion": "0.6.0"}
    with_date = {**base, "x-log-date": "d"}
    assert string_to_sign("POST", "/p", {"b": "2", "a": "1"}, with_date) == string_to_sign(
        "POST", "/p", {"a": "1", "b": "2"}, base
    )
    assert string_to_sign("POST", "/p", {"b": "2", "a": "1"}, base).endswith("/p?a=1&b=2")


@pytest.mark.parametrize(
    ("host", "project"),
    [
        ("proj.cn-hangzhou.log.aliyuncs.com", "proj"),
        ("proj.sls.llmtail.test", "proj"),  # the SDK's Host for the tests' endpoint name
        ("sls.llmtail.test", "default"),  # the SDK's project-less calls (resource records)
        ("proj.127.0.0.1", "proj"),  # the SDK's Host in raw-IP mode
        ("proj.127.0.0.1:8080", "proj"),
        ("127.0.0.1:8080", "default"),
        ("127.0.0.1", "default"),
        ("localhost:8080", "default"),
        (None, "default"),
    ],
)
def test_project_comes_from_the_host_header(host: str | None, project: str) -> None:
    assert project_from_host(host, "default") == project


# -- accepts what SLS accepts ------------------------------------------------------------------


def test_sdk_put_logs_is_stored_with_times_topic_source_and_tags(logstore: LocalLogstore) -> None:
    t = now()
    item = LogItem(t, [("level", "INFO"), ("message", "a, b, 中文")])
    item.set_time_nano_part(123456789)
    second = LogItem(t - 1, [("message", "second")])
    client = sdk_client(logstore, source="10.1.2.3")
    request = PutLogsRequest(
        logstore.project,
        logstore.logstore,
        "my-topic",
        None,
        [item, second],
        logtags=[("__pack_id__", "ABC-1"), ("__path__", "/var/log/app.log")],
    )
    response = client.put_logs(request)

    (group,) = logstore.groups()
    assert response.get_request_id() == group.request_id
    assert (group.project, group.logstore) == (logstore.project, logstore.logstore)
    assert (group.topic, group.source, group.compress_type) == ("my-topic", "10.1.2.3", "lz4")
    assert group.tag_dict == {"__pack_id__": "ABC-1", "__path__": "/var/log/app.log"}
    assert [(log.time, log.time_ns) for log in group.logs] == [
        (t, 123456789),
        (t - 1, second.get_time_nano_part()),
    ]
    assert group.logs[0].contents == (("level", "INFO"), ("message", "a, b, 中文"))
    assert logstore.records() == [
        {"level": "INFO", "message": "a, b, 中文"},
        {"message": "second"},
    ]


def test_hash_key_requests_are_routed_and_stored(logstore: LocalLogstore) -> None:
    client = sdk_client(logstore)
    request = PutLogsRequest(
        logstore.project, logstore.logstore, "", None, [LogItem(now(), [("k", "v")])], "00ff"
    )
    client.put_logs(request)
    assert [g.hash_key for g in logstore.groups()] == ["00ff"]


@pytest.mark.parametrize("compress_type", ["lz4", "zstd"])
def test_sdk_compress_types_are_decoded(logstore: LocalLogstore, compress_type: str) -> None:
    client = sdk_client(logstore)
    items = [LogItem(now(), [("n", str(i)), ("pad", "x" * 200)]) for i in range(50)]
    request = PutLogsRequest(
        logstore.project, logstore.logstore, "", None, items, compress_type=compress_type
    )
    client.put_logs(request)
    assert [r["n"] for r in logstore.records()] == [str(i) for i in range(50)]
    assert logstore.groups()[0].compress_type == compress_type


def test_uncompressed_and_deflate_bodies_are_decoded(logstore: LocalLogstore) -> None:
    client = sdk_client(logstore)
    request = PutLogsRequest(
        logstore.project, logstore.logstore, "", None, [LogItem(now(), [("a", "plain")])]
    )
    request.set_compress(False)
    client.put_logs(request)
    raw = one_log("a", "deflated")
    answer = signed_post(logstore, zlib.compress(raw), raw_size=len(raw), compress_type="deflate")
    assert answer.status == 200
    assert [r["a"] for r in logstore.records()] == ["plain", "deflated"]


def test_put_log_raw_seam_is_accepted(logstore: LocalLogstore) -> None:
    group = LogGroupRaw()
    log = group.Logs.add()
    log.Time = now()
    log.Time_ns = 7
    content = log.Contents.add()
    content.Key, content.Value = "raw", b"bytes"
    sdk_client(logstore).put_log_raw(logstore.project, logstore.logstore, group)
    assert [(log.time_ns, log.as_dict()) for log in logstore.logs()] == [(7, {"raw": "bytes"})]


def test_success_is_an_empty_body_with_a_request_id(logstore: LocalLogstore) -> None:
    answer = lz4_post(logstore, one_log())
    assert (answer.status, answer.body) == (200, b"")
    assert answer.request_id is not None and len(answer.request_id) == 24


def test_a_bare_ip_host_writes_to_the_default_project(logstore: LocalLogstore) -> None:
    raw = one_log()
    answer = lz4_post(logstore, raw, extra_headers={"Host": logstore.endpoint})
    assert answer.status == 200
    assert logstore.groups()[0].project == logstore.project


def test_sts_token_is_accepted_until_it_expires() -> None:
    with LocalLogstore(security_token="sts-token-1") as server:
        put(server, [LogItem(now(), [("a", "1")])])
        assert server.records() == [{"a": "1"}]

        wrong = sdk_error(server, [LogItem(now(), [("a", "2")])], security_token="other")
        assert (wrong.get_error_code(), wrong.get_resp_status()) == ("Unauthorized", 401)
        assert "invalid" in wrong.get_error_message()

        server.expire_token("sts-token-1")
        expired = sdk_error(server, [LogItem(now(), [("a", "3")])])
        assert (expired.get_error_code(), expired.get_resp_status()) == ("Unauthorized", 401)
        assert "expired" in expired.get_error_message()
        assert server.records() == [{"a": "1"}]


def test_runtime_added_logstores_and_projects_accept_writes(logstore: LocalLogstore) -> None:
    logstore.add_logstore("other-project", "other")
    raw = one_log("where", "other")
    answer = lz4_post(logstore, raw, project="other-project", logstore="other")
    assert answer.status == 200
    assert logstore.records("other-project", "other") == [{"where": "other"}]
    assert logstore.records(logstore.project) == []


def test_sdk_get_logstore_answers_for_reachability_checks(logstore: LocalLogstore) -> None:
    client = sdk_client(logstore)
    response = client.get_logstore(logstore.project, logstore.logstore)
    assert response.get_shard_count() == 2
    with pytest.raises(LogException) as info:
        client.get_logstore(logstore.project, "absent")
    assert info.value.get_error_code() == "LogStoreNotExist"


def test_concurrent_writers_are_all_stored_and_counted(logstore: LocalLogstore) -> None:
    def writer(w: int) -> None:
        client = sdk_client(logstore)
        for i in range(10):
            items = [
                LogItem(now(), [("w", str(w)), ("i", str(i)), ("j", str(j))]) for j in range(5)
            ]
            client.put_logs(PutLogsRequest(logstore.project, logstore.logstore, "", None, items))

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seen = sorted((r["w"], r["i"], r["j"]) for r in logstore.records())
    expected = sorted(
        (str(w), str(i), str(j)) for w in range(4) for i in range(10) for j in range(5)
    )
    assert seen == expected
    stats = logstore.stats()
    assert (stats.requests, stats.accepted_requests, stats.accepted_logs) == (40, 40, 200)


_keys = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(
    lambda k: k not in RESERVED_KEYS
)
_values = st.text(st.characters(codec="utf-8"), max_size=50)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(st.lists(st.tuples(_keys, _values), max_size=6), min_size=1, max_size=5))
def test_any_valid_log_group_round_trips(
    logstore: LocalLogstore, logs: list[list[tuple[str, str]]]
) -> None:
    logstore.reset()
    t = now()
    answer = lz4_post(logstore, group_bytes([(t, contents) for contents in logs]))
    assert answer.status == 200, answer.body
    assert [log.contents for log in logstore.logs()] == [tuple(c) for c in logs]


# -- rejects what SLS rejects ------------------------------------------------------------------


def test_wrong_secret_is_signature_not_match(logstore: LocalLogstore) -> None:
    err = sdk_error(logstore, [LogItem(now(), [("a", "1")])], access_key_secret="wrong")
    assert (err.get_resp_status(), err.get_error_code()) == (401, "SignatureNotMatch")
    assert logstore.records() == []
    assert logstore.stats().rejected == {"SignatureNotMatch": 1}


def test_unknown_access_key_id_is_rejected(logstore: LocalLogstore) -> None:
    err = sdk_error(logstore, [LogItem(now(), [("a", "1")])], access_key_id="LTAIunknown")
    assert (err.get_resp_status(), err.get_error_code()) == (401, "InvalidAccessKeyId")


def test_a_body_changed_in_transit_fails_content_md5(logstore: LocalLogstore) -> None:
    raw = one_log("a", "1")
    body = lz4.block.compress(raw)[4:]
    corrupted = lz4.block.compress(one_log("a", "2"))[4:]
    answer = signed_post(logstore, body, raw_size=len(raw), sent_body=corrupted)
    assert (answer.status, answer.error_code) == (400, "InvalidContentMD5")
    assert answer.request_id is not None
    assert logstore.records() == []


def test_body_raw_size_must_match_what_decompresses(logstore: LocalLogstore) -> None:
    raw = one_log()
    lz4_body = lz4.block.compress(raw)[4:]
    for body, compress_type in ((lz4_body, "lz4"), (raw, "")):
        answer = signed_post(logstore, body, raw_size=len(raw) + 5, compress_type=compress_type)
        assert (answer.status, answer.error_code) == (400, "InvalidBodyRawSize")
    missing = signed_post(logstore, raw, raw_size=len(raw), compress_type="")
    assert missing.status == 200  # the control: the same body with the right size is fine


def test_unknown_compression_and_corrupt_bodies_are_rejected(logstore: LocalLogstore) -> None:
    raw = one_log()
    unknown = signed_post(logstore, raw, raw_size=len(raw), compress_type="snappy")
    assert (unknown.status, unknown.error_code) == (400, "InvalidCompressType")
    corrupt = signed_post(logstore, b"\xff" * 40, raw_size=400, compress_type="lz4")
    assert (corrupt.status, corrupt.error_code) == (400, "PostBodyUncompressError")
    garbage = b"\x0a\x05\xff\xff"
    not_proto = signed_post(logstore, garbage, raw_size=len(garbage), compress_type="")
    assert (not_proto.status, not_proto.error_code) == (400, "PostBodyInvalid")
    no_time = b"\x0a\x00"  # a Log without its required Time
    missing = signed_post(logstore, no_time, raw_size=len(no_time), compress_type="")
    assert (missing.status, missing.error_code) == (400, "PostBodyInvalid")


def test_raw_body_over_10_mb_is_413(logstore: LocalLogstore) -> None:
    items = [LogItem(now(), [("v", "x" * 1_000_000)]) for _ in range(11)]
    err = sdk_error(logstore, items)
    assert (err.get_resp_status(), err.get_error_code()) == (413, "PostBodyTooLarge")


def test_more_than_4096_logs_in_a_group_is_rejected(logstore: LocalLogstore) -> None:
    t = now()
    assert lz4_post(logstore, group_bytes([(t, [("i", "1")])] * 4096)).status == 200
    answer = lz4_post(logstore, group_bytes([(t, [("i", "1")])] * 4097))
    assert (answer.status, answer.error_code) == (400, "PostBodyTooLarge")
    assert logstore.stats().accepted_logs == 4096


def test_value_over_1_mb_is_rejected(logstore: LocalLogstore) -> None:
    assert lz4_post(logstore, one_log("v", "x" * (1024 * 1024))).status == 200
    answer = lz4_post(logstore, one_log("v", "x" * (1024 * 1024 + 1)))
    assert (answer.status, answer.error_code) == (400, "PostBodyInvalid")


@pytest.mark.parametrize(
    "key",
    ["a-b", "1abc", "has space", "__tag__:x", "x" * 129, "__time__", "__topic__", "__source__"],
)
def test_invalid_and_reserved_keys_are_rejected(logstore: LocalLogstore, key: str) -> None:
    err = sdk_error(logstore, [LogItem(now(), [("ok", "1"), (key, "v")])])
    assert (err.get_resp_status(), err.get_error_code()) == (400, "InvalidKey")


@pytest.mark.parametrize("key", ["_x", "a" * 128, "A_1", "__pack_id__"])
def test_valid_keys_are_accepted(logstore: LocalLogstore, key: str) -> None:
    put(logstore, [LogItem(now(), [(key, "v")])])
    assert logstore.records() == [{key: "v"}]


@pytest.mark.parametrize("offset", [-7 * 86400 - 60, 15 * 60 + 60])
def test_a_log_time_out_of_range_fails_the_whole_request(
    logstore: LocalLogstore, offset: int
) -> None:
    good = LogItem(now(), [("a", "ok")])
    bad = LogItem(now() + offset, [("a", "bad")])
    err = sdk_error(logstore, [good, bad])
    assert (err.get_resp_status(), err.get_error_code()) == (400, "PostBodyInvalid")
    assert err.get_error_message() == "The post data time is out of range"
    assert logstore.records() == []


def test_times_inside_the_window_are_accepted(logstore: LocalLogstore) -> None:
    put(logstore, [LogItem(now() - 7 * 86400 + 60, [("a", "old")]), LogItem(now() + 800, [])])
    assert logstore.stats().accepted_logs == 2


def test_request_date_skewed_over_15_minutes_is_rejected(logstore: LocalLogstore) -> None:
    stale = signed_post(logstore, b"", raw_size=0, date=http_date(time.time() - 16 * 60))
    assert (stale.status, stale.error_code) == (400, "RequestTimeExpired")
    with LocalLogstore(clock=lambda: time.time() + 3600) as ahead:
        err = sdk_error(ahead, [LogItem(int(time.time()) + 3600, [("a", "1")])])
        assert (err.get_resp_status(), err.get_error_code()) == (400, "RequestTimeExpired")


def test_missing_logstore_and_project_are_404(logstore: LocalLogstore) -> None:
    answer = lz4_post(logstore, one_log(), logstore="absent")
    assert (answer.status, answer.error_code) == (404, "LogStoreNotExist")
    answer = lz4_post(logstore, one_log(), project="absent-project")
    assert (answer.status, answer.error_code) == (404, "ProjectNotExist")
    logstore.remove_logstore(logstore.project, logstore.logstore)
    err = sdk_error(logstore, [LogItem(now(), [("a", "1")])])
    assert (err.get_resp_status(), err.get_error_code()) == (404, "ProjectNotExist")


# -- faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "status", "answered_code"),
    [
        ("InternalServerError", 500, "InternalServerError"),
        ("ServerBusy", 503, "ServerBusy"),
        ("WriteQuotaExceed", 403, "WriteQuotaExceed"),
        ("ShardWriteQuotaExceed", 403, "ShardWriteQuotaExceed"),
        ("Unauthorized", 401, "Unauthorized"),
        ("TokenExpired", 401, "Unauthorized"),
    ],
)
def test_injected_errors_answer_the_next_requests_then_stop(
    logstore: LocalLogstore, code: str, status: int, answered_code: str
) -> None:
    logstore.faults.fail(code, count=2)
    answers = [lz4_post(logstore, one_log("n", str(i))) for i in range(3)]
    assert [(a.status, a.error_code) for a in answers] == [
        (status, answered_code),
        (status, answered_code),
        (200, None),
    ]
    assert all(a.request_id for a in answers)
    assert logstore.records() == [{"n": "2"}]
    assert logstore.stats().rejected == {answered_code: 2}


def test_sdk_retries_an_injected_500_and_succeeds(logstore: LocalLogstore) -> None:
    logstore.faults.fail("InternalServerError", count=1)
    put(logstore, [LogItem(now(), [("a", "1")])])  # the SDK's own retry: one 1 s sleep
    assert logstore.records() == [{"a": "1"}]
    assert logstore.stats().requests == 2


def test_a_fraction_of_requests_fails(logstore: LocalLogstore) -> None:
    logstore.faults.fail("ServerBusy", probability=0.5)
    statuses = [lz4_post(logstore, one_log()).status for _ in range(40)]
    assert 5 <= statuses.count(503) <= 35
    assert statuses.count(503) + statuses.count(200) == 40


def test_a_fault_window_ends_by_the_clock() -> None:
    clock = [100.0]
    plan = FaultPlan(clock=lambda: clock[0])
    plan.fail("ServerBusy", seconds=10)
    assert plan.verdict().error is not None
    clock[0] = 109.9
    assert plan.verdict().error is not None
    clock[0] = 110.0
    assert plan.verdict().error is None
    assert plan.rules() == []


def test_slow_answers_are_delayed(logstore: LocalLogstore) -> None:
    logstore.faults.delay(0.3, count=1)
    started = time.monotonic()
    assert lz4_post(logstore, one_log()).status == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    assert lz4_post(logstore, one_log()).status == 200
    assert time.monotonic() - started < 0.3


def test_dropped_connection_before_storing_loses_the_request(logstore: LocalLogstore) -> None:
    logstore.faults.drop(count=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        lz4_post(logstore, one_log("n", "1"))
    assert lz4_post(logstore, one_log("n", "2")).status == 200
    assert logstore.records() == [{"n": "2"}]
    assert logstore.stats().dropped_connections == 1


def test_dropped_connection_after_storing_makes_a_duplicate_on_retry(
    logstore: LocalLogstore,
) -> None:
    logstore.faults.drop(after_store=True, count=1)
    # Raw requests: through the tests' proxy route the SDK would retry the drop itself.
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        lz4_post(logstore, one_log("n", "1"))  # what the agent sees: a network error
    assert lz4_post(logstore, one_log("n", "1")).status == 200  # the agent's retry
    assert logstore.records() == [{"n": "1"}, {"n": "1"}]


def test_outage_refuses_connections_then_serves_on_the_same_port(
    logstore: LocalLogstore,
) -> None:
    port = logstore.port
    logstore.outage(0.5)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    deadline = time.monotonic() + 5
    while not logstore.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert logstore.port == port
    assert lz4_post(logstore, one_log()).status == 200


def test_stop_resets_open_keep_alive_connections(logstore: LocalLogstore) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", logstore.port, timeout=5)
    conn.request("GET", "/_llmtail/stats")
    assert conn.getresponse().read()  # the connection is now idle, kept alive
    logstore.stop()
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        conn.request("GET", "/_llmtail/stats")
        conn.getresponse()
    conn.close()
    logstore.start()
    assert lz4_post(logstore, one_log()).status == 200


def test_drop_all_window_keeps_listening_but_answers_nothing() -> None:
    clock = [1000.0]
    with LocalLogstore(monotonic=lambda: clock[0]) as logstore:
        logstore.outage(0.3, refuse=False)
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            lz4_post(logstore, one_log())
        clock[0] += 0.29
        with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
            lz4_post(logstore, one_log())
        clock[0] += 0.02  # the window is over
        assert lz4_post(logstore, one_log()).status == 200
        assert logstore.stats().accepted_logs == 1


# -- modes: count-only, admin API, separate process ----------------------------------------------


def test_count_only_mode_counts_without_keeping_records() -> None:
    """It frames the whole group, counts its logs and checks the first and last in full."""
    with LocalLogstore(count_only=True) as server:
        t = now()
        assert lz4_post(server, group_bytes([(t, [("a", "1")])] * 100)).status == 200
        bad = lz4_post(server, group_bytes([(t - 8 * 86400, [("a", "1")])]))
        assert bad.error_code == "PostBodyInvalid"
        late = group_bytes([(t, [("a", "1")])] * 99 + [(t + 3600, [("a", "1")])])
        assert lz4_post(server, late).error_code == "PostBodyInvalid"
        bad_key = group_bytes([(t, [("a", "1")])] * 99 + [(t, [("__time__", "1")])])
        assert lz4_post(server, bad_key).error_code == "InvalidKey"
        too_many = group_bytes([(t, [("a", "1")])] * 4097)
        assert lz4_post(server, too_many).error_code == "PostBodyTooLarge"
        torn = group_bytes([(t, [("a", "1")])] * 3)[:-2]
        assert lz4_post(server, torn).error_code == "PostBodyInvalid"
        no_time = b"\x0a\x00"  # a Log without its required Time
        missing = signed_post(server, no_time, raw_size=len(no_time), compress_type="")
        assert missing.error_code == "PostBodyInvalid"
        stats = server.stats()
        assert (stats.accepted_logs, stats.accepted_requests) == (100, 1)
        assert server.records() == []


def test_admin_api_reports_records_stats_and_programs_faults(logstore: LocalLogstore) -> None:
    put(logstore, [LogItem(now(), [("a", "1")])])
    assert admin(logstore.url, "GET", "records") == {"records": [{"a": "1"}]}
    (group,) = admin(logstore.url, "GET", "groups")["groups"]
    assert group["logs"][0]["contents"] == [["a", "1"]]
    admin(logstore.url, "POST", "faults", {"kind": "error", "code": "ServerBusy", "count": 1})
    assert lz4_post(logstore, one_log()).error_code == "ServerBusy"
    admin(logstore.url, "POST", "logstores", {"project": "p2", "logstore": "l2"})
    assert lz4_post(logstore, one_log(), project="p2", logstore="l2").status == 200
    stats = admin(logstore.url, "GET", "stats")
    assert (stats["accepted_logs"], stats["rejected"]) == (2, {"ServerBusy": 1})
    admin(logstore.url, "POST", "reset")
    assert admin(logstore.url, "GET", "stats")["accepted_logs"] == 0
    unknown = raw_request(logstore, "GET", "/_llmtail/nothing")
    assert unknown.status == 404


@pytest.fixture
def logstore_process() -> Iterator[tuple[subprocess.Popen[str], int]]:
    args = [sys.executable, "-m", "tests.logstore", "--port", "0", "--project", "pp"]
    args += ["--logstore", "ll", "--ak-id", "id1", "--ak-secret", "s1", "--count-only"]
    proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        yield proc, int(proc.stdout.readline())
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_runs_as_a_separate_process(logstore_process: tuple[subprocess.Popen[str], int]) -> None:
    proc, port = logstore_process
    url = f"http://127.0.0.1:{port}"
    client = sdk_client_for(url, "id1", "s1")
    items = [LogItem(now(), [("a", "1")]), LogItem(now(), [("a", "2")])]
    with sdk_route(url):
        client.put_logs(PutLogsRequest("pp", "ll", "", None, items))
    admin(url, "POST", "faults", {"code": "WriteQuotaExceed"})
    with pytest.raises(LogException) as info, sdk_route(url):
        client.put_logs(PutLogsRequest("pp", "ll", "", None, items))
    assert info.value.get_error_code() == "WriteQuotaExceed"
    stats = admin(url, "GET", "stats")
    assert (stats["accepted_logs"], stats["rejected"]) == (2, {"WriteQuotaExceed": 1})
    proc.terminate()
    assert proc.wait(timeout=10) == 0


def test_a_windowed_fault_lasts_until_cleared_when_unbounded(logstore: LocalLogstore) -> None:
    admin(logstore.url, "POST", "faults", {"code": "ShardWriteQuotaExceed", "seconds": 60})
    codes = [lz4_post(logstore, one_log()).error_code for _ in range(3)]
    assert codes == ["ShardWriteQuotaExceed"] * 3
    admin(logstore.url, "DELETE", "faults")
    logstore.faults.fail("ServerBusy", seconds=math.inf)
    codes = [lz4_post(logstore, one_log()).error_code for _ in range(3)]
    assert codes == ["ServerBusy"] * 3
    logstore.faults.clear()
    assert lz4_post(logstore, one_log()).status == 200


def test_stopping_during_an_outage_keeps_the_server_stopped() -> None:
    with LocalLogstore() as server:
        server.outage(0.1)
    time.sleep(0.25)
    assert not server.running


def test_wait_for_logs_returns_once_enough_arrived(logstore: LocalLogstore) -> None:
    timer = threading.Timer(0.1, lambda: put(logstore, [LogItem(now(), [("a", "1")])] * 3))
    timer.start()
    assert logstore.wait_for_logs(3, timeout=5) == 3
    assert logstore.wait_for_logs(4, timeout=0.05) == 3
    timer.join()
