"""LlmAggregate: what a sealed batch carries about its llm_call records, and how they merge."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.config import ConfigError, parse_config
from llmtail.agent.engine.llm_aggregate import (
    DURATION_BOUNDS,
    DURATION_SLOTS,
    OTHER,
    TOKEN_SLOTS,
    LlmAggregate,
    label_key,
    negative_rating,
    normalise_rating,
    quantile,
)
from tests.sizes import deep_size

calls = st.fixed_dictionaries(
    {
        "event": st.just("llm_call"),
        "app": st.sampled_from(["chat", "rag"]),
        "module": st.sampled_from(["support", "search"]),
        "model": st.sampled_from(["qwen-max", "qwen-plus", "deepseek-r1"]),
        "workspace": st.sampled_from(["ws-a", "ws-b", "ws-c"]),
        "status_code": st.sampled_from([200, 200, 429, 500, None]),
        "duration_ms": st.integers(0, 120_000) | st.none(),
        "input_tokens": st.integers(0, 10**7) | st.none(),
        "output_tokens": st.integers(0, 10**5) | st.none(),
        "total_tokens": st.integers(0, 10**7) | st.none(),
        "error_code": st.sampled_from(["", "Throttling", "InternalError"]) | st.none(),
    }
)
records = st.lists(st.tuples(calls, st.integers(1_700_000_000, 1_700_100_000)), max_size=60)


def build(items: list[tuple[dict[str, object], int]], cap: int = 2000) -> LlmAggregate:
    a = LlmAggregate(max_label_sets=cap)
    for fields, t in items:
        a.add(fields, t)
    return a


def as_dict(a: LlmAggregate) -> dict[object, object]:
    """Order-free view: per label set its numbers, per (label set, minute) its cell."""
    per_key = {}
    for i, key in enumerate(a.keys):
        per_key[key] = (
            a.calls[i],
            a.input_tokens[i],
            a.output_tokens[i],
            a.total_tokens[i],
            a.duration_ms[i],
            tuple(a.duration_buckets[i * DURATION_SLOTS : (i + 1) * DURATION_SLOTS]),
            tuple(a.input_buckets[i * TOKEN_SLOTS : (i + 1) * TOKEN_SLOTS]),
            tuple(a.output_buckets[i * TOKEN_SLOTS : (i + 1) * TOKEN_SLOTS]),
        )
    minutes = {(a.keys[i], m): tuple(c) for (i, m), c in a.minutes.items()}
    return {"keys": per_key, "minutes": minutes, "feedback": a.feedback, "drop": a.dropped_calls}


@given(records, st.integers(0, 60))
def test_batches_merged_equal_one_aggregate_of_all_records(
    items: list[tuple[dict[str, object], int]], cut: int
) -> None:
    whole = build(items)
    merged = LlmAggregate()
    merged.merge(build(items[:cut]))
    merged.merge(build(items[cut:]))
    assert as_dict(merged) == as_dict(whole)


def merged_one_set_at_a_time(total: LlmAggregate, other: LlmAggregate) -> None:
    """The plain reading of `merge` (minutes left out): each label set of `other` with calls,
    in order, through the cap, its numbers and histograms added slot by slot."""
    for j, key in enumerate(other.keys):
        if not other.calls[j]:
            continue
        i = total._slot(key, other.calls[j])
        for name in ("calls", "input_tokens", "output_tokens", "total_tokens", "duration_ms"):
            getattr(total, name)[i] += getattr(other, name)[j]
        for name, slots in (
            ("duration_buckets", DURATION_SLOTS),
            ("input_buckets", TOKEN_SLOTS),
            ("output_buckets", TOKEN_SLOTS),
        ):
            dst, src = getattr(total, name), getattr(other, name)
            for s in range(slots):
                dst[i * slots + s] += src[j * slots + s]
    for rating, n in other.feedback.items():
        total.feedback[rating] = total.feedback.get(rating, 0) + n
    total.dropped_calls += other.dropped_calls


@settings(max_examples=80)
@given(st.lists(records, min_size=1, max_size=5), st.integers(1, 8), st.booleans())
def test_merge_under_a_cap_equals_merging_one_label_set_at_a_time(
    batches: list[list[tuple[dict[str, object], int]]], cap: int, reset_between: bool
) -> None:
    """Batches with sets over the cap, sets kept across a reset with no calls: the column-wise
    merge folds the same sets into OTHER and gives the same numbers as the plain one."""
    fast = LlmAggregate(max_label_sets=cap, max_minute_cells=0)
    plain = LlmAggregate(max_label_sets=cap, max_minute_cells=0)
    reused = LlmAggregate()
    for items in batches:
        other = build(items) if not reset_between else reused
        if reset_between:
            reused.reset()
            for fields, t in items:
                reused.add(fields, t)
        fast.merge(other, minutes=False)
        merged_one_set_at_a_time(plain, other)
    assert fast.keys == plain.keys
    assert as_dict(fast) == as_dict(plain)


@given(records, st.integers(1, 20))
def test_one_aggregate_reset_after_each_hand_over_counts_like_fresh_ones(
    items: list[tuple[dict[str, object], int]], step: int
) -> None:
    reused, total = LlmAggregate(), LlmAggregate()
    for start in range(0, len(items), step):
        for fields, t in items[start : start + step]:
            reused.add(fields, t)
        total.merge(reused)
        reused.reset()
    assert as_dict(total) == as_dict(build(items))
    assert reused.total_calls == 0 and reused.minutes == {}


@given(records)
def test_every_call_lands_in_exactly_one_bucket_and_minute(
    items: list[tuple[dict[str, object], int]],
) -> None:
    a = build(items)
    assert a.total_calls == len(items)
    assert sum(a.duration_buckets) == len(items)
    assert sum(a.input_buckets) == sum(a.output_buckets) == len(items)
    assert sum(c for c, _ in a.minutes.values()) == len(items)


@settings(max_examples=50)
@given(records, st.integers(1, 5))
def test_the_label_set_cap_keeps_every_call_and_counts_the_folded_ones(
    items: list[tuple[dict[str, object], int]], cap: int
) -> None:
    a = build(items, cap)
    assert len(a.keys) <= cap
    assert a.total_calls == len(items)
    distinct = len({label_key(f) for f, _ in items})
    if distinct <= cap - 1:
        assert a.dropped_calls == 0
    else:
        assert a.index_of(OTHER) is not None
        assert a.dropped_calls == a.calls[a.index_of(OTHER) or 0]


def test_a_bucket_holds_values_up_to_and_including_its_bound() -> None:
    a = LlmAggregate()
    for ms in (10, 11, 81_920, 81_921):
        a.add({"event": "llm_call", "status_code": 200, "duration_ms": ms}, None)
    counts = a.duration_buckets[:DURATION_SLOTS]
    assert counts[0] == 1  # 0.01 s <= 0.01
    assert counts[1] == 1  # 0.011 s <= 0.02
    assert counts[len(DURATION_BOUNDS) - 1] == 1  # 81.92 s
    assert counts[len(DURATION_BOUNDS)] == 1  # beyond: +Inf
    assert a.minutes == {}  # no record time: no minute


def test_other_events_are_ignored_and_feedback_counted_by_rating() -> None:
    a = LlmAggregate()
    a.add({"event": "log", "message": "x"}, 1)
    a.add({"event": "prompt"}, 1)
    for rating in ("up", "DOWN", "down", "5", "-1", "excellent", None):
        a.add({"event": "feedback", "rating": rating}, 1)
    assert a.keys == []
    assert a.feedback == {"up": 1, "down": 2, "5": 1, "-1": 1, "other": 2}
    assert [r for r in a.feedback if negative_rating(r)] == ["down", "-1"]
    assert normalise_rating(" Up ") == "up"
    assert normalise_rating("1000") == "other"


def test_100000_distinct_workspaces_stay_within_the_cap_in_bounded_memory() -> None:
    a = LlmAggregate(max_label_sets=2000)
    for n in range(100_000):
        a.add(
            {"event": "llm_call", "model": "qwen-max", "workspace": f"ws-{n}",
             "status_code": 200, "duration_ms": 100, "input_tokens": 1, "output_tokens": 1},
            1_700_000_000 + n % 3600,
        )  # fmt: skip
    assert len(a.keys) == 2000
    assert a.total_calls == 100_000
    assert a.dropped_calls == 100_000 - 1999
    held = deep_size(a)
    assert held < 8 * 1024 * 1024, held  # ~2,000 label sets and 60 minutes' cells, not 100,000


@given(st.lists(st.floats(0, 100, allow_nan=False), min_size=1, max_size=200))
def test_quantiles_fall_in_the_bucket_that_holds_the_true_quantile(values: list[float]) -> None:
    a = LlmAggregate()
    for v in values:
        a.add({"event": "llm_call", "status_code": 200, "duration_ms": round(v * 1000)}, None)
    seconds = sorted(round(v * 1000) / 1000 for v in values)
    for q in (0.5, 0.95, 0.99):
        estimate = quantile(q, DURATION_BOUNDS, a.duration_buckets[:DURATION_SLOTS])
        assert estimate is not None
        true = seconds[max(1, math.ceil(q * len(seconds))) - 1]  # nearest rank
        bounds = (0.0, *DURATION_BOUNDS, float("inf"))
        slot = next(s for s in range(1, len(bounds)) if true <= bounds[s])
        assert bounds[slot - 1] <= estimate <= min(bounds[slot], DURATION_BOUNDS[-1])


def test_max_label_sets_is_a_config_key_with_a_sane_range() -> None:
    assert parse_config({"metrics": {"max_label_sets": 500}}).metrics.max_label_sets == 500
    assert parse_config({}).metrics.max_label_sets == 2000
    with pytest.raises(ConfigError, match=r"metrics\.max_label_sets"):
        parse_config({"metrics": {"max_label_sets": 0}})
