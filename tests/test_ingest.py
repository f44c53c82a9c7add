"""Per-file framing in the agent: what may be flushed on a timer, and what must wait."""

from __future__ import annotations

from agent.config import Config
from agent.engine.ingest import Ingest
from agent.modes.pipeline import parsers_for_inputs
from tests.agentproc import record_line


def make() -> Ingest:
    ingest = Ingest(parsers_for_inputs(Config()), wall_clock=lambda: 1_800_000_000.25)
    ingest.open("k", "/var/log/app.log", 0)
    return ingest


def test_a_chunk_that_ends_mid_line_is_not_flushed_while_the_file_has_more_bytes() -> None:
    """Reading paused by backpressure leaves the tail of a chunk: not the writer's last line."""
    ingest = make()
    data = record_line(1) + record_line(2)
    cut = len(record_line(1)) + 2  # two bytes into the second record
    events = ingest.feed("k", data[:cut], now=0.0)
    events += ingest.due(1000.0, 60.0, 5.0, caught_up=lambda key: False)
    assert events == []  # record 1 may still get continuation lines; record 2 is a stub
    events += ingest.feed("k", data[cut:], now=1000.0)
    events += ingest.finish("k")
    assert [e.record.fields.get("request_id") for e in events] == [
        "req-0000000001",
        "req-0000000002",
    ]
    assert events[-1].end_offset == len(data)


def test_the_writers_partial_last_line_ships_once_the_file_is_idle() -> None:
    ingest = make()
    ingest.feed("k", record_line(1) + record_line(2).rstrip(b"\n"), now=0.0)
    early = ingest.due(10.0, 60.0, 5.0, caught_up=lambda key: True)
    assert "req-0000000002" not in [e.record.fields.get("request_id") for e in early]
    events = ingest.due(61.0, 60.0, 5.0, caught_up=lambda key: True)
    assert "req-0000000002" in [e.record.fields.get("request_id") for e in events]


def test_a_record_without_a_timestamp_gets_the_read_time() -> None:
    ingest = make()
    (event,) = ingest.feed("k", b"Spring Boot banner line\n", now=0.0) + ingest.finish("k")
    assert event.record.fields["parse_error"]
    assert (event.record.time, event.record.time_ns) == (1_800_000_000, 250_000_000)
