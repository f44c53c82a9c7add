"""The compiled Stream seals the same batches as the Python engine, byte for byte.

The reference is the Python engine, llmtail.agent.engine.pystream.PyStream (parsers/ for
framing and parsing, agent/engine/batch.py for encoding, counting and the LLM aggregate). Any
chunking of the same bytes, interleaved with idle flushes, cuts and renames, must give identical
sealed batches, their LlmAggregate included.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from aliyun.log.log_logs_raw_pb2 import LogGroupRaw  # type: ignore[attr-defined]
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtail import _core
from llmtail.agent.engine.corestream import open_stream, parser
from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.llm_aggregate import LlmAggregate
from llmtail.agent.engine.loggroup import LogEncoder
from llmtail.agent.engine.pystream import PyStream
from llmtail.agent.engine.stream import SealedBatch, StreamSettings
from llmtail.parsers.mask import Masker, MaskSettings
from llmtail.parsers.payload import DEFAULT_FIELDS
from llmtail.parsers.record import ParserSettings, RecordParser
from tests.parsers_strategies import ZONE, chunkings, records, split
from tests.test_core_records import streams

_PREFIX = "0123456789ABCDEF"


def plain(batch: SealedBatch) -> dict[str, Any]:
    """Every field of a batch; the aggregate's public numbers (not its lookup caches), the
    core's read through `snapshot()`."""
    out = {f.name: getattr(batch, f.name) for f in dataclasses.fields(batch)}
    llm = None if batch.llm is None else batch.llm.snapshot()
    if llm is not None:
        out["llm"] = {
            f.name: getattr(llm, f.name)
            for f in dataclasses.fields(llm)
            if not f.name.startswith("_")
        }
    return out


def core_stream(s: StreamSettings, key: str, path: str, offset: int, seq: int) -> Any:
    return open_stream(s, parser(s), key, path, offset, _PREFIX, seq)


def py_stream(s: StreamSettings, key: str, path: str, offset: int, seq: int) -> Any:
    masker = Masker.from_config(s.mask, s.mask_key) if s.mask is not None else None
    return PyStream(
        s, RecordParser(s.parser), LogEncoder(), key, path, offset, _PREFIX, seq, masker
    )


# -- driving both the same way ----------------------------------------------------------------

Op = tuple[str, Any]


@st.composite
def scripts(draw: st.DrawFn) -> list[Op]:
    """Chunks of a stream, with idle checks, cuts and renames between them."""
    raw = draw(streams())
    ops: list[Op] = []
    for chunk in split(raw, draw(chunkings(len(raw)))):
        ops.append(("feed", chunk))
        for _ in range(draw(st.integers(min_value=0, max_value=2))):
            ops.append(
                draw(
                    st.sampled_from(
                        (
                            ("due", True),
                            ("due", False),
                            ("cut", None),
                            ("rename", "/var/log/app.log.1"),
                            ("wait", 0.7),
                            ("wait", 6.0),
                            ("wait", 61.0),
                        )
                    )
                )
            )
    return ops


def run(stream: Any, ops: list[Op], wall: float) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    now = 100.0
    for op, arg in ops:
        if op == "feed":
            out += map(plain, stream.feed(arg, now, wall))
        elif op == "due":
            out += map(plain, stream.due(now, wall + now, arg))
        elif op == "cut":
            out += map(plain, stream.cut())
        elif op == "rename":
            stream.rename(arg)
        else:
            now += arg
        out.append({"offset": stream.offset, "pending": stream.pending_bytes})
        out.append({"next_pack_seq": stream.next_pack_seq})
    out += map(plain, stream.drain(wall + now))
    return out


# Window edges spread over the strategies' years (2001-2037), so records fall on both sides.
_edge = st.one_of(
    st.none(),
    st.sampled_from((1.2e9, 1.5e9, 1.7e9, 1.9e9, 2.0e9)),
    st.integers(978_307_200, 2_145_916_800).map(float),
)
_window = st.one_of(st.just((None, None)), st.tuples(_edge, _edge))


