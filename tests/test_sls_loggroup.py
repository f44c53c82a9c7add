"""The LogGroup encoder: byte-exact with the protocol, readable by the SDK's own parser, and
within SLS's limits whatever the record holds."""

from __future__ import annotations

import re
from typing import Any

from aliyun.log.log_logs_raw_pb2 import LogGroupRaw  # type: ignore[attr-defined]
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.engine.loggroup import (
    MAX_VALUE_BYTES,
    RESERVED_KEYS,
    TRUNCATED_KEY,
    LogEncoder,
    LogGroupBytes,
    encode_trailer,
    legal_key,
    pack,
)

SLS_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
DESIGN_VECTOR = (
    "0a130880e2cfaa0612060a016112016225050000001a017422017332120a0b5f5f7061636b5f69645f5f1203582d31"
)


def parse(group: LogGroupBytes) -> Any:
    raw = LogGroupRaw()
    raw.ParseFromString(group.SerializeToString())
    assert raw.IsInitialized()
    return raw


def contents(log: Any) -> list[tuple[str, str]]:
    return [(c.Key, c.Value.decode()) for c in log.Contents]


def test_reproduces_the_design_vector() -> None:
    log = LogEncoder().encode_log({"a": "b"}, 1_700_000_000, 5)
    group = LogGroupBytes([log], encode_trailer("t", "s", [("__pack_id__", "X-1")]))
    assert group.SerializeToString().hex() == DESIGN_VECTOR


keys = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
    st.text(max_size=140),  # anything a pattern or payload config could produce
)
values = st.one_of(
    st.none(),
    st.text(max_size=300),  # crosses the 128-byte varint boundary
    st.integers(-(2**63), 2**63 - 1),
)
records = st.tuples(
    st.dictionaries(keys, values, max_size=12),
    st.integers(0, 2**32 - 1),
    st.integers(0, 999_999_999),
)
tags = st.lists(st.tuples(st.text(min_size=1, max_size=20), st.text(max_size=60)), max_size=4)


@settings(max_examples=80, deadline=None)
@given(st.lists(records, max_size=5), st.text(max_size=50), st.text(max_size=50), tags)
def test_the_sdk_parser_reads_back_what_was_encoded(
    logs: list[tuple[dict[str, Any], int, int]],
    topic: str,
    source: str,
    tag_list: list[tuple[str, str]],
) -> None:
    encoder = LogEncoder()
    group = LogGroupBytes(
        [encoder.encode_log(f, t, ns) for f, t, ns in logs], encode_trailer(topic, source, tag_list)
    )
    raw = parse(group)
    assert (raw.Topic, raw.Source) == (topic, source)
    assert [(t.Key, t.Value) for t in raw.LogTags] == tag_list
    assert len(raw.Logs) == len(logs)
    for got, (fields, t, ns) in zip(raw.Logs, logs, strict=True):
        assert (got.Time, got.Time_ns) == (t, ns)
        expected = [(legal_key(k), str(v)) for k, v in fields.items() if v is not None]
        assert contents(got) == expected
        assert all(SLS_KEY.fullmatch(k) and k not in RESERVED_KEYS for k, _ in contents(got))
    assert group.size == len(group.SerializeToString())


def test_bad_and_reserved_keys_are_renamed_not_refused() -> None:
    fields = {"__time__": "a", "trace-id": "b", "9lives": "c", "": "d", "x" * 200: "e", "ok": "f"}
    raw = parse(LogGroupBytes([LogEncoder().encode_log(fields, 1, 0)], b""))
    got = contents(raw.Logs[0])
    assert [v for _, v in got] == ["a", "b", "c", "d", "e", "f"]
    assert [k for k, _ in got] == ["__time___", "trace_id", "_9lives", "_", "x" * 128, "ok"]


def test_none_is_omitted_and_ints_are_decimal_text() -> None:
    raw = parse(
        LogGroupBytes([LogEncoder().encode_log({"line": None, "status_code": -429}, 1, 0)], b"")
    )
    assert contents(raw.Logs[0]) == [("status_code", "-429")]


def test_a_value_over_1mb_is_cut_on_a_character_boundary_and_flagged() -> None:
    huge = "中" * (MAX_VALUE_BYTES // 3 + 10)  # 3 bytes each: the cut falls inside a character
    raw = parse(
        LogGroupBytes([LogEncoder().encode_log({"message": huge, "level": "INFO"}, 1, 0)], b"")
    )
    got = dict(contents(raw.Logs[0]))
    assert len(got["message"].encode()) <= MAX_VALUE_BYTES
    assert huge.startswith(got["message"]) and len(got["message"]) == MAX_VALUE_BYTES // 3
    assert got["level"] == "INFO"
    assert got[TRUNCATED_KEY] == "message"


def test_extra_contents_follow_the_record_fields() -> None:
    log = LogEncoder().encode_log({"a": "1"}, 5, 0, extra=[("original_time", "4")])
    assert contents(parse(LogGroupBytes([log], b"")).Logs[0]) == [
        ("a", "1"),
        ("original_time", "4"),
    ]


def test_pack_cuts_at_the_log_count_and_byte_limits_keeping_order() -> None:
    encoder = LogEncoder()
    logs = [encoder.encode_log({"i": str(i), "pad": "x" * 100}, 1, 0) for i in range(10_000)]
    trailer = encode_trailer("t", "s", [("k", "v")])
    by_count = pack(logs, trailer)
    assert [len(g.logs) for g in by_count] == [4096, 4096, 1808]
    by_bytes = pack(logs, trailer, max_bytes=100_000)
    assert all(g.size <= 100_000 for g in by_bytes)
    for groups in (by_count, by_bytes):
        seen = [dict(contents(log))["i"] for g in groups for log in parse(g).Logs]
        assert seen == [str(i) for i in range(10_000)]
        assert all(parse(g).Topic == "t" for g in groups)


def test_a_log_larger_than_the_byte_limit_travels_alone() -> None:
    encoder = LogEncoder()
    logs = [encoder.encode_log({"m": "x" * n}, 1, 0) for n in (10, 5000, 10)]
    assert [len(g.logs) for g in pack(logs, b"", max_bytes=1000)] == [1, 1, 1]


def test_halves_split_a_group_without_losing_a_log() -> None:
    encoder = LogEncoder()
    group = LogGroupBytes([encoder.encode_log({"i": str(i)}, 1, 0) for i in range(5)], b"\x1a\x00")
    first, second = group.halves()
    got = [dict(contents(log))["i"] for g in (first, second) for log in parse(g).Logs]
    assert got == ["0", "1", "2", "3", "4"]


def test_text_that_is_not_valid_unicode_is_sent_with_replacements() -> None:
    broken = "bad \udcff byte"  # what a surrogateescape decode leaves for an invalid byte
    log = LogEncoder().encode_log({"message": broken}, 1, 0, extra=[("x", broken)])
    raw = parse(LogGroupBytes([log], encode_trailer(broken, "s", [("k", broken)])))
    assert contents(raw.Logs[0]) == [("message", "bad ? byte"), ("x", "bad ? byte")]
    assert raw.Topic == "bad ? byte" and raw.LogTags[0].Value == "bad ? byte"
