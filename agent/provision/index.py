"""The Logstore index: typed numbers, analytics on every dimension, Chinese full-text on text.

In SLS every value is a string; the index gives it a type. `long` makes `status_code <> 200`
and `sum(total_tokens)` numeric; `doc_value` ("analytics") is what lets a key appear in SQL at
all. Index changes apply to data written after them only.
"""

from __future__ import annotations

from typing import Any

from llmtail.agent.config import Config

# The console's default tokens (observability.md 1.2).
TOKENS = [",", " ", "'", '"', ";", "=", "(", ")", "[", "]", "{", "}", "?", "@", "&", "<", ">"]
TOKENS += ["/", ":", "\n", "\t", "\r"]

DIMENSIONS = (
    "app",
    "module",
    "model",
    "workspace",
    "level",
    "event",
    "error_code",
    "trace_id",
    "request_id",
    "logger",
    "thread",
    "method",
    "time",
)
NUMBERS = ("status_code", "duration_ms", "input_tokens", "output_tokens", "total_tokens", "line")
# Searched by words, Chinese included; `message` holds prompts and results (`prompt:`/`result:`).
TEXTS = ("message", "error_message", "comment", "parse_error", "__raw_log__")
# Grouped by whole value in SQL as well as searched.
TEXTS_WITH_ANALYTICS = frozenset({"error_message", "comment"})


def _dimension() -> dict[str, Any]:
    return {"type": "text", "token": list(TOKENS), "caseSensitive": False, "doc_value": True}


def _number() -> dict[str, Any]:
    return {"type": "long", "doc_value": True}


def _text(analytics: bool) -> dict[str, Any]:
    return {
        "type": "text",
        "token": list(TOKENS),
        "caseSensitive": False,
        "doc_value": analytics,
        "chn": True,
    }


def index_body(config: Config) -> dict[str, Any]:
    """The index JSON (`IndexConfig.to_json()` shape) for the configured payload and feedback."""
    keys: dict[str, dict[str, Any]] = {name: _dimension() for name in DIMENSIONS}
    keys.update({name: _number() for name in NUMBERS})
    keys.update({name: _text(name in TEXTS_WITH_ANALYTICS) for name in TEXTS})
    for f in (*config.parser.payload.fields, *config.parser.feedback.fields):
        if f.name not in keys:
            keys[f.name] = _number() if f.type == "int" else _dimension()
    return {
        "line": {"token": list(TOKENS), "caseSensitive": False, "chn": True},
        "keys": keys,
        "max_text_len": config.provision.max_text_len,
    }