@st.composite
def stream_settings(draw: st.DrawFn) -> StreamSettings:
    since, until = draw(_window)
    return StreamSettings(
        parser=ParserSettings(
            timezone=ZONE,
            max_record_bytes=draw(st.sampled_from((512 * 1024, 300, 40))),
            # The core's own decoders, and CPython's codecs called by the core.
            encoding=draw(st.sampled_from(("utf-8", "gbk", "latin-1", "gb18030", "shift_jis"))),
        ),
        wire=draw(st.sampled_from(("ndjson", "loggroup", "count"))),
        max_records=draw(st.sampled_from((4096, 3, 1))),
        max_bytes=draw(st.sampled_from((3 * 1024 * 1024, 700, 150, 1))),
        linger=draw(st.sampled_from((1.0, 0.5, 10.0))),
        partial_after=draw(st.sampled_from((60.0, 0.5))),
        pending_after=draw(st.sampled_from((5.0, 0.5))),
        topic=draw(st.sampled_from(("", "llm", "t\u00e9"))),
        source="10.0.0.1",
        hostname="host-1",
        tags=draw(st.sampled_from(((), (("env", "prod"),), (("a", "1"), ("a", "2"))))),
        since=since,
        until=until,
        max_label_sets=draw(st.sampled_from((2000, 3, 2, 1))),
        mask=draw(st.sampled_from((None, MaskSettings(), MaskSettings(rules={"ipv4": True})))),
    )


