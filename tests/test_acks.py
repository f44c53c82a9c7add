"""The committed offset never passes an unacknowledged record, whatever order batches end in."""

from __future__ import annotations

import threading

from hypothesis import given
from hypothesis import strategies as st

from agent.delivery.sink import Outcome
from agent.engine.acks import AckTracker
from agent.engine.events import Batch, Event
from parsers.record import Record


def batch(seq: int, source: str, *ends: int) -> Batch:
    b = Batch(seq=seq)
    for end in ends:
        b.add(Event(Record({}, time=1_700_000_000), source, f"/{source}", end, 1))
    return b


def test_an_out_of_order_delivery_waits_for_the_batch_before_it() -> None:
    acks = AckTracker()
    first, second = batch(0, "a", 10, 20), batch(1, "a", 30)
    acks.register(first)
    acks.register(second)
    acks.finish(second, Outcome.DELIVERED)
    assert acks.committed() == {}
    acks.finish(first, Outcome.DELIVERED)
    assert acks.committed() == {"a": 30}


def test_a_rejected_batch_is_final_and_counted_apart() -> None:
    acks = AckTracker()
    b = batch(0, "a", 10, 20)
    acks.register(b)
    acks.finish(b, Outcome.REJECTED)
    assert acks.committed() == {"a": 20}
    stats = acks.stats()
    assert (stats.delivered_records, stats.rejected_records) == (0, 2)


def test_an_aborted_batch_holds_its_file_offset_for_good() -> None:
    acks = AckTracker()
    b0, b1, b2 = batch(0, "a", 10), batch(1, "a", 20), batch(2, "a", 30)
    for b in (b0, b1, b2):
        acks.register(b)
    acks.finish(b0, Outcome.DELIVERED)
    acks.finish(b1, Outcome.ABORTED)
    acks.finish(b2, Outcome.DELIVERED)
    assert acks.committed() == {"a": 10}
    assert acks.stats().aborted_batches == 1


def test_files_advance_independently() -> None:
    acks = AckTracker()
    a, b = batch(0, "a", 5), batch(1, "b", 7)
    acks.register(a)
    acks.register(b)
    acks.finish(b, Outcome.DELIVERED)
    assert acks.committed() == {"b": 7}


def test_a_forgotten_file_is_not_resurrected_by_a_late_outcome() -> None:
    acks = AckTracker()
    b = batch(0, "a", 5)
    acks.register(b)
    acks.forget("a")
    acks.finish(b, Outcome.DELIVERED)
    assert acks.committed() == {}
    assert acks.stats().outstanding_batches == 0


def test_a_second_outcome_for_the_same_batch_is_ignored() -> None:
    acks = AckTracker()
    b = batch(0, "a", 5)
    acks.register(b)
    acks.finish(b, Outcome.DELIVERED)
    acks.finish(b, Outcome.DELIVERED)
    assert acks.stats().delivered_records == 1


def test_wait_settled_returns_when_the_last_sender_reports() -> None:
    acks = AckTracker()
    b = batch(0, "a", 5)
    acks.register(b)
    assert acks.wait_settled(timeout=0) is False
    sender = threading.Thread(target=acks.finish, args=(b, Outcome.DELIVERED))
    sender.start()
    assert acks.wait_settled(timeout=10) is True
    sender.join()


def test_outcomes_from_many_threads_all_count() -> None:
    acks = AckTracker()
    batches = [batch(i, "ab"[i % 2], *range(i * 10 + 1, i * 10 + 11)) for i in range(400)]
    for b in batches:
        acks.register(b)

    def finish(part: list[Batch]) -> None:
        for b in part:
            acks.finish(b, Outcome.DELIVERED)

    threads = [threading.Thread(target=finish, args=(batches[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert acks.stats().delivered_records == 4000
    assert acks.committed() == {"a": batches[-2].offsets["a"], "b": batches[-1].offsets["b"]}


@st.composite
def schedules(draw: st.DrawFn) -> tuple[list[Batch], list[tuple[int, Outcome]]]:
    """Batches over a few files with growing offsets, and an arbitrary completion order."""
    n = draw(st.integers(1, 30))
    ends: dict[str, int] = {}
    batches = []
    for seq in range(n):
        source = draw(st.sampled_from("xyz"))
        sizes = draw(st.lists(st.integers(1, 50), min_size=1, max_size=4))
        offs = []
        for size in sizes:
            ends[source] = ends.get(source, 0) + size
            offs.append(ends[source])
        batches.append(batch(seq, source, *offs))
    order = draw(st.permutations(range(n)))
    final = st.sampled_from([Outcome.DELIVERED, Outcome.REJECTED])
    return batches, [(i, draw(final)) for i in order]


@given(schedules())
def test_committed_offset_never_passes_an_unacknowledged_record(
    schedule: tuple[list[Batch], list[tuple[int, Outcome]]],
) -> None:
    batches, order = schedule
    acks = AckTracker()
    for b in batches:
        acks.register(b)
    done: set[int] = set()
    before: dict[str, int] = {}
    for index, outcome in order:
        acks.finish(batches[index], outcome)
        done.add(index)
        now = acks.committed()
        for key, offset in now.items():
            assert offset >= before.get(key, 0), "went backwards"
            for i, b in enumerate(batches):
                if i not in done and key in b.offsets:
                    first_end = b.events[0].end_offset
                    assert offset < first_end, "passed a record still in flight"
        before = now
    last = {}
    for b in batches:
        last.update(b.offsets)
    assert acks.committed() == last
    assert acks.stats().outstanding_batches == 0
