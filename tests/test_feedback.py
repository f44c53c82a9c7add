"""The `feedback` event: a user's rating of an answer, typed like an llm_call so that the
negative-feedback rate is a query over the Logstore."""

from __future__ import annotations

import pytest

from llmtail.agent.config import parse_config
from llmtail.agent.modes.pipeline import parser_settings
from llmtail.parsers.multiline import Frame
from llmtail.parsers.record import ParserSettings, Record, RecordParser

HEAD = "2025-07-09 14:23:24.748 INFO  [traceId:t] [c.a.B#feedback():42] [main] - "
REQ = "7c9f0e1a-6d2b-1b3c-9a8d-0f1e2d3c4b5a"


def parse(message: str, parser: RecordParser | None = None) -> Record:
    parser = parser or RecordParser(ParserSettings(timezone="UTC"))
    text = HEAD + message
    return parser.parse(Frame(text, len(text), 1, len(text)))


def test_a_rating_with_a_comment_keeps_the_comments_commas() -> None:
    fields = parse(f"feedback:{REQ},down,wrong answer, and slow, very slow").fields
    assert fields["event"] == "feedback"
    assert (fields["request_id"], fields["rating"], fields["comment"]) == (
        REQ,
        "down",
        "wrong answer, and slow, very slow",
    )
    assert fields["message"] == f"feedback:{REQ},down,wrong answer, and slow, very slow"
    assert "parse_error" not in fields


@pytest.mark.parametrize("rating", ["up", "down", "5", "-1"])
def test_a_rating_without_comment_has_a_null_comment(rating: str) -> None:
    fields = parse(f"feedback:{REQ},{rating}").fields
    assert (fields["event"], fields["rating"], fields["comment"]) == ("feedback", rating, None)


def test_only_the_first_line_is_the_feedback_the_rest_stays_in_message() -> None:
    fields = parse(f"feedback:{REQ},up,great\nsecond line, with comma").fields
    assert fields["comment"] == "great"
    assert fields["message"].endswith("second line, with comma")


@pytest.mark.parametrize("message", ["feedback:", f"feedback:{REQ}", "feedback:,up"])
def test_a_feedback_without_id_or_rating_is_a_parse_error_not_a_log(message: str) -> None:
    record = parse(message)
    assert record.fields["__raw_log__"] == HEAD + message
    assert "feedback needs request_id,rating" in str(record.fields["parse_error"])
    assert record.time is not None  # the raw record lands where it happened


def test_feedback_fields_come_from_the_config_and_may_be_integers() -> None:
    config = parse_config(
        {
            "parser": {
                "timezone": "UTC",
                "feedback": {
                    "fields": [
                        {"name": "request_id"},
                        {"name": "score", "type": "int"},
                        {"name": "user"},
                        {"name": "comment"},
                    ]
                },
            }
        }
    )
    parser = RecordParser(parser_settings(config))
    fields = parse(f"feedback:{REQ},4,u-17,fine, thanks", parser).fields
    assert (fields["score"], fields["user"], fields["comment"]) == (4, "u-17", "fine, thanks")
    bad = parse(f"feedback:{REQ},four,u-17,fine", parser).fields
    assert "feedback field score is not an integer" in str(bad["parse_error"])


def test_a_feedback_field_named_like_a_record_key_is_refused() -> None:
    with pytest.raises(ValueError, match="feedback field 'level'"):
        RecordParser(ParserSettings(feedback_fields=(("request_id", "str"), ("level", "str"))))
