"""The core's encoders give the Python encoders' bytes: LogGroup `Logs`, trailers, NDJSON lines.

Both LogGroups are also read back through the SDK's own protobuf class, so a byte-identical bug
in both would still show as an unreadable group.
"""

from __future__ import annotations

from typing import Any

import orjson
from aliyun.log.log_logs_raw_pb2 import LogGroupRaw  # type: ignore[attr-defined]
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail import _core
from llmtail.agent.engine.envelope import Envelope
from llmtail.agent.engine.loggroup import MAX_VALUE_BYTES, LogEncoder, encode_trailer
from llmtail.agent.engine.ndjson import encode_line, envelope_closing

DESIGN_VECTOR = (
    "0a130880e2cfaa0612060a016112016225050000001a017422017332120a0b5f5f7061636b5f69645f5f1203582d31"
)

# Text without lone surrogates: the core never holds any (it decodes bytes into valid UTF-8).
_text = st.text(alphabet=st.characters(codec="utf-8"), max_size=300)
keys = st.one_of(
    st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True),
    st.sampled_from(("__time__", "__topic__", "9x", "a-b", "")),
    st.text(alphabet=st.characters(codec="utf-8"), max_size=140),
)
values = st.one_of(
    st.none(),
    _text,
    st.integers(-(2**63), 2**63 - 1),
    st.integers(min_value=-(10**30), max_value=10**30),  # beyond 64 bits too
)
fields = st.dictionaries(keys, values, max_size=12)
times = st.integers(-(2**33), 2**34)
nanos = st.integers(0, 999_999_999)
tags = st.lists(st.tuples(_text, _text), max_size=4)


def _decoded(data: bytes) -> Any:
    raw = LogGroupRaw()
    raw.ParseFromString(data)
    assert raw.IsInitialized()
    return raw


def test_reproduces_the_design_vector() -> None:
    log = _core.encode_log([("a", "b")], 1_700_000_000, 5)
    trailer = _core.encode_trailer("t", "s", [("__pack_id__", "X-1")])
    assert (log + trailer).hex() == DESIGN_VECTOR


@settings(max_examples=400, deadline=None)
@given(f=fields, t=times, ns=nanos)
def test_logs_are_the_python_encoders_bytes(
    f: dict[str, str | int | None], t: int, ns: int
) -> None:
    got = _core.encode_log(list(f.items()), t, ns)
    assert got == LogEncoder().encode_log(f, t, ns)
    group = _decoded(got + encode_trailer("t", "s", []))
    assert len(group.Logs) == 1
    assert group.Logs[0].Time == t & 0xFFFFFFFF


def test_values_over_a_megabyte_are_cut_on_a_character_boundary() -> None:
    big = "\u4e2d" * (MAX_VALUE_BYTES // 3 + 5)
    f = {"message": big, "x": "y", "__time__": "z" * (MAX_VALUE_BYTES + 1)}
    got = _core.encode_log(list(f.items()), 1, 2)
    assert got == LogEncoder().encode_log(f, 1, 2)
    log = _decoded(got).Logs[0]
    assert [c.Key for c in log.Contents][-1] == "truncated_keys"


@settings(max_examples=200, deadline=None)
@given(topic=_text, source=_text, t=tags)
def test_trailers_are_the_python_encoders_bytes(
    topic: str, source: str, t: list[tuple[str, str]]
) -> None:
    got = _core.encode_trailer(topic, source, t)
    assert got == encode_trailer(topic, source, t)
    group = _decoded(got)
    assert (group.Topic, group.Source) == (topic, source)
    assert [(x.Key, x.Value) for x in group.LogTags] == t


def _closing(topic: str, source: str, t: list[tuple[str, str]]) -> bytes:
    return envelope_closing(Envelope(topic, source, tuple(t)))


def reference_line(f: dict[str, str | int | None], t: int, ns: int, closing: bytes) -> bytes:
    """The Python engine's NDJSON line."""
    return encode_line(f, t, ns, closing)


@settings(max_examples=400, deadline=None)
@given(f=fields, t=times, ns=nanos, topic=_text, source=_text, tg=tags)
def test_ndjson_lines_are_the_python_encoders_bytes(
    f: dict[str, str | int | None],
    t: int,
    ns: int,
    topic: str,
    source: str,
    tg: list[tuple[str, str]],
) -> None:
    got = _core.encode_line(list(f.items()), t, ns, topic, source, tg)
    assert got == reference_line(f, t, ns, _closing(topic, source, tg))
    assert orjson.loads(got)["__time__"] == t
