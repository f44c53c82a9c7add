"""The batcher cuts one file's events into ordered batches within the sink's limits."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agent.engine.batcher import Batcher
from agent.engine.events import Batch, Event
from parsers.record import Record


def ev(source: str, end: int, size: int = 10) -> Event:
    record = Record({"message": f"{source}@{end}"}, time=1_700_000_000)
    return Event(record, source, f"/logs/{source}.log", end, size)


def test_a_batch_is_cut_when_it_holds_max_records() -> None:
    b = Batcher(max_records=3, max_bytes=10_000, linger=5.0)
    assert b.push(ev("a", 1), 0.0) == []
    assert b.push(ev("a", 2), 0.0) == []
    (full,) = b.push(ev("a", 3), 0.0)
    assert [e.end_offset for e in full.events] == [1, 2, 3]
    assert full.offsets == {"a": 3}


def test_an_event_that_would_overflow_max_bytes_starts_the_next_batch() -> None:
    b = Batcher(max_records=100, max_bytes=25, linger=5.0)
    b.push(ev("a", 1, size=10), 0.0)
    b.push(ev("a", 2, size=10), 0.0)
    (full,) = b.push(ev("a", 3, size=10), 0.0)
    assert full.nbytes == 20
    assert [e.end_offset for e in b.drain()[0].events] == [3]


def test_an_event_larger_than_max_bytes_travels_alone_instead_of_being_dropped() -> None:
    b = Batcher(max_records=100, max_bytes=25, linger=5.0)
    b.push(ev("a", 1, size=5), 0.0)
    out = b.push(ev("a", 2, size=100), 0.0)
    assert [[e.end_offset for e in x.events] for x in out] == [[1], [2]]
    assert b.drain() == []


def test_batches_never_mix_files() -> None:
    b = Batcher(max_records=2, max_bytes=10_000, linger=5.0)
    out = []
    for i, source in enumerate("abab"):
        out += b.push(ev(source, i), 0.0)
    assert sorted(tuple(x.offsets) for x in out) == [("a",), ("b",)]


def test_linger_releases_a_batch_from_its_first_event_on_an_injected_clock() -> None:
    b = Batcher(max_records=100, max_bytes=10_000, linger=1.0)
    b.push(ev("a", 1), 10.0)
    b.push(ev("a", 2), 10.9)
    assert b.next_due() == 11.0
    assert b.due(10.99) == []
    (batch,) = b.due(11.0)
    assert len(batch.events) == 2
    assert b.next_due() is None


def test_draining_one_file_leaves_the_others_open() -> None:
    b = Batcher(max_records=100, max_bytes=10_000, linger=1.0)
    b.push(ev("a", 1), 0.0)
    b.push(ev("b", 1), 0.0)
    (cut,) = b.drain("a")
    assert cut.offsets == {"a": 1}
    assert b.drain("a") == []
    assert [x.offsets for x in b.drain()] == [{"b": 1}]


def test_nbytes_counts_what_is_held_until_it_leaves() -> None:
    b = Batcher(max_records=100, max_bytes=10_000, linger=1.0)
    b.push(ev("a", 1, size=7), 0.0)
    b.push(ev("b", 1, size=5), 0.0)
    assert b.nbytes == 12
    b.drain()
    assert b.nbytes == 0


@given(
    st.lists(st.tuples(st.sampled_from("abc"), st.integers(1, 40), st.floats(0, 3)), max_size=200),
    st.integers(1, 5),
    st.integers(1, 100),
)
def test_every_event_leaves_once_in_file_order_with_increasing_seq(
    steps: list[tuple[str, int, float]], max_records: int, max_bytes: int
) -> None:
    b = Batcher(max_records=max_records, max_bytes=max_bytes, linger=1.0, first_seq=7)
    now, pushed, out = 0.0, [], []
    offsets = {"a": 0, "b": 0, "c": 0}
    for source, size, dt in steps:
        now += dt
        offsets[source] += size
        event = ev(source, offsets[source], size)
        pushed.append(event)
        out += b.push(event, now)
        out += b.due(now)
    out += b.drain()

    seqs = [x.seq for x in out]
    assert seqs == list(range(7, 7 + len(out)))
    for batch in out:
        assert len(batch.events) <= max_records
        assert batch.nbytes <= max_bytes or len(batch.events) == 1
        assert len({e.source for e in batch.events}) == 1
    for source in "abc":
        sent = [e for x in out for e in x.events if e.source == source]
        assert sent == [e for e in pushed if e.source == source]


def test_a_batch_built_by_hand_knows_its_highest_offset_per_file() -> None:
    batch = Batch(seq=0)
    batch.add(ev("a", 5))
    batch.add(ev("a", 9))
    assert batch.offsets == {"a": 9}
