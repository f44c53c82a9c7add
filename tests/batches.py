"""Sealed batches made from explicit records, for tests of what consumes them (outputs, ledger).

They go through the engine's own batch builder, so they are encoded exactly as a Stream would
encode the same records.
"""

from __future__ import annotations

import time

from llmtail.agent.engine.batch import BatchBuilder
from llmtail.agent.engine.loggroup import LogEncoder
from llmtail.agent.engine.stream import SealedBatch, StreamSettings, Wire
from llmtail.parsers.record import ParserSettings, Record

PACK_PREFIX = "0123456789ABCDEF"


def settings(wire: Wire = "ndjson", **overrides: object) -> StreamSettings:
    values: dict[str, object] = {
        "parser": ParserSettings(),
        "wire": wire,
        "max_records": 10**9,
        "max_bytes": 1 << 62,
        "topic": "llm",
        "source": "10.0.0.7",
        "hostname": "h1",
        "tags": (("env", "test"),),
    }
    values.update(overrides)
    return StreamSettings(**values)  # type: ignore[arg-type]


def sealed(
    records: list[Record],
    key: str = "f1",
    *,
    wire: Wire = "ndjson",
    path: str | None = None,
    start: int = 0,
    size: int = 100,
    seq: int = 0,
    **overrides: object,
) -> SealedBatch:
    """One batch of `records` of file `key`: record i ends at `start + (i + 1) * size`."""
    builder = BatchBuilder(
        settings(wire, **overrides),
        LogEncoder(),
        key,
        path or f"/logs/{key}.log",
        PACK_PREFIX,
        seq,
    )
    wall = time.time()
    for i, r in enumerate(records):
        t = r.time if r.time is not None else int(wall)
        end = start + (i + 1) * size
        builder.add(r.fields, t, r.time_ns, r.time is not None, end, size, i + 1, 0.0)
    return builder.seal()


def sealed_all(
    records: list[Record], key: str = "f1", *, wire: Wire = "ndjson", **overrides: object
) -> list[SealedBatch]:
    """Every batch the engine's limits cut `records` into (`max_records`, `max_bytes`)."""
    builder = BatchBuilder(
        settings(wire, **overrides), LogEncoder(), key, f"/logs/{key}.log", PACK_PREFIX, 0
    )
    out: list[SealedBatch] = []
    for i, r in enumerate(records):
        t = r.time if r.time is not None else 0
        out += builder.add(r.fields, t, r.time_ns, r.time is not None, (i + 1) * 100, 100, i, 0.0)
    if not builder.empty:
        out.append(builder.seal())
    return out
