"""The sample logs the README demo runs over parse the way a user reading them expects."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from llmtail.parsers.lines import FrameFlag
from llmtail.parsers.record import ParserSettings, Record, RecordParser

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def read(name: str, encoding: str = "utf-8") -> tuple[list[Record], bytes]:
    parser = RecordParser(ParserSettings(timezone="Asia/Shanghai", encoding=encoding))
    data = (SAMPLES / name).read_bytes()
    asm = parser.assembler()
    frames = asm.feed(data, now=0.0) + asm.drain()
    assert sum(f.size for f in frames) == len(data)
    return [parser.parse(f) for f in frames], data


def test_app_log_is_all_typed_records_but_the_banner_before_the_first_one() -> None:
    records, data = read("app.log")
    raw = [r for r in records if "__raw_log__" in r.fields]
    assert len(raw) == 1 and raw[0].flags & FrameFlag.HEADLESS
    assert "Spring Boot" in str(raw[0].fields["__raw_log__"])
    typed = [r for r in records if "__raw_log__" not in r.fields]
    assert all(r.time is not None and "parse_error" not in r.fields for r in typed)
    heads = data.count(b"\n2026-11-26 ")
    assert len(typed) == heads


def test_app_log_holds_every_shape_the_demo_shows() -> None:
    records, _ = read("app.log")
    events = Counter(r.fields.get("event") for r in records)
    assert {"llm_call", "prompt", "result", "log"} <= set(events)
    calls = [r.fields for r in records if r.fields.get("event") == "llm_call"]
    assert any("," in str(c["error_message"]) for c in calls)  # DashScope message with commas
    assert any(c["status_code"] is None for c in calls)  # failed before an HTTP status
    assert all(isinstance(c["total_tokens"], int) for c in calls)
    logs = [r.fields for r in records if "message" in r.fields]
    assert any("common frames omitted" in str(f["message"]) for f in logs)
    assert any(f["method"] == "?" and f["line"] is None for f in logs)  # AsyncAppender
    assert any(f["trace_id"] == "" for f in logs)
    assert any(f["thread"] == "" for f in logs)
    assert any(str(f["logger"]).endswith("[/]") for f in logs)  # Tomcat's logger name
    assert any("\n" in str(f["message"]) and f["event"] == "prompt" for f in logs)


def test_gbk_sample_with_crlf_reads_with_encoding_gbk() -> None:
    records, _ = read("app-gbk.log", encoding="gbk")
    assert all("parse_error" not in r.fields for r in records)
    call = next(r.fields for r in records if r.fields.get("status_code") == 429)
    assert call["error_message"] == "请求过于频繁，请稍后再试。"  # noqa: RUF001 - real Chinese text
    prompt = next(r.fields for r in records if r.fields.get("event") == "prompt")
    assert str(prompt["message"]).endswith("请提供正确的抬头。")
    assert "\r" not in str(prompt["message"])


def test_gbk_sample_read_as_utf8_keeps_every_byte_as_escapes() -> None:
    records, _ = read("app-gbk.log")
    damaged = [r for r in records if r.flags & FrameFlag.DECODE]
    assert damaged and all("escapes" in str(r.fields["parse_error"]) for r in damaged)
