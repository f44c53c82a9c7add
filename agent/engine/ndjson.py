"""Records as NDJSON lines: the wire form of the file and stdout outputs.

A line is the record's typed fields followed by what SLS would receive around them: `__time__`,
`__time_ns__`, `__topic__`, `__source__` and every LogGroup tag as `__tag__:NAME`
(design.md section 3). The envelope is the same for every line of a batch, so it is serialized
once (`envelope_closing`) and spliced after each record's own JSON.
"""

from __future__ import annotations

from collections.abc import Mapping

import orjson

from llmtail.agent.engine.envelope import Envelope

_INT64 = (-(2**63), 2**64 - 1)  # what orjson encodes natively
_SPLICE = b'%b,"__time__":%d,"__time_ns__":%d%b'

FieldValue = str | int | None


def envelope_fields(envelope: Envelope) -> dict[str, str]:
    """The keys every record of one LogGroup shares, in the order they end each line."""
    extra = {"__topic__": envelope.topic, "__source__": envelope.source}
    for name, value in envelope.tags:
        extra[f"__tag__:{name}"] = value
    return extra


def envelope_closing(envelope: Envelope | None) -> bytes:
    """What ends each line of a batch: `,"__topic__":...}` and the newline."""
    extra = envelope_fields(envelope) if envelope is not None else {}
    return (b"," + orjson.dumps(extra)[1:] if extra else b"}") + b"\n"


def encode_line(fields: Mapping[str, FieldValue], time: int, time_ns: int, closing: bytes) -> bytes:
    """One NDJSON line; never raises on odd values (lone surrogates, ints beyond 64 bits)."""
    if fields:
        try:
            return _SPLICE % (orjson.dumps(fields)[:-1], time, time_ns, closing)
        except (orjson.JSONEncodeError, TypeError):
            pass
    line: dict[str, object] = {**fields, "__time__": time, "__time_ns__": time_ns}
    return _dumps(line)[:-1] + closing


def _dumps(line: dict[str, object]) -> bytes:
    try:
        return orjson.dumps(line)
    except (orjson.JSONEncodeError, TypeError):
        return orjson.dumps(_sanitized(line))


def _sanitized(line: Mapping[str, object]) -> dict[str, object]:
    """Values orjson refuses (lone surrogates, huge ints) become the text a reader can still use."""
    return {_text(key): _plain(value) for key, value in line.items()}


def _plain(value: object) -> object:
    if value is None or (isinstance(value, int) and _INT64[0] <= value <= _INT64[1]):
        return value
    return _text(value if isinstance(value, str) else str(value))


def _text(value: str) -> str:
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
