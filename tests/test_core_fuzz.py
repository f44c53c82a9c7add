"""Fuzz target over the binding: arbitrary patterns, settings and bytes never crash the core, and
where the reference accepts the settings, the core reads the bytes exactly as it does.

The default run is bounded (a few hundred examples); `core/fuzz/README.md` says how to run it
for longer by hand (LLMTAIL_FUZZ_EXAMPLES) and what the longer runs found.
"""

from __future__ import annotations

import os
from collections import Counter

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtail import _core
from llmtail.parsers.payload import DEFAULT_FEEDBACK_FIELDS, DEFAULT_FIELDS
from llmtail.parsers.record import ParserSettings, RecordParser
from tests.parsers_strategies import chunkings, split
from tests.test_core_records import assert_same

COUNTS: Counter[str] = Counter()  # what a run exercised, for the notes in core/fuzz
EXAMPLES = int(os.environ.get("LLMTAIL_FUZZ_EXAMPLES", "300"))

_pieces = st.sampled_from(
    (
        "%d",
        "%d{yyyy-MM-dd HH:mm:ss.SSS}",
        "%date{dd/MMM/yyyy:HH:mm:ss Z}",
        "%d{yyyy-MM-dd'T'HH:mm:ss.SSSXXX, UTC}",
        "%d{HH:mm:ss,SSS dd}",
        "%d{yyMMdd HHmmss a E D z k K u}",
        "%d{HH:mm:ss dd/MM/yyyy}",
        "%d{yyyy-MM-dd hh:mm:ss a}",
        '%d{"yyyy-MM-dd HH:mm:ss,SSS", Asia/Shanghai}',
        "%-5p",
        "%5p",
        "%level",
        "%c",
        "%logger{36}",
        "%C",
        "%M",
        "%method()",
        "%L",
        "%-4L",
        "%t",
        "%thread",
        "%m",
        "%msg",
        "%n",
        "%X{traceId}",
        "%X{X-B3-TraceId}",
        "%X",
        "%X{a:-b}",
        "%X{9 x}",
        "%r",
        "%relative",
        "%F",
        "%cn",
        "%marker",
        "%ex",
        "%-10.20c",
        "%.-3t",
        " ",
        " - ",
        "  ",
        "[",
        "]",
        "#",
        ":",
        "|",
        ".",
        "()",
        "\\t",
        "\\",
        "%%",
        "\u00e9",
        "\u4e2d",
    )
)
_bad = st.sampled_from(
    ("%nope", "${X}", "%c(x)", "%d{'x}", "%d{yyyy Q}", "%d{dd, Nowhere/City}", "%", "{", "%X{:-x}")
)
_dates = st.sampled_from(
    (
        "%d ",
        "%d{yyyy-MM-dd HH:mm:ss.SSS} ",
        "%date{dd/MMM/yyyy:HH:mm:ss Z} ",
        "%d{HH:mm:ss dd/MM/yyyy} ",  # fields after the seconds, fixed width
        "%d{yyyy-MM-dd hh:mm:ss a} ",
    )
)
_dated = st.tuples(_dates, st.lists(_pieces, max_size=10).map("".join)).map("".join)
patterns = st.one_of(
    _dated,
    _dated,
    _dated,
    _dated,
    st.lists(_pieces, min_size=1, max_size=10).map("".join),
    st.lists(_pieces | _bad, min_size=1, max_size=6).map("".join),
    st.text(max_size=30),
)
_fields = st.one_of(
    st.just(list(DEFAULT_FIELDS)),
    st.lists(
        st.tuples(
            st.sampled_from(("app", "n", "status_code", "x y", "_rest", "b", "c", "d")),
            st.sampled_from(("str", "int")),
        ),
        min_size=1,
        max_size=5,
        unique_by=lambda f: f[0],
    ),
    st.lists(st.tuples(st.sampled_from(("message", "b")), st.sampled_from(("int", "float")))),
)
_line_bits = st.sampled_from(
    (
        b"2026-11-26 10:02:11.305 ",
        b"26/Nov/2026:10:02:11 +0800 ",
        b"2026-11-26T10:02:11.305+08:00 ",
        b"10:02:11,305 26 ",
        b"10:02:11 26/11/2026 ",
        b"10:02:15 27/11/2026 ",
        b"2026-11-26 02:15:07 AM ",
        b"2026-11-26 02:15:09 PM ",
        b"INFO ",
        b"WARN  ",
        b"[main] ",
        b"a.b.C#m():12 ",
        b"- ",
        b"| ",
        b"app,m,q,w,r,200,1,2,3,4,,\n",
        b"x,1,2\n",
        b"prompt: hi\n",
        b"feedback:r1,up,ok, fine\n",
        b"feedback:r1\n",
        b"\n",
        b"\r\n",
        b"\tat x(Y.java:1)\n",
        b"\x00",
        b"\xef\xbb\xbf",
        b"\xff",
        "\u4e2d".encode(),
    )
)
data = st.one_of(
    st.binary(max_size=400),
    st.lists(st.one_of(_line_bits, st.binary(max_size=8)), max_size=40).map(b"".join),
)


def _reference_error(s: ParserSettings) -> Exception | None:
    try:
        RecordParser(s)
    except Exception as exc:  # the reference's own refusal, whatever its class
        return exc
    return None


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(
    pattern=patterns,
    timezone=st.sampled_from((None, "UTC", "Asia/Shanghai", "America/New_York")),
    separator=st.sampled_from((",", ",", "|", "1", "-", "::", "\u00e9", "")),
    fields=_fields,
    sane=st.integers(0, 3),
    cap=st.sampled_from((1, 5, 64, 512 * 1024)),
    raw=data,
    encoding=st.sampled_from(
        ("utf-8", "utf-8", "gbk", "GBK", "cp936", "latin-1", "cp1252", "gb18030", "shift_jis")
    ),
    feedback=st.sampled_from(
        (DEFAULT_FEEDBACK_FIELDS,) * 4 + ((("rating", "int"),), (("a", "x"),), ())
    ),
    st_data=st.data(),
)
def test_the_core_never_crashes_and_matches_the_reference(
    pattern: str,
    timezone: str | None,
    separator: str,
    fields: list[tuple[str, str]],
    cap: int,
    raw: bytes,
    encoding: str,
    st_data: st.DataObject,
    sane: int,
    feedback: tuple[tuple[str, str], ...],
) -> None:
    if sane:  # three runs in four: settings the reference accepts, so the bytes are compared
        pattern = st_data.draw(_dated)
        separator = separator or ","
        names = [n for n, _ in fields]
        kinds_ok = all(k in ("str", "int") for _, k in fields)
        if not fields or len(set(names)) != len(names) or "message" in names or not kinds_ok:
            fields = list(DEFAULT_FIELDS)
    s = ParserSettings(
        pattern=pattern,
        timezone=timezone,
        payload_separator=separator,
        payload_fields=tuple(fields),
        max_record_bytes=cap,
        encoding=encoding,
        feedback_fields=feedback,
    )
    expected = _reference_error(s)
    try:
        _core.Records(pattern, timezone, separator, fields, cap, encoding, 0, list(feedback))
    except Exception as got:
        assert expected is not None, f"the core refused settings the reference takes: {got}"
        assert isinstance(got, ValueError | IndexError | KeyError)
        assert str(got) == str(expected) or type(expected).__name__ == "IndexError"
        COUNTS["refused"] += 1
        return
    assert expected is None, f"the core took settings the reference refuses: {expected}"
    COUNTS["compared"] += 1
    assert_same(s, split(raw, st_data.draw(chunkings(len(raw)))))
