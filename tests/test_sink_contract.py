"""The contract every output keeps: each record of a batch arrives whole, once, in order;
abort ends sends promptly; close is idempotent.

Adding an output is one entry in SINKS: a factory that builds the sink against a real
destination under `tmp_path` and returns a harness that reads back what that destination holds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agent.config import FileOutput, StdoutOutput
from agent.delivery.file import FileSink
from agent.delivery.sink import Outcome, Sink
from agent.delivery.stdout import StdoutSink
from agent.engine.envelope import EnvelopeMaker
from agent.engine.events import Batch, Event
from parsers.record import Record


@dataclass
class Harness:
    sink: Sink
    received: Callable[[], list[dict[str, Any]]]  # what the destination holds, one dict a log
    cleanup: Callable[[], None] = lambda: None


def _envelopes() -> EnvelopeMaker:
    return EnvelopeMaker(topic="llm", source="10.0.0.7", tags={"env": "test"}, hostname="h1")


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def file_sink(tmp_path: Path) -> Harness:
    out = tmp_path / "deep" / "out.ndjson"
    sink = FileSink(FileOutput(type="file", path=str(out), topic="llm"), _envelopes())
    return Harness(sink, lambda: _read_ndjson(out))


def stdout_sink(tmp_path: Path) -> Harness:
    out = tmp_path / "stdout.ndjson"
    stream = out.open("wb")
    sink = StdoutSink(StdoutOutput(type="stdout"), _envelopes(), stream=stream)
    return Harness(sink, lambda: _read_ndjson(out), stream.close)


SINKS = [pytest.param(file_sink, id="file"), pytest.param(stdout_sink, id="stdout")]


@pytest.fixture(params=SINKS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    h: Harness = request.param(tmp_path)
    yield h
    h.sink.close()
    h.cleanup()


_seq = iter(range(10**9))


def make_batch(source: str, records: list[Record], start: int = 0) -> Batch:
    batch = Batch(seq=next(_seq))
    for i, record in enumerate(records):
        batch.add(Event(record, source, f"/logs/{source}.log", start + (i + 1) * 100, 100))
    return batch


def _text(value: object) -> str | None:
    """SLS carries every value as text and has no null: compare on that common ground."""
    return None if value is None else str(value)


def assert_delivered_exactly(received: list[dict[str, Any]], sent: list[Event]) -> None:
    assert len(received) == len(sent)
    for got, event in zip(received, sent, strict=True):
        record = event.record
        for key, value in record.fields.items():
            if value is not None:
                assert _text(got[key]) == _text(value), key
        assert _text(got["__time__"]) == str(record.time)
        assert _text(got["__topic__"]) == "llm"
        assert _text(got["__source__"]) == "10.0.0.7"
        assert _text(got["__tag__:__path__"]) == event.path
        assert _text(got["__tag__:env"]) == "test"


def llm_record(i: int) -> Record:
    return Record(
        {
            "time": "2025-07-09 14:23:24.748",
            "level": "ERROR",
            "trace_id": f"t{i}",
            "line": None if i % 3 == 0 else 42,
            "event": "llm_call",
            "message": f'call {i}, with commas, "quotes", 中文 and a\nstack\n\tat x',
            "status_code": 429,
            "error_message": "Requests rate limit exceeded, please try again later.",
        },
        time=1_752_042_204 + i,
        time_ns=748_000_000,
    )


def test_every_record_of_a_batch_arrives_in_order(harness: Harness) -> None:
    batch = make_batch("a", [llm_record(i) for i in range(50)])
    assert harness.sink.send(batch) is Outcome.DELIVERED
    assert_delivered_exactly(harness.received(), batch.events)


def test_each_batch_is_one_loggroup_with_its_own_pack_id(harness: Harness) -> None:
    first, second = make_batch("a", [llm_record(0)] * 2), make_batch("a", [llm_record(1)])
    harness.sink.send(first)
    harness.sink.send(second)
    packs = [line["__tag__:__pack_id__"] for line in harness.received()]
    assert packs[0] == packs[1] != packs[2]
    assert packs[2].split("-")[0] == packs[0].split("-")[0]


def test_concurrent_senders_deliver_every_record_once(harness: Harness) -> None:
    batches = [
        make_batch(f"f{i % 3}", [llm_record(i * 10 + j) for j in range(10)]) for i in range(24)
    ]
    outcomes: list[Outcome] = []

    def send(part: list[Batch]) -> None:
        outcomes.extend(harness.sink.send(b) for b in part)

    threads = [threading.Thread(target=send, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [Outcome.DELIVERED] * len(batches)
    got = sorted(harness.received(), key=lambda line: line["trace_id"])
    sent = sorted(
        (e for b in batches for e in b.events), key=lambda e: str(e.record.fields["trace_id"])
    )
    assert_delivered_exactly(got, sent)


def test_after_abort_sends_end_promptly_without_delivering(harness: Harness) -> None:
    harness.sink.abort()
    started = time.monotonic()
    assert harness.sink.send(make_batch("a", [llm_record(0)])) is Outcome.ABORTED
    assert time.monotonic() - started < 1.0
    assert harness.received() == []


def test_close_is_idempotent(harness: Harness) -> None:
    harness.sink.send(make_batch("a", [llm_record(0)]))
    harness.sink.close()
    harness.sink.close()
    assert len(harness.received()) == 1


texts = st.text(st.characters(codec="utf-8"), max_size=40)
values = st.one_of(st.none(), texts, st.integers(-(2**63), 2**63 - 1))


@pytest.mark.parametrize("factory", SINKS)
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fields=st.lists(
        st.dictionaries(st.from_regex(r"[a-z_]{1,12}", fullmatch=True), values),
        min_size=1,
        max_size=5,
    )
)
def test_any_field_values_arrive_unchanged(
    factory: Callable[[Path], Harness],
    tmp_path_factory: pytest.TempPathFactory,
    fields: list[dict[str, Any]],
) -> None:
    h = factory(tmp_path_factory.mktemp("sink"))
    try:
        batch = make_batch("a", [Record(f, time=1_700_000_000) for f in fields])
        assert h.sink.send(batch) is Outcome.DELIVERED
        assert_delivered_exactly(h.received(), batch.events)
    finally:
        h.sink.close()
        h.cleanup()
