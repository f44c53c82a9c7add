"""Framing: which bytes make one record, where it ends, and what happens to hostile input."""

from __future__ import annotations

import tracemalloc

import pytest

from llmtail.parsers.lines import FrameFlag, LineBuffer, LongLine
from llmtail.parsers.multiline import Assembler, Frame
from llmtail.parsers.record import ParserSettings, RecordParser

PARSER = RecordParser(ParserSettings(timezone="UTC"))


def header(n: int = 0, level: str = "INFO ") -> bytes:
    return (
        f"2025-07-09 14:23:{n % 60:02d}.748 {level} [traceId:t{n}] [c.a.B#run():{n}] [main] - "
    ).encode()


def assembler(**kw: int) -> Assembler:
    return RecordParser(ParserSettings(timezone="UTC", **kw)).assembler()


def run(data: bytes, asm: Assembler | None = None) -> list[Frame]:
    asm = asm or assembler()
    return asm.feed(data, now=0.0) + asm.drain()


def test_stack_trace_and_blank_lines_join_the_record_that_started_them() -> None:
    trace = (
        b"java.lang.IllegalStateException: boom\n\tat a.B.run(B.java:1)\n"
        b"Caused by: java.io.IOException: x\n\t... 3 common frames omitted\n"
    )
    data = header(1, "ERROR") + b"failed\n" + trace + b"\n" + header(2) + b"next\n"
    frames = run(data)
    assert [f.line_no for f in frames] == [1, 7]
    assert frames[0].text.endswith("omitted\n")  # the blank line belongs to the record
    assert frames[0].end == len(data) - len(header(2) + b"next\n")
    assert PARSER.parse(frames[0]).fields["message"] == "failed\n" + trace.decode()


def test_a_record_is_held_until_the_next_header_or_an_idle_timeout() -> None:
    asm = assembler()
    assert asm.feed(header(1) + b"first\n", now=100.0) == []
    assert asm.due(now=104.9, partial_after=60.0, pending_after=5.0) == []
    [frame] = asm.due(now=105.0, partial_after=60.0, pending_after=5.0)
    assert frame.text.endswith("first") and frame.end == asm.offset


def test_a_partial_last_line_waits_for_its_newline_then_for_the_partial_timeout() -> None:
    asm = assembler()
    first = header(1) + b"done\n"
    assert asm.feed(first + header(2) + b"half of a li", now=0.0) == []
    # The partial line may still be a header or a continuation: nothing flushes on the short timer
    # until it shows a header; here it does, so the complete record goes.
    [done] = asm.due(now=5.0, partial_after=60.0, pending_after=5.0)
    assert done.end == len(first)
    assert asm.feed(b"ne\n", now=6.0) == []
    [whole] = asm.due(now=11.0, partial_after=60.0, pending_after=5.0)
    assert whole.text.endswith("half of a line") and whole.flags == FrameFlag.NONE


def test_a_continuation_being_written_holds_its_record() -> None:
    asm = assembler()
    asm.feed(header(1) + b"x\n\tat a.B.c(B.java:1", now=0.0)
    assert asm.due(now=30.0, partial_after=60.0, pending_after=5.0) == []
    [frame] = asm.due(now=60.0, partial_after=60.0, pending_after=5.0)
    assert frame.flags & FrameFlag.PARTIAL and frame.text.endswith("(B.java:1")


def test_drain_ships_the_last_line_without_newline() -> None:
    data = header(1) + b"no newline at the end"
    [frame] = run(data)
    assert frame.end == len(data) and frame.flags & FrameFlag.PARTIAL
    assert PARSER.parse(frame).fields["message"] == "no newline at the end"


def test_lines_before_the_first_record_are_one_flagged_raw_record() -> None:
    banner = b"  .   ____          _            __ _ _\n :: Spring Boot ::  (v3.2.0)\n\n"
    frames = run(banner + header(1) + b"started\n")
    assert frames[0].flags & FrameFlag.HEADLESS and frames[0].size == len(banner)
    raw = PARSER.parse(frames[0])
    assert raw.fields["__raw_log__"] == banner.decode()[:-1]
    assert raw.time is None and "parse_error" in raw.fields
    assert PARSER.parse(frames[1]).fields["message"] == "started"


def test_offsets_start_where_the_assembler_was_told_and_count_lines_from_there() -> None:
    asm = PARSER.assembler(start_offset=1000)
    frames = run(header(1) + b"a\n" + header(2) + b"b\n", asm)
    assert [f.end for f in frames] == [1000 + len(header(1)) + 2, asm.offset]
    assert [f.line_no for f in frames] == [1, 2]


def test_crlf_and_mixed_endings_strip_one_cr_but_count_every_byte() -> None:
    data = header(1) + b"a\r\n\tat x\r\r\n" + header(2) + b"b\n"
    frames = run(data)
    assert frames[0].text.endswith("a\n\tat x\r")
    assert frames[0].size == len(header(1)) + len(b"a\r\n\tat x\r\r\n")
    assert PARSER.parse(frames[1]).fields["message"] == "b"


