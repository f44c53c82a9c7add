"""`llmtail trace` parses only the records whose text holds an id it looks for, on either
engine. A record's ids are substrings of its text, so that filter must never lose a record:
both engines give exactly what a full parse of every record gives."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.modes.scan import Scanned, scan
from llmtail.agent.modes.trace import trace
from llmtail.parsers.record import ParserSettings, RecordParser
from tests.parsers_strategies import ZONE, Rendered, records

PARSER = RecordParser(ParserSettings(timezone=ZONE))


def full_trace(ident: str, path: str) -> list[Scanned]:
    """The reference: every record parsed, then the ids compared (trace's rule, written out)."""

    def collect(traces: set[str]) -> tuple[set[str], list[Scanned]]:
        found, kept = set(), []
        for item in scan(path, PARSER, []):
            trace_id = item.fields.get("trace_id")
            by_request = item.fields.get("request_id") == ident
            if by_request and trace_id:
                found.add(str(trace_id))
            if by_request or trace_id in traces:
                kept.append(item)
        return found, kept

    found, kept = collect({ident})
    if found - {ident}:
        _, kept = collect({ident} | found)
    return kept


def rows(items: list[Scanned]) -> list[tuple[object, ...]]:
    ordered = sorted(items, key=lambda i: i.line_no)
    return [(i.line_no, i.text, i.fields, i.time, i.time_ns) for i in ordered]


def in_trace(r: Rendered, trace_id: str) -> bytes:
    """The record moved into another trace (its header is where its trace id first shows)."""
    old = f"[traceId:{r.fields['trace_id']}]".encode()
    return r.data.replace(old, f"[traceId:{trace_id}]".encode(), 1)


@settings(max_examples=80, deadline=None)
@given(
    recs=st.lists(st.tuples(records(), st.integers(0, 2)), min_size=1, max_size=10),
    junk=st.binary(max_size=40),
    pick=st.integers(min_value=0),
    stranger=st.text(min_size=1, max_size=4),
)
def test_trace_finds_what_a_full_parse_finds_on_both_engines(
    recs: list[tuple[Rendered, int]], junk: bytes, pick: int, stranger: str
) -> None:
    # Three traces shared by the records, so a request id leads to the rest of its trace; one
    # is a prefix of another, and a stranger may sit anywhere inside a record's text.
    traces = ["7c9f0e1a", "7c9f0e1a6d2b", stranger]
    data = b"".join(in_trace(r, traces[t]) for r, t in recs) + junk
    ids = traces + [str(r.fields["request_id"]) for r, _ in recs if r.fields.get("request_id")]
    ident = ids[pick % len(ids)]
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "app.log"
        path.write_bytes(data)
        expected = rows(full_trace(ident, str(path)))
        for engine in ("python", "core"):
            got = trace(ident, [str(path)], PARSER, engine=engine)  # type: ignore[arg-type]
            assert rows(got.records) == expected, engine
            assert not got.damaged