def both(
    s: StreamSettings, ops: list[Op], offset: int = 0, seq: int = 0, wall: float = 1.8e9 + 0.25
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    core = core_stream(s, "k1", "/var/log/app.log", offset, seq)
    ref = py_stream(s, "k1", "/var/log/app.log", offset, seq)
    return run(core, ops, wall), run(ref, ops, wall)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(s=stream_settings(), ops=scripts(), offset=st.integers(0, 2**40), seq=st.integers(0, 2**20))
def test_the_core_seals_the_reference_batches(
    s: StreamSettings, ops: list[Op], offset: int, seq: int
) -> None:
    core, ref = both(s, ops, offset, seq)
    assert core == ref


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_chunking_gives_the_same_batches(data: st.DataObject) -> None:
    """Without linger or idle flushes in play, the batches do not depend on the chunking."""
    raw = b"".join(r.data for r in data.draw(st.lists(records(), min_size=1, max_size=8)))
    s = StreamSettings(parser=ParserSettings(timezone=ZONE), wire="loggroup", max_records=3)
    whole = run(core_stream(s, "k", "p", 0, 0), [("feed", raw)], 5.0)
    cut = split(raw, data.draw(chunkings(len(raw))))
    pieces = run(core_stream(s, "k", "p", 0, 0), [("feed", c) for c in cut], 5.0)
    assert [b for b in pieces if "data" in b] == [b for b in whole if "data" in b]
    logs = 0
    for b in (b for b in whole if "data" in b):
        group, data = LogGroupRaw(), bytes(b["data"])  # the core's BatchBytes: a buffer
        group.ParseFromString(data)  # each batch's data is its whole LogGroup
        assert data.endswith(b["trailer"]) and group.Source == "127.0.0.1"
        logs += len(group.Logs)
    assert sum(b["records"] for b in whole if "data" in b) == logs


def test_a_bad_setting_is_refused_with_the_reference_error() -> None:
    bad = StreamSettings(parser=ParserSettings(pattern="%d %zz"))
    with pytest.raises(_core.PatternError, match="conversion word %zz at position 3"):
        _core.Stream(bad, "k", "p", 0, "AB", 0)
    with pytest.raises(ValueError, match="max_records must be positive"):
        _core.Stream(StreamSettings(parser=ParserSettings(), max_records=0), "k", "p", 0, "A", 0)


def test_a_parser_compiled_for_other_settings_is_refused() -> None:
    s = StreamSettings(parser=ParserSettings(timezone=ZONE))
    other = _core.Parser(ParserSettings(timezone="UTC"))
    with pytest.raises(ValueError, match="compiled for other settings"):
        _core.Stream(s, "k", "p", 0, "AB", 0, parser=other)


def test_the_streams_of_an_engine_share_its_parser_as_the_reference_does() -> None:
    """One parser per input, shared by its files, as the Python engine shares its RecordParser:
    the minute memory that makes second :75 valid (parsers/timestamp.py) carries over from one
    file to the next in both engines, and starts afresh in another engine."""
    s = StreamSettings(parser=ParserSettings(timezone=ZONE), wire="ndjson")
    head = "2026-11-26 10:02:{} INFO  [traceId:] [a#b():1] [main] - x\n"
    seen, late = head.format("11.305").encode(), head.format("75.000").encode()

    def read(kind: str) -> list[tuple[str, int]]:
        """(file, parse errors) of each batch: a then b in one engine, b in a fresh one."""
        out = []
        first, fresh = Engine([s], kind=kind), Engine([s], kind=kind)  # type: ignore[arg-type]
        for engine, key, data in ((first, "a", seen), (first, "b", late), (fresh, "c", late)):
            stream = engine.open(key, f"/p/{key}", 0)
            out += [(key, b.parse_errors) for b in stream.feed(data, 0.0, 1.0) + stream.drain(1.0)]
        return out

    assert read("core") == read("python") == [("a", 0), ("b", 0), ("c", 1)]


def test_batches_are_the_engine_s_own_type_with_the_aggregate() -> None:
    s = StreamSettings(parser=ParserSettings(timezone=ZONE), wire="loggroup")
    line = b"2026-11-26 10:02:11.305 INFO  [traceId:] [a#b():1] [main] - a,m,q,w,r,200,1,2,3,4,,\n"
    core = core_stream(s, "k", "/p", 0, 3)
    (batch,) = core.feed(line, 0.0, 1.0) + core.drain(1.0)
    assert isinstance(batch, SealedBatch)
    assert (batch.records, batch.pack_seq, batch.end, batch.events) == (
        1,
        3,
        len(line),
        {"llm_call": 1},
    )
    assert isinstance(batch.llm, _core.LlmAggregate)  # held in Rust: no Python per batch
    llm = batch.llm.snapshot()
    assert isinstance(llm, LlmAggregate)
    assert llm.keys == [("a", "m", "q", "w", "200", "")]
    assert (llm.calls, llm.duration_ms, llm.total_tokens) == ([1], [1], [4])
    assert llm.index_of(("a", "m", "q", "w", "200", "")) == 0
    assert batch.masked == {} and batch.internal_errors == 0


# -- odd token values: the aggregate reads them as LlmAggregate._int does -------------------

_ODD = ("", " 12", "1_000", "-5", "\u0663", "abc", "12.5", "+7", "0", "007", "1__0", "\u3000 9")
_STR_TOKENS = tuple(
    (name, "str" if name.endswith("_tokens") or name == "duration_ms" else kind)
    for name, kind in DEFAULT_FIELDS
)


@st.composite
def _odd_calls(draw: st.DrawFn) -> bytes:
    lines = []
    for minute in range(draw(st.integers(1, 6))):
        app = draw(st.sampled_from(("a", "b", "other", "c")))
        status = draw(st.sampled_from(("200", "500", "", "0200")))
        nums = [draw(st.sampled_from(_ODD) | st.integers(0, 2**70).map(str)) for _ in range(4)]
        rating = draw(st.sampled_from(("up", " DOWN ", "-10", "11", "x", "\u0663", "+3")))
        head = f"2026-11-26 10:{minute:02d}:11.305 INFO  [traceId:] [a#b():1] [main] - "
        lines.append(f"{head}{app},m,q,w,r,{status},{nums[0]},{nums[1]},{nums[2]},{nums[3]},e,x")
        lines.append(f"{head}feedback:r1,{rating}")
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=_odd_calls(), cap=st.sampled_from((1, 2, 3, 2000)), typed=st.booleans())
def test_odd_values_aggregate_as_the_python_engine(raw: bytes, cap: int, typed: bool) -> None:
    fields = DEFAULT_FIELDS if typed else _STR_TOKENS
    s = StreamSettings(
        parser=ParserSettings(timezone=ZONE, payload_fields=fields), max_label_sets=cap
    )
    core, ref = both(s, [("feed", raw)])
    assert core == ref
    assert any(b.get("llm") for b in ref)
