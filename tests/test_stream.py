"""The Stream: bytes of one file in, sealed batches out, the same whatever the chunking."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.loggroup import split_logs
from llmtail.agent.engine.stream import SealedBatch, Stream
from tests.agentproc import record_line
from tests.batches import settings as stream_settings

WALL = 1_800_000_000.25


def open_stream(wire: str = "ndjson", **overrides: Any) -> Stream:
    engine = Engine([stream_settings(wire, **overrides)])  # type: ignore[arg-type]
    return engine.open("k", "/var/log/app.log", 0)


def lines_of(batches: list[SealedBatch]) -> list[dict[str, Any]]:
    return [orjson.loads(line) for b in batches for line in b.data.splitlines()]


def ids(batches: list[SealedBatch]) -> list[str | None]:
    return [line.get("request_id") for line in lines_of(batches)]


def records(n: int, start: int = 1) -> bytes:
    return b"".join(record_line(i) for i in range(start, start + n))


def test_a_batch_is_sealed_when_it_holds_max_records() -> None:
    stream = open_stream(max_records=3)
    out = stream.feed(records(7), now=0.0, wall=WALL)
    assert [b.records for b in out] == [3, 3]
    assert [b.end for b in out] == [len(records(3)), len(records(6))]
    assert [b.pack_seq for b in out] == [0, 1]
    (last,) = stream.drain(WALL)
    assert (last.records, last.end, last.pack_seq) == (1, len(records(7)), 2)


def test_a_record_that_would_overflow_max_bytes_starts_the_next_batch() -> None:
    one = len(open_stream().drain(WALL) or b"") or 0  # nothing held: no batch
    assert one == 0
    probe = open_stream()
    probe.feed(records(1), 0.0, WALL)
    size = len(probe.drain(WALL)[0].data)
    stream = open_stream(max_bytes=size * 2 + size // 2)
    out = stream.feed(records(5), 0.0, WALL) + stream.drain(WALL)
    assert [b.records for b in out] == [2, 2, 1]
    assert all(len(b.data) <= size * 2 + size // 2 for b in out)


def test_a_record_larger_than_max_bytes_travels_alone_instead_of_being_dropped() -> None:
    stream = open_stream(max_bytes=64)
    out = stream.feed(records(2), 0.0, WALL) + stream.drain(WALL)
    assert [b.records for b in out] == [1, 1]
    assert ids(out) == ["req-0000000001", "req-0000000002"]


def test_linger_seals_a_batch_from_its_first_record_on_an_injected_clock() -> None:
    stream = open_stream(linger=1.0)
    assert stream.feed(records(2), now=10.0, wall=WALL) == []
    assert stream.due(10.99, WALL, caught_up=False) == []
    (batch,) = stream.due(11.0, WALL, caught_up=False)
    assert batch.records == 1  # the second record is still pending: it may get more lines
    assert stream.due(100.0, WALL, caught_up=False) == []


def test_a_chunk_that_ends_mid_line_is_not_flushed_while_the_file_has_more_bytes() -> None:
    """Reading paused by backpressure leaves the tail of a chunk: not the writer's last line."""
    stream = open_stream(linger=0.0)
    data = records(2)
    cut = len(record_line(1)) + 2  # two bytes into the second record
    out = stream.feed(data[:cut], now=0.0, wall=WALL)
    out += stream.due(1000.0, WALL, caught_up=False)
    assert ids(out) == []  # record 1 may still get continuation lines; record 2 is a stub
    out += stream.feed(data[cut:], now=1000.0, wall=WALL) + stream.drain(WALL)
    assert ids(out) == ["req-0000000001", "req-0000000002"]
    assert out[-1].end == len(data)


def test_the_writers_partial_last_line_ships_once_the_file_is_idle() -> None:
    stream = open_stream(linger=0.0)
    stream.feed(records(1) + record_line(2).rstrip(b"\n"), now=0.0, wall=WALL)
    early = stream.due(10.0, WALL, caught_up=True)
    assert "req-0000000002" not in ids(early)
    later = stream.due(61.0, WALL, caught_up=True)
    assert "req-0000000002" in ids(later)


def test_a_record_without_a_timestamp_gets_the_read_time() -> None:
    stream = open_stream()
    (batch,) = stream.feed(b"Spring Boot banner line\n", 0.0, WALL) + stream.drain(WALL)
    (line,) = lines_of([batch])
    assert line["parse_error"]
    assert (line["__time__"], line["__time_ns__"]) == (1_800_000_000, 250_000_000)
    assert batch.first is None  # the read time is not the log's: not a time range


