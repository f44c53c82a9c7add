"""The saved offset never passes an unfinished batch, whatever order outcomes arrive in; files
let go are remembered until their last batch is final."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.engine.ledger import Ledger
from llmtail.agent.engine.stream import SealedBatch


def batch(key: str, end: int, records: int = 1) -> SealedBatch:
    return SealedBatch(key, f"/{key}", end, records, 1, b"", b"", b"", b"", 0, 0, 0)


def ledger_with(*batches: SealedBatch) -> Ledger:
    ledger = Ledger()
    for b in batches:
        if ledger.position(b.key) is None:
            ledger.start(b.key, 0)
        ledger.register(b)
    return ledger


def test_an_out_of_order_delivery_waits_for_the_batch_before_it() -> None:
    first, second = batch("a", 20, 2), batch("a", 30)
    ledger = ledger_with(first, second)
    ledger.finish(second.id, Outcome.DELIVERED)
    assert ledger.positions() == {"a": 0}
    ledger.finish(first.id, Outcome.DELIVERED)
    assert ledger.positions() == {"a": 30}


def test_reading_that_starts_mid_file_saves_its_start_until_a_batch_is_final() -> None:
    ledger = Ledger()
    ledger.start("a", 500)
    ledger.register(b := batch("a", 600))
    assert ledger.position("a") == 500
    ledger.finish(b.id, Outcome.DELIVERED)
    assert ledger.position("a") == 600


def test_a_rejected_batch_is_final_and_counted_apart() -> None:
    b = batch("a", 20, 2)
    ledger = ledger_with(b)
    ledger.finish(b.id, Outcome.REJECTED)
    assert ledger.positions() == {"a": 20}
    stats = ledger.stats()
    assert (stats.delivered_records, stats.rejected_records) == (0, 2)


def test_an_aborted_batch_holds_its_file_offset_for_good() -> None:
    b0, b1, b2 = batch("a", 10), batch("a", 20), batch("a", 30)
    ledger = ledger_with(b0, b1, b2)
    ledger.finish(b0.id, Outcome.DELIVERED)
    ledger.finish(b1.id, Outcome.ABORTED)
    ledger.finish(b2.id, Outcome.DELIVERED)
    assert ledger.positions() == {"a": 10}
    assert ledger.stats().aborted_batches == 1


def test_files_advance_independently() -> None:
    a, b = batch("a", 5), batch("b", 7)
    ledger = ledger_with(a, b)
    ledger.finish(b.id, Outcome.DELIVERED)
    assert ledger.positions() == {"a": 0, "b": 7}


def test_a_forgotten_file_is_not_resurrected_by_a_late_outcome() -> None:
    b = batch("a", 5)
    ledger = ledger_with(b)
    ledger.forget("a")
    ledger.finish(b.id, Outcome.DELIVERED)
    assert ledger.positions() == {}
    assert ledger.stats().outstanding_batches == 0


def test_a_second_outcome_for_the_same_batch_is_ignored() -> None:
    b = batch("a", 5)
    ledger = ledger_with(b)
    ledger.finish(b.id, Outcome.DELIVERED)
    ledger.finish(b.id, Outcome.DELIVERED)
    assert ledger.stats().delivered_records == 1


def test_batch_ids_are_unique_across_ledgers() -> None:
    """After a reload a new ledger must not take an old ledger's outcome for its own."""
    first, second = batch("a", 5), batch("a", 5)
    ledger_with(first)
    fresh = ledger_with(second)
    fresh.finish(first.id, Outcome.DELIVERED)
    assert fresh.positions() == {"a": 0}


def test_a_released_file_is_kept_until_its_last_batch_is_final() -> None:
    b0, b1 = batch("a", 10), batch("a", 25)
    ledger = ledger_with(b0, b1)
    ledger.release("a", 25)
    assert ledger.settled() == []
    ledger.finish(b1.id, Outcome.DELIVERED)
    assert ledger.settled() == []  # b0 is still in flight: offset 25 may not be saved yet
    assert ledger.position("a") == 0
    ledger.finish(b0.id, Outcome.DELIVERED)
    assert ledger.settled() == ["a"]
    assert ledger.position("a") is None  # forgotten once final


def test_a_released_file_with_an_aborted_batch_never_settles() -> None:
    b = batch("a", 10)
    ledger = ledger_with(b)
    ledger.release("a", 10)
    ledger.finish(b.id, Outcome.ABORTED)
    assert ledger.settled() == []
    assert ledger.position("a") == 0  # still saved: the next start reads it again


@dataclass
class Schedule:
    batches: list[SealedBatch]
    firsts: list[int]  # where each batch's first record starts
    order: list[tuple[int, Outcome]]
    released: dict[str, int]


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    """Batches over a few files with growing offsets, an arbitrary completion order, and some
    files let go after their last batch."""
    n = draw(st.integers(1, 30))
    ends: dict[str, int] = {}
    batches, firsts = [], []
    for _ in range(n):
        key = draw(st.sampled_from("xyz"))
        firsts.append(ends.get(key, 0) + 1)
        sizes = draw(st.lists(st.integers(1, 50), min_size=1, max_size=4))
        ends[key] = ends.get(key, 0) + sum(sizes)
        batches.append(batch(key, ends[key], len(sizes)))
    order = draw(st.permutations(range(n)))
    final = st.sampled_from([Outcome.DELIVERED, Outcome.REJECTED])
    released = {k: e for k, e in ends.items() if draw(st.booleans())}
    return Schedule(batches, firsts, [(i, draw(final)) for i in order], released)


@given(schedules())
def test_the_saved_offset_never_passes_an_unfinished_batch(schedule: Schedule) -> None:
    ledger = ledger_with(*schedule.batches)
    for key, end in schedule.released.items():
        ledger.release(key, end)
    done: set[int] = set()
    before: dict[str, int] = {}
    forgotten: set[str] = set()
    for index, outcome in schedule.order:
        ledger.finish(schedule.batches[index].id, outcome)
        done.add(index)
        forgotten.update(ledger.settled())
        now = ledger.positions()
        for key, offset in now.items():
            assert offset >= before.get(key, 0), "went backwards"
            for i, b in enumerate(schedule.batches):
                if i not in done and b.key == key:
                    assert offset < schedule.firsts[i], "passed a record still in flight"
        for key in forgotten:
            assert all(i in done for i, b in enumerate(schedule.batches) if b.key == key)
        before = now
    last = {b.key: b.end for b in schedule.batches}
    assert forgotten == set(schedule.released)
    assert ledger.positions() == {k: e for k, e in last.items() if k not in forgotten}
    assert ledger.stats().outstanding_batches == 0
