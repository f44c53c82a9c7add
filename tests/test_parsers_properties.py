"""Properties of the whole parsing path: bytes in any chunking -> frames -> records."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtail.parsers.multiline import Assembler, Frame
from llmtail.parsers.record import INTERNAL_ERROR, ParserSettings, RecordParser
from tests.parsers_strategies import ZONE, Rendered, chunkings, records, split

PARSER = RecordParser(ParserSettings(timezone=ZONE))
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEWER = settings(FAST, max_examples=50)  # each example is a dozen records: heavy to generate


def _frames(parser: RecordParser, chunks: list[bytes], start: int = 0) -> list[Frame]:
    asm = parser.assembler(start_offset=start)
    out: list[Frame] = []
    for chunk in chunks:
        out += asm.feed(chunk, now=0.0)
    out += asm.drain()
    return out


@st.composite
def files(draw: st.DrawFn) -> tuple[list[Rendered], list[int]]:
    recs = draw(st.lists(records(), min_size=1, max_size=8))
    size = sum(len(r.data) for r in recs)
    return recs, draw(chunkings(size))


@FAST
@given(files())
def test_records_written_with_the_pattern_parse_back_to_their_fields(
    case: tuple[list[Rendered], list[int]],
) -> None:
    recs, cuts = case
    data = b"".join(r.data for r in recs)
    frames = _frames(PARSER, split(data, cuts))
    assert len(frames) == len(recs)
    end = 0
    for rendered, frame in zip(recs, frames, strict=True):
        end += len(rendered.data)
        assert frame.end == end
        record = PARSER.parse(frame)
        assert record.fields == rendered.fields
        assert list(record.fields) == list(rendered.fields)  # design.md key order
        assert (record.time, record.time_ns) == (rendered.time, rendered.time_ns)


@FAST
@given(st.binary(max_size=3000), st.data())
def test_arbitrary_bytes_never_raise_and_every_byte_is_accounted_for(
    data: bytes, draw: st.DataObject
) -> None:
    parser = RecordParser(ParserSettings(timezone=ZONE, max_record_bytes=256))
    cuts = draw.draw(chunkings(len(data)))
    frames = _frames(parser, split(data, cuts), start=100)
    assert sum(f.size for f in frames) == len(data)
    ends = [f.end for f in frames]
    assert ends == sorted(set(ends))
    assert not frames or ends[-1] == 100 + len(data)
    for frame in frames:
        assert len(frame.text.encode("utf-8", "surrogatepass")) <= 4 * 256
        for record in (PARSER.parse(frame), parser.parse(frame)):
            reason = str(record.fields.get("parse_error", ""))
            assert INTERNAL_ERROR not in reason, reason  # a bug, not the input's fault


def _mixed() -> st.SearchStrategy[bytes]:
    """Valid records interleaved with hostile bytes: NULs, bad UTF-8, CRs, BOMs, banners."""
    junk = st.sampled_from(
        (
            b"\x00\x00\x00",
            b"\xff\xfe",
            b"\r",
            b"\xef\xbb\xbf",
            b"  .   ____  \n",
            b"\n",
            b"\xe4\xb8",
        )
    )
    return st.lists(
        records().map(lambda r: r.data) | junk | st.binary(max_size=40), max_size=10
    ).map(b"".join)


@FAST
@given(_mixed(), st.data())
def test_framing_does_not_depend_on_how_the_bytes_were_chunked(
    data: bytes, draw: st.DataObject
) -> None:
    parser = RecordParser(ParserSettings(timezone=ZONE, max_record_bytes=300))
    whole = _frames(parser, [data])
    chunked = _frames(parser, split(data, draw.draw(chunkings(len(data)))))
    assert chunked == whole
    assert sum(f.size for f in whole) == len(data)
    for frame in whole:
        record = parser.parse(frame)
        assert ("__raw_log__" in record.fields) == (record.fields.get("time") is None)


@FEWER
@given(st.lists(records(crlf=False) | _mixed(), min_size=1, max_size=8), st.data())
def test_the_text_fast_path_frames_exactly_like_the_line_by_line_path(
    parts: list[Rendered | bytes], draw: st.DataObject
) -> None:
    data = b"".join(p.data if isinstance(p, Rendered) else p for p in parts)
    parser = RecordParser(ParserSettings(timezone=ZONE, max_record_bytes=400))
    chunks = split(data, draw.draw(chunkings(len(data))))
    fast = _frames(parser, chunks)
    slow_asm = Assembler(parser.pattern.start_regex("utf-8"), "utf-8", 400)
    slow = [f for c in chunks for f in slow_asm.feed(c, 0.0)] + slow_asm.drain()
    assert fast == slow
    assert [parser.parse(f) for f in fast] == [
        parser.parse(Frame(f.text, f.end, f.line_no, f.size, f.flags)) for f in fast
    ]