def test_bom_at_offset_zero_is_dropped_from_text_but_counted() -> None:
    data = b"\xef\xbb\xbf" + header(1) + b"x\n"
    [frame] = run(data)
    assert frame.size == len(data) and not frame.text.startswith("\ufeff")
    assert PARSER.parse(frame).fields["message"] == "x"


def test_nul_runs_after_a_crash_are_removed_and_flagged() -> None:
    data = header(1) + b"before crash\n" + b"\x00" * 4096 + header(2) + b"after restart\n"
    frames = run(data)
    assert len(frames) == 2 and sum(f.size for f in frames) == len(data)
    record = PARSER.parse(frames[1])
    assert record.fields["message"] == "after restart"
    assert frames[1].flags & FrameFlag.NUL and "NUL" in str(record.fields["parse_error"])


def test_invalid_utf8_keeps_the_record_and_the_bytes_as_escapes() -> None:
    data = header(1) + b"caf\xe9 \xff\n"
    [frame] = run(data)
    record = PARSER.parse(frame)
    assert record.fields["message"] == "caf\\xe9 \\xff"
    assert frame.flags & FrameFlag.DECODE and "escapes" in str(record.fields["parse_error"])


def test_gbk_files_decode_with_the_configured_encoding() -> None:
    parser = RecordParser(ParserSettings(timezone="UTC", encoding="gbk"))
    data = header(1) + "提示 你好".encode("gbk") + b"\n"
    [frame] = run(data, parser.assembler())
    assert parser.parse(frame).fields["message"] == "提示 你好" and frame.flags == 0


def test_a_record_glued_onto_a_partial_line_stays_one_record_and_loses_nothing() -> None:
    data = header(1) + b"cut sho" + header(2) + b"after restart\n"
    [frame] = run(data)
    assert frame.size == len(data)
    assert "after restart" in str(PARSER.parse(frame).fields["message"])


def test_a_record_over_the_cap_is_truncated_and_its_remaining_lines_consumed() -> None:
    big = header(1) + b"result: " + b"x" * 3000 + b"\n" + b"more\n" * 100
    data = big + header(2) + b"next\n"
    for chunk in (len(data), 7, 1000):
        asm = assembler(max_record_bytes=1024)
        frames = [f for i in range(0, len(data), chunk) for f in asm.feed(data[i : i + chunk], 0)]
        frames += asm.drain()
        assert [f.size for f in frames] == [len(big), len(data) - len(big)]
        assert frames[0].flags & FrameFlag.TRUNCATED
        assert len(frames[0].text.encode()) <= 1024
        record = PARSER.parse(frames[0])
        assert record.fields["event"] == "result" and "truncated" in str(
            record.fields["parse_error"]
        )
        assert [f.line_no for f in frames] == [1, 102]


def test_a_20_mb_line_fed_in_chunks_needs_memory_of_the_cap_not_of_the_line() -> None:
    asm = assembler()
    chunk = b"y" * (1 << 20)
    tracemalloc.start()
    try:
        asm.feed(header(1) + b"result: ", now=0.0)
        for _ in range(20):
            asm.feed(chunk, now=0.0)
        frames = asm.feed(b"\n" + header(2) + b"x\n", now=0.0) + asm.drain()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 512 * 1024
    assert frames[0].size == len(header(1)) + 8 + 20 * len(chunk) + 1
    assert frames[0].flags & FrameFlag.TRUNCATED and frames[1].text.endswith("x")


def test_a_huge_line_in_one_chunk_is_cut_without_copying_it() -> None:
    data = header(1) + b"result: " + b"z" * (20 << 20) + b"\n"
    asm = assembler()
    tracemalloc.start()
    try:
        frames = asm.feed(data, now=0.0) + asm.drain()
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * 512 * 1024
    assert [f.size for f in frames] == [len(data)]


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"\r\n\r\n", b"\x00" * 100, bytes(range(256)) * 20, b"\xef\xbb\xbf"],
)
def test_degenerate_inputs_neither_raise_nor_lose_bytes(data: bytes) -> None:
    frames = run(data)
    assert sum(f.size for f in frames) == len(data)
    for frame in frames:
        PARSER.parse(frame)


def test_line_buffer_holds_at_most_the_cap_of_a_partial_line() -> None:
    buf = LineBuffer(cap=10)
    assert buf.push(b"a" * 25) == []
    assert buf.held == 25 and len(buf.head()) == 10
    [long] = buf.push(b"bb\nc")
    assert long == LongLine(b"a" * 10, 28, complete=True)
    assert buf.held == 1


def test_a_line_that_starts_like_a_record_but_breaks_later_is_its_own_raw_record() -> None:
    broken = b"2025-07-09 14:23:25.001 INFO  [traceId:x] [c.a.B.run:3] [main] - other layout\n"
    data = header(1) + b"ok\n" + broken + b"\tat a.B(B.java:1)\n" + header(2) + b"next\n"
    frames = run(data)
    assert [PARSER.parse(f).fields.get("message") for f in frames] == ["ok", None, "next"]
    raw = PARSER.parse(frames[1]).fields
    assert raw["__raw_log__"] == (broken + b"\tat a.B(B.java:1)").decode()
    assert "expected" in str(raw["parse_error"])
