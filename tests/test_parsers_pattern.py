"""Each conversion word of the Logback pattern, on lines as real appenders write them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from llmtail.parsers.multiline import Frame
from llmtail.parsers.pattern import PatternError, compile_pattern
from llmtail.parsers.record import DEFAULT_PATTERN, ParserSettings, Record, RecordParser

SEED = "2025-07-09 14:23:24.748"


def parse(text: str, pattern: str = DEFAULT_PATTERN, zone: str | None = "UTC") -> Record:
    parser = RecordParser(ParserSettings(pattern=pattern, timezone=zone))
    return parser.parse(Frame(text, len(text), 1, len(text)))


def seed_line(level: str = "INFO ", rest: str = "") -> str:
    return (
        f"{SEED} {level} [traceId:9f8e7d] [c.a.c.s.i.ChatServiceImpl#chat():42] "
        f"[http-nio-8080-exec-1] - hello{rest}"
    )


@pytest.mark.parametrize(
    ("level_text", "level"),
    [
        ("INFO ", "INFO"),
        ("INFO", "INFO"),
        ("WARN ", "WARN"),
        ("DEBUG", "DEBUG"),
        ("ERROR", "ERROR"),
    ],
)
def test_padded_level_accepts_two_spaces_and_the_collapsed_one_space_form(
    level_text: str, level: str
) -> None:
    record = parse(seed_line(level_text))
    assert record.fields["level"] == level
    assert record.fields["message"] == "hello"


def test_documented_pattern_gives_every_key_in_design_order() -> None:
    record = parse(seed_line())
    assert record.fields == {
        "time": SEED,
        "level": "INFO",
        "trace_id": "9f8e7d",
        "logger": "c.a.c.s.i.ChatServiceImpl",
        "method": "chat",
        "line": 42,
        "thread": "http-nio-8080-exec-1",
        "event": "log",
        "message": "hello",
    }
    assert record.time == int(datetime(2025, 7, 9, 14, 23, 24, tzinfo=UTC).timestamp())
    assert record.time_ns == 748_000_000


@pytest.mark.parametrize(
    ("caller", "logger", "method", "line"),
    [
        ("o.a.c.c.C.[.[.[/]#invoke():173", "o.a.c.c.C.[.[.[/]", "invoke", 173),
        ("c.a.c.s.i.ChatServiceImpl#?():?", "c.a.c.s.i.ChatServiceImpl", "?", None),
        ("c.a.App#():", "c.a.App", "", None),  # log4j2 without location
        ("c.a.App#lambda$chat$0():-1", "c.a.App", "lambda$chat$0", -1),
        ("[brackets]]#m():7", "[brackets]]", "m", 7),
    ],
)
def test_caller_data_forms(caller: str, logger: str, method: str, line: int | None) -> None:
    text = f"{SEED} ERROR [traceId:] [{caller}] [main] - x"
    fields = parse(text).fields
    assert (fields["logger"], fields["method"], fields["line"]) == (logger, method, line)
    assert fields["trace_id"] == ""


@pytest.mark.parametrize("thread", ["", "pool 1 [worker 2]", "virtual-7 ]x", "主线程"])
def test_thread_names_with_spaces_brackets_unicode_or_empty(thread: str) -> None:
    fields = parse(f"{SEED} INFO  [traceId:t] [c#m():1] [{thread}] - msg - with dashes").fields
    assert fields["thread"] == thread
    assert fields["message"] == "msg - with dashes"


@pytest.mark.parametrize("spelling", [r"%method\(\)", "%method()", r"%M\(\)", "%M()"])
def test_method_written_escaped_or_literally(spelling: str) -> None:
    pattern = f"%d{{yyyy-MM-dd HH:mm:ss.SSS}} %-5p [%c#{spelling}:%L] - %m%n"
    fields = parse(f"{SEED} INFO  [a.B#run():3] - ok", pattern).fields
    assert (fields["method"], fields["line"], fields["message"]) == ("run", 3, "ok")


@pytest.mark.parametrize(
    ("pattern", "line", "expected"),
    [
        (
            "%date %level [%thread] %logger{36} - %msg%n",
            "2025-07-09 14:23:24,748 INFO [main] com.example.App - started",
            {"level": "INFO", "thread": "main", "logger": "com.example.App", "message": "started"},
        ),
        (
            "%d{ISO8601} %-5level %logger{36} %line - %message%n",
            "2025-07-09 14:23:24,748 WARN  c.e.App 12 - w",
            {"level": "WARN", "logger": "c.e.App", "line": 12, "message": "w"},
        ),
        (
            "%d %le %lo %t %m%n",
            "2025-07-09 14:23:24,748 DEBUG App main m",
            {"level": "DEBUG", "logger": "App", "thread": "main", "message": "m"},
        ),
        (
            "%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX} %5p %C.%M:%L %F - %m%n",
            "2025-07-09T14:23:24.748+08:00  INFO com.e.App.run:9 App.java - hi",
            {"level": "INFO", "class": "com.e.App", "method": "run", "file": "App.java"},
        ),
        (
            "%d{HH:mm:ss.SSS dd/MM/yyyy} [%marker] %contextName %cn %r %X %p %m%nopex%n",
            "14:23:24.748 09/07/2025 [AUDIT] ctx ctx 1234 a=1, b=2 INFO x",
            {"marker": "AUDIT", "context": "ctx", "relative": "1234", "mdc": "a=1, b=2"},
        ),
        (
            "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5.5p %20.30c [%X{requestId}] %m%ex%n",
            "2025-07-09 14:23:24.748 ERROR              c.e.App [r-1] boom",
            {"logger": "c.e.App", "requestId": "r-1", "message": "boom"},
        ),
        (
            "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5level [%X{X-B3-TraceId}] %xEx%throwable - %m%n",
            "2025-07-09 14:23:24.748 INFO  [abc]  - x",  # %xEx prints nothing
            {"trace_id": "abc", "message": "x"},
        ),
        (
            r"%d{yyyy-MM-dd HH:mm:ss.SSS} \%%p\% %% %m [%thread]%n",
            "2025-07-09 14:23:24.748 %INFO% % the message [t-1]",
            {"level": "INFO", "message": "the message", "thread": "t-1"},
        ),
    ],
)
def test_other_common_conversion_words(
    pattern: str, line: str, expected: dict[str, object]
) -> None:
    record = parse(line, pattern)
    assert "parse_error" not in record.fields, record.fields
    for key, value in expected.items():
        assert record.fields[key] == value
    assert record.time == int(datetime(2025, 7, 9, 14, 23, 24, tzinfo=UTC).timestamp()) - (
        8 * 3600 if "+08:00" in line else 0
    )


def test_zone_inside_the_date_option_wins_over_the_configured_zone() -> None:
    record = parse(f"{SEED} x", "%d{yyyy-MM-dd HH:mm:ss.SSS, Asia/Shanghai} %m%n", zone="UTC")
    assert record.time == int(datetime(2025, 7, 9, 6, 23, 24, tzinfo=UTC).timestamp())


def test_configured_zone_places_the_wall_clock_time() -> None:
    shanghai = parse(seed_line(), zone="Asia/Shanghai")
    utc = parse(seed_line(), zone="UTC")
    assert utc.time is not None and shanghai.time == utc.time - 8 * 3600


def test_month_names_twelve_hour_clock_and_two_digit_years() -> None:
    pattern = "%d{dd MMM yy hh:mm:ss a} %m%n"
    record = parse("09 Jul 25 02:23:24 PM hi", pattern)
    assert record.time == int(datetime(2025, 7, 9, 14, 23, 24, tzinfo=UTC).timestamp())
    assert record.fields["message"] == "hi"


@pytest.mark.parametrize(
    ("pattern", "word", "position"),
    [
        ("%d %p %caller %m", "caller", 6),
        ("%d %highlight(%p) %m", "highlight", 3),
        ("%d %q %m", "q", 3),
    ],
)
def test_unsupported_words_are_named_with_their_position(
    pattern: str, word: str, position: int
) -> None:
    with pytest.raises(PatternError) as err:
        compile_pattern(pattern)
    assert word in str(err.value)
    assert f"position {position}" in str(err.value)


@pytest.mark.parametrize(
    ("pattern", "needle"),
    [
        ("%p %m%n", "%d"),
        ("%d{yyyy-MM-dd QQ} %m", "'Q'"),
        ("%d{yyyy-MM-dd, Mars/Olympus} %m", "Mars/Olympus"),
        ("%d{yyyy-MM-dd HH:mm:ss,SSS} %m", "quote a format with a comma"),
        ("%d ${PID} %m", "${PID}"),
        ("%d %X{a %m", "unclosed"),
    ],
)
def test_pattern_mistakes_say_what_is_wrong(pattern: str, needle: str) -> None:
    with pytest.raises(PatternError, match=None) as err:
        compile_pattern(pattern)
    assert needle in str(err.value)


def test_a_line_that_does_not_match_names_the_first_element_that_failed() -> None:
    record = parse(f"{SEED} INFO  [traceId:x] [c.a.B.run:3] [main] - x")
    assert record.time is None
    assert record.fields["__raw_log__"].startswith(SEED)  # type: ignore[union-attr]
    assert "expected" in str(record.fields["parse_error"])


@pytest.mark.parametrize(
    ("fmt", "stamp"),
    [
        ("yyyy-MM-dd HH:mm:ss", "2025-07-09 14:23:24"),
        ('"yyyy-MM-dd HH:mm:ss,SSSSSS"', "2025-07-09 14:23:24,748000"),  # quoted: has a comma
        ("yyyy/M/d H:m:s.SSS", "2025/7/9 14:23:24.748"),
        ("EEE MMM dd HH:mm:ss.SSS yyyy", "Wed Jul 09 14:23:24.748 2025"),
    ],
)
def test_date_formats_with_and_without_fixed_width_read_the_same_instant(
    fmt: str, stamp: str
) -> None:
    record = parse(f"{stamp} x", f"%d{{{fmt}}} %m%n")
    assert record.time == int(datetime(2025, 7, 9, 14, 23, 24, tzinfo=UTC).timestamp())
    assert record.time_ns == (0 if "SSS" not in fmt else 748_000_000)
    assert parse(f"{stamp} y", f"%d{{{fmt}}} %m%n").time == record.time  # cached path agrees
