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

from llmtail.agent.config import FileOutput, StdoutOutput
from llmtail.agent.delivery.file import FileSink
from llmtail.agent.delivery.sink import Outcome, Sink
from llmtail.agent.delivery.stdout import StdoutSink
from llmtail.agent.engine.stream import SealedBatch
from llmtail.parsers.record import Record
from tests.batches import sealed


@dataclass
class Harness:
    sink: Sink
    received: Callable[[], list[dict[str, Any]]]  # what the destination holds, one dict a log
    cleanup: Callable[[], None] = lambda: None


def _read_ndjson(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def file_sink(tmp_path: Path) -> Harness:
    out = tmp_path / "deep" / "out.ndjson"
    sink = FileSink(FileOutput(type="file", path=str(out), topic="llm"))
    return Harness(sink, lambda: _read_ndjson(out))


def stdout_sink(tmp_path: Path) -> Harness:
    out = tmp_path / "stdout.ndjson"
    stream = out.open("wb")
    sink = StdoutSink(StdoutOutput(type="stdout"), stream=stream)
    return Harness(sink, lambda: _read_ndjson(out), stream.close)


SINKS = [pytest.param(file_sink, id="file"), pytest.param(stdout_sink, id="stdout")]


@pytest.fixture(params=SINKS)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    h: Harness = request.param(tmp_path)
    yield h
    h.sink.close()
    h.cleanup()


_seq = iter(range(10**9))


@dataclass
class Made:
    """A sealed batch and what went into it."""

    batch: SealedBatch
    records: list[Record]

    @property
    def events(self) -> list[tuple[Record, str]]:
        return [(r, self.batch.path) for r in self.records]


def make_batch(source: str, records: list[Record], start: int = 0) -> SealedBatch:
    return make(source, records, start).batch


def make(source: str, records: list[Record], start: int = 0) -> Made:
    return Made(sealed(records, source, start=start, seq=next(_seq)), records)


def _text(value: object) -> str | None:
    """SLS carries every value as text and has no null: compare on that common ground."""
    return None if value is None else str(value)


def assert_delivered_exactly(
    received: list[dict[str, Any]], sent: list[tuple[Record, str]]
) -> None:
    assert len(received) == len(sent)
    for got, (record, path) in zip(received, sent, strict=True):
        for key, value in record.fields.items():
            if value is not None:
                assert _text(got[key]) == _text(value), key
        assert _text(got["__time__"]) == str(record.time)
        assert _text(got["__topic__"]) == "llm"
        assert _text(got["__source__"]) == "10.0.0.7"
        assert _text(got["__tag__:__path__"]) == path
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
    made = make("a", [llm_record(i) for i in range(50)])
    assert harness.sink.send(made.batch) is Outcome.DELIVERED
    assert_delivered_exactly(harness.received(), made.events)


def test_each_batch_is_one_loggroup_with_its_own_pack_id(harness: Harness) -> None:
    first, second = make_batch("a", [llm_record(0)] * 2), make_batch("a", [llm_record(1)])
    harness.sink.send(first)
    harness.sink.send(second)
    packs = [line["__tag__:__pack_id__"] for line in harness.received()]
    assert packs[0] == packs[1] != packs[2]
    assert packs[2].split("-")[0] == packs[0].split("-")[0]


def test_concurrent_senders_deliver_every_record_once(harness: Harness) -> None:
    made = [make(f"f{i % 3}", [llm_record(i * 10 + j) for j in range(10)]) for i in range(24)]
    batches = [m.batch for m in made]
    outcomes: list[Outcome] = []

    def send(part: list[SealedBatch]) -> None:
        outcomes.extend(harness.sink.send(b) for b in part)

    threads = [threading.Thread(target=send, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes == [Outcome.DELIVERED] * len(batches)
    got = sorted(harness.received(), key=lambda line: line["trace_id"])
    sent = sorted((e for m in made for e in m.events), key=lambda e: str(e[0].fields["trace_id"]))
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
        made = make("a", [Record(f, time=1_700_000_000) for f in fields])
        assert h.sink.send(made.batch) is Outcome.DELIVERED
        assert_delivered_exactly(h.received(), made.events)
    finally:
        h.sink.close()
        h.cleanup()
