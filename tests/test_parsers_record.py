"""Event kinds and the llm_call payload, as a user reads them in the Logstore."""

from __future__ import annotations

import pytest

from llmtail.parsers.multiline import Frame
from llmtail.parsers.payload import PayloadParser
from llmtail.parsers.record import ParserSettings, Record, RecordParser

HEAD = "2025-07-09 14:23:24.748 INFO  [traceId:t] [c.a.B#chat():42] [main] - "
OK = "chat-app,chat,qwen-max,ws-1,7c9f0e1a-6d2b-1b3c-9a8d-0f1e2d3c4b5a,200,1532,120,80,200,,"
LIMITED = (
    "chat-app,chat,qwen-max,ws-1,7c9f0e1a-6d2b-1b3c-9a8d-0f1e2d3c4b5a,429,12,0,0,0,"
    "Throttling.RateQuota,Requests rate limit exceeded, please try again later."
)


def parse(message: str, **kw: object) -> Record:
    parser = RecordParser(ParserSettings(timezone="UTC", **kw))  # type: ignore[arg-type]
    text = HEAD + message
    return parser.parse(Frame(text, len(text), 1, len(text)))


def test_llm_call_fields_are_typed_and_follow_the_prefix() -> None:
    fields = parse(OK).fields
    assert fields["event"] == "llm_call"
    assert list(fields)[7:10] == ["event", "message", "app"]
    assert (fields["status_code"], fields["duration_ms"], fields["total_tokens"]) == (
        200,
        1532,
        200,
    )
    assert fields["request_id"] == "7c9f0e1a-6d2b-1b3c-9a8d-0f1e2d3c4b5a"  # not a valid UUID
    assert (fields["error_code"], fields["error_message"]) == ("", "")


def test_the_error_message_keeps_its_commas() -> None:
    fields = parse(LIMITED).fields
    assert fields["error_message"] == "Requests rate limit exceeded, please try again later."
    assert fields["status_code"] == 429


def test_a_stack_trace_after_an_llm_call_stays_in_message_not_in_error_message() -> None:
    fields = parse(LIMITED + "\njava.lang.RuntimeException: x\n\tat a.B(B.java:1)").fields
    assert fields["error_message"] == "Requests rate limit exceeded, please try again later."
    assert str(fields["message"]).endswith("(B.java:1)")


def test_empty_int_fields_are_null() -> None:
    fields = parse("a,m,qwen,ws,req,,,,,,Timeout,read timed out").fields
    assert fields["event"] == "llm_call" and fields["status_code"] is None


@pytest.mark.parametrize("bad", ["abc", "2OO", "1.5", " 200", "²"])
def test_a_payload_with_a_non_integer_number_is_a_parse_error_not_a_log(bad: str) -> None:
    record = parse(f"a,m,qwen,ws,req,{bad},1,2,3,5,,")
    assert record.fields["__raw_log__"] == HEAD + f"a,m,qwen,ws,req,{bad},1,2,3,5,,"
    assert "status_code" in str(record.fields["parse_error"])
    assert record.time is not None  # the raw record still lands at its own time


@pytest.mark.parametrize(
    "message",
    [
        "a,b,c",  # fewer separators
        "Loaded models: a, b, c, d, e, f, g, h, i, j, k, l",  # prose with commas
        "x,y\nz,1,2,3,4,5,6,7,8,9,10",  # separators spread over lines
        "",
    ],
)
def test_messages_that_are_not_payload_shaped_are_logs(message: str) -> None:
    fields = parse(message).fields
    assert fields["event"] == "log" and fields["message"] == message
    assert "app" not in fields


@pytest.mark.parametrize(("message", "event"), [("prompt: hi", "prompt"), ("result: {}", "result")])
def test_prompt_and_result_records(message: str, event: str) -> None:
    fields = parse(message + "\nsecond line\n\nfourth").fields
    assert fields["event"] == event
    assert fields["message"] == message + "\nsecond line\n\nfourth"


def test_payload_schema_and_separator_are_configurable() -> None:
    fields = parse(
        "svc|42|oops|x",
        payload_separator="|",
        payload_fields=(("service", "str"), ("count", "int"), ("note", "str")),
    ).fields
    assert fields["event"] == "llm_call"
    assert (fields["service"], fields["count"], fields["note"]) == ("svc", 42, "oops|x")


def test_bad_settings_are_refused_with_a_clear_reason() -> None:
    with pytest.raises(ValueError, match="encoding"):
        RecordParser(ParserSettings(encoding="klingon"))
    with pytest.raises(ValueError, match="type must be"):
        PayloadParser(",", (("a", "float"),))
    with pytest.raises(ValueError, match="unique"):
        PayloadParser(",", (("a", "str"), ("a", "int")))
    with pytest.raises(ValueError, match="'level' has the name of a record key"):
        RecordParser(ParserSettings(payload_fields=(("level", "str"), ("x", "str"))))


def test_parse_never_raises_even_on_text_no_file_holds() -> None:
    parser = RecordParser(ParserSettings())
    for text in ["", "\n" * 5, "\udcff", "2025-07-09 14:23:24.748 INFO  [traceId:"]:
        record = parser.parse(Frame(text, 0, 1, 0))
        assert "parse_error" in record.fields