def test_counters_say_what_the_batch_holds() -> None:
    stream = open_stream()
    data = records(3) + b"not a record\n" + record_line(4, extra_lines=2)
    (batch,) = stream.feed(data, 0.0, WALL) + stream.drain(WALL)
    assert batch.events == {"llm_call": 4}  # the stray line is a continuation of record 3
    assert batch.raw_bytes == len(data) and batch.end == len(data)
    assert batch.llm is not None
    llm = batch.llm.snapshot()  # either engine's aggregate, read as Python values
    assert (llm.keys, llm.calls) == ([("chatbot", "qa", "qwen-plus", "ws-1", "200", "")], [4])
    assert llm.total_tokens == [4 * 30]
    assert batch.first is not None and batch.first[1] == "2026-11-27 10:00:00.000"


def test_the_time_window_counts_both_sides_and_raw_records_follow_their_neighbour() -> None:
    def line(t: str, n: int) -> bytes:
        return record_line(n).replace(b"2026-11-27 10:00:00.000", t.encode())

    data = b"".join(
        [
            b"banner\n",  # first of its read: kept
            line("2026-11-27 09:00:00.000", 1),  # before --since
            b"\x00\n",  # a NUL line glued to the skipped record: skipped with it
            line("2026-11-27 10:00:00.000", 2),  # since is inclusive
            line("2026-11-27 10:59:59.999", 3),
            line("2026-11-27 11:00:00.000", 4),  # until is exclusive
        ]
    )
    since = datetime(2026, 11, 27, 10, tzinfo=UTC).timestamp()
    until = datetime(2026, 11, 27, 11, tzinfo=UTC).timestamp()
    stream = open_stream(since=since, until=until)
    batches = stream.feed(data, 0.0, WALL) + stream.drain(WALL)
    assert ids(batches) == [None, "req-0000000002", "req-0000000003"]
    assert sum(b.skipped_before for b in batches) == 1
    assert sum(b.skipped_after for b in batches) == 1
    assert batches[-1].end == len(data)  # skipped records are covered: the offset moves on


def test_loggroup_bounds_and_times_describe_each_record() -> None:
    stream = open_stream("loggroup")
    (batch,) = stream.feed(records(3), 0.0, WALL) + stream.drain(WALL)
    logs = split_logs(batch.data, batch.ends())
    assert len(logs) == 3 and all(log.startswith(b"\x0a") for log in logs)
    assert list(batch.record_times()) == [batch.min_time] * 3
    assert b"__pack_id__" in batch.trailer and b"/var/log/app.log" in batch.trailer


def test_pending_bytes_are_visible_and_flushed_as_they_are_on_demand() -> None:
    stream = open_stream()
    partial = record_line(1) + record_line(2).rstrip(b"\n")
    stream.feed(partial, 0.0, WALL)
    assert stream.pending_bytes >= len(record_line(2)) - 1
    flushed = stream.flush_pending(WALL)
    assert ids(flushed) == ["req-0000000001", "req-0000000002"]
    assert stream.pending_bytes == 0 and flushed[-1].end == len(partial)


def test_a_renamed_file_keeps_its_open_batch_path_and_gives_the_next_one_the_new_name() -> None:
    stream = open_stream()
    stream.feed(records(2), 0.0, WALL)  # record 1 is in the open batch, record 2 pending
    stream.rename("/var/log/app.log.1")
    first = stream.feed(records(1, start=3), 0.0, WALL) + stream.cut()
    second = stream.drain(WALL)
    assert [b.path for b in first + second] == ["/var/log/app.log", "/var/log/app.log.1"]


chunk_cuts = st.lists(st.integers(1, 400), max_size=30)


@settings(max_examples=50, deadline=None)
@given(cuts=chunk_cuts, wire=st.sampled_from(["ndjson", "loggroup"]), extra=st.integers(0, 3))
def test_any_chunking_of_the_same_bytes_gives_the_same_batches(
    cuts: list[int], wire: str, extra: int
) -> None:
    data = b"".join(record_line(i, extra_lines=i % (extra + 1)) for i in range(20)) + b"tail"
    engine = Engine([stream_settings(wire, max_records=7)])  # type: ignore[arg-type]
    whole = engine.open("k", "/var/log/app.log", 0)
    expected = whole.feed(data, 0.0, WALL) + whole.drain(WALL)
    stream = engine.open("k", "/var/log/app.log", 0)  # the same pack ids: nothing was closed
    got: list[SealedBatch] = []
    pos = 0
    for cut in cuts:
        got += stream.feed(data[pos : pos + cut], 0.0, WALL)
        pos += cut
    got += stream.feed(data[pos:], 0.0, WALL) + stream.drain(WALL)
    assert got == expected
    assert sum(b.raw_bytes for b in got) == len(data) and got[-1].end == len(data)
