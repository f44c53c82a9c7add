"""`llmtail trace ID PATH...`: every record of one trace id or request id, in time order.

Step 3 of the on-call SOP, on the host: the prompt, the call, the result and any stack trace of
one request together, as the application wrote them, across rotated and gzipped files. When ID
is a request id, the records sharing its call's trace id are included too (a second pass finds
those written before the call). At most `limit` records are kept (memory stays bounded).
Only records whose text holds one of the ids are parsed (`scan_containing`): on the core, the
others cost their framing alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmtail.agent.modes.scan import EngineKind, Scanned, scan_containing
from llmtail.parsers.record import RecordParser

TRACE_LIMIT = 100_000


@dataclass
class TraceResult:
    records: list[Scanned] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    truncated: bool = False  # more than `limit` records matched

    def as_json(self, item: Scanned) -> dict[str, Any]:
        """One record for `--json`: where it is, then its fields."""
        return {"path": item.path, "line": item.line_no, **item.fields}


def trace(
    ident: str,
    paths: Sequence[str],
    parser: RecordParser,
    limit: int = TRACE_LIMIT,
    engine: EngineKind = "python",
) -> TraceResult:
    """The records whose trace_id or request_id is `ident` (and their calls' traces)."""
    result = TraceResult()
    traces = {ident}
    found = _collect(ident, traces, paths, parser, limit, result, engine)
    more = found - traces
    if more:  # a request id led to trace ids: read again for every record of those traces
        traces |= more
        result = TraceResult()
        _collect(ident, traces, paths, parser, limit, result, engine)
    order = {path: n for n, path in enumerate(paths)}
    result.records.sort(key=lambda s: _when(s, order))
    return result


def _collect(
    ident: str,
    traces: set[str],
    paths: Sequence[str],
    parser: RecordParser,
    limit: int,
    result: TraceResult,
    engine: EngineKind,
) -> set[str]:
    """Fill `result`; returns the trace ids of the records whose request_id is `ident`."""
    found: set[str] = set()
    needles = sorted(traces)  # ident is one of them
    for path in paths:
        for item in scan_containing(path, parser, needles, result.damaged, engine):
            fields = item.fields
            trace_id = fields.get("trace_id")
            by_request = fields.get("request_id") == ident
            if by_request and trace_id:
                found.add(str(trace_id))
            if by_request or trace_id in traces:
                if len(result.records) >= limit:
                    result.truncated = True
                    continue
                result.records.append(item)
    return found


def _when(item: Scanned, order: dict[str, int]) -> tuple[float, int, int, int]:
    """Record time first; then the order the files were named in and the line."""
    seconds = math.inf if item.time is None else float(item.time)
    return (seconds, item.time_ns, order.get(item.path, 0), item.line_no)
