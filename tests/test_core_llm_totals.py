"""The core engine's LLM aggregates stay in Rust (`llmtail._core.LlmAggregate`) and are merged
there into `/metrics`', report's and validate's totals: the numbers must be exactly those of the
Python `LlmAggregate.merge` (the label-set cap and OTHER, dropped calls and minutes, minute
cells, feedback, histograms), and both engines must give identical `/metrics` text, report and
validate results.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from bench.gen_logs import generate
from llmtail import _core
from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.llm_aggregate import Aggregate, LlmAggregate
from llmtail.agent.engine.stream import SealedBatch, StreamSettings
from llmtail.agent.modes.report import LlmReport
from llmtail.agent.modes.validate import validate_files
from llmtail.agent.ops.metrics import AgentMetrics
from llmtail.parsers.record import ParserSettings
from tests.parsers_strategies import ZONE

_HEAD = "2026-11-26 10:{minute:02d}:11.305 INFO  [traceId:] [a#b():1] [main] - "


def numbers(a: LlmAggregate) -> dict[str, Any]:
    """An aggregate's public numbers (not its lookup caches)."""
    return {f.name: getattr(a, f.name) for f in dataclasses.fields(a) if not f.name.startswith("_")}


@st.composite
def logs(draw: st.DrawFn) -> bytes:
    """llm_call and feedback records over a few label sets and minutes (and odd numbers)."""
    lines = []
    for _ in range(draw(st.integers(1, 60))):
        minute = draw(st.integers(0, 9))
        # Long apps put a set past the core's 56-byte pack (or just within it): such sets are
        # found by their texts, the others by their packs; non-ASCII ones too.
        app = draw(st.sampled_from(("a", "b", "c", "d", "other", "应用", "x" * 46, "y" * 60)))
        model = draw(st.sampled_from(("q", "r", "other")))
        status = draw(st.sampled_from(("200", "500", "")))
        nums = [draw(st.sampled_from(("", "7", "-5", "x", "90000", str(2**70)))) for _ in "abcd"]
        if draw(st.integers(0, 5)) == 0:
            rating = draw(st.sampled_from(("up", "down", "-3", "11")))
            lines.append(_HEAD.format(minute=minute) + f"feedback:r1,{rating}")
        else:
            payload = f"{app},m,{model},w,r,{status},{','.join(nums)},e,x"
            lines.append(_HEAD.format(minute=minute) + payload)
    return ("\n".join(lines) + "\n").encode()


def batch_aggregates(raw: bytes, kind: str, max_records: int, cap: int) -> list[Aggregate]:
    s = StreamSettings(
        parser=ParserSettings(timezone=ZONE), max_records=max_records, max_label_sets=cap
    )
    stream = Engine([s], kind=kind).open("k", "/p", 0)  # type: ignore[arg-type]
    batches = stream.feed(raw, 0.0, 1.0) + stream.drain(1.0)
    return [b.llm for b in batches if b.llm is not None]


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=logs(),
    max_records=st.integers(1, 12),
    batch_cap=st.sampled_from((1, 2, 4, 2000)),
    cap=st.sampled_from((1, 2, 3, 5, 2000)),
    cells=st.sampled_from((0, 1, 3, 1_000_000)),
    minutes=st.booleans(),
    window=st.tuples(st.integers(-1, 10), st.integers(-1, 10)),
)
def test_core_totals_merge_exactly_as_python_totals(
    raw: bytes,
    max_records: int,
    batch_cap: int,
    cap: int,
    cells: int,
    minutes: bool,
    window: tuple[int, int],
) -> None:
    core = batch_aggregates(raw, "core", max_records, batch_cap)
    ref = batch_aggregates(raw, "python", max_records, batch_cap)
    assert all(isinstance(a, _core.LlmAggregate) for a in core)
    assert all(isinstance(a, LlmAggregate) for a in ref)
    base = int(datetime.fromisoformat("2026-11-26T10:00:00+08:00").timestamp()) // 60
    lo, hi = base + window[0], base + window[1]
    totals: list[tuple[Aggregate, Aggregate]] = [
        (_core.LlmAggregate(cap, cells), LlmAggregate(cap, cells)),  # merge
        (_core.LlmAggregate(cap, 0), LlmAggregate(cap, 0)),  # merge_window, as /metrics does
    ]
    for c, r in zip(core, ref, strict=True):
        assert numbers(c.snapshot()) == numbers(r.snapshot())  # a batch's own numbers
        totals[0][0].merge(c, minutes)
        totals[0][1].merge(r, minutes)
        got = summed(totals[1][0].merge_window(c, lo, hi))
        assert got == summed(totals[1][1].merge_window(r, lo, hi))
    for c_total, r_total in totals:
        assert numbers(c_total.snapshot()) == numbers(r_total.snapshot())
    # A total of totals (one merge of everything) counts the same as well.
    again_c, again_r = _core.LlmAggregate(cap, cells), LlmAggregate(cap, cells)
    again_c.merge(totals[0][0], minutes)
    again_r.merge(totals[0][1].snapshot(), minutes)
    assert numbers(again_c.snapshot()) == numbers(again_r.snapshot())
    # A batch's aggregate (its buckets kept call by call) merged into counts the same too.
    if len(core) > 1:
        core[0].merge(core[-1], minutes)
        ref[0].merge(ref[-1], minutes)
        assert numbers(core[0].snapshot()) == numbers(ref[0].snapshot())


def summed(cells: list[tuple[str, str, int, int, int]]) -> Counter[tuple[object, ...]]:
    """Window cells added up by (model, workspace, minute): calls and tokens."""
    out: Counter[tuple[object, ...]] = Counter()
    for model, workspace, minute, calls, tokens in cells:
        out[(model, workspace, minute, "calls")] += calls
        out[(model, workspace, minute, "tokens")] += tokens
    return out


def test_a_core_aggregate_refuses_the_caps_python_refuses() -> None:
    for kind in (_core.LlmAggregate, LlmAggregate):
        with pytest.raises(ValueError, match="max_label_sets must be at least 1"):
            kind(max_label_sets=0)
    empty = _core.LlmAggregate(max_label_sets=7, max_minute_cells=0).snapshot()
    assert numbers(empty) == numbers(LlmAggregate(max_label_sets=7, max_minute_cells=0))


# -- both engines through /metrics, report and validate, over the bench generator -----------


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Three bench-like files a few minutes apart (QPM/TPM cells inside and outside the
    window of /metrics)."""
    out = tmp_path_factory.mktemp("gen")
    paths = []
    for n, start in enumerate(("08:00", "08:04", "08:09")):
        path = out / f"app-{n}.log"
        generate(path, 120_000, seed=n, start=datetime.fromisoformat(f"2025-07-09T{start}:00"))
        paths.append(str(path))
    return paths


def engine_of(kind: str, cap: int) -> Engine:
    s = StreamSettings(parser=ParserSettings(timezone=ZONE), max_records=150, max_label_sets=cap)
    return Engine([s], kind=kind)  # type: ignore[arg-type]


def sealed(paths: list[str], engine: Engine) -> list[SealedBatch]:
    out: list[SealedBatch] = []
    for path in paths:
        stream = engine.open(path, path, 0)
        out += stream.feed(Path(path).read_bytes(), 0.0, 1.0) + stream.drain(1.0)
    return out


def scrape(kind: str, paths: list[str]) -> str:
    """The LLM families of /metrics after counting every batch, as the daemon does."""
    live = datetime.fromisoformat("2025-07-09T08:05:30+08:00").timestamp()
    registry = CollectorRegistry()
    metrics = AgentMetrics.register(registry, max_label_sets=40, clock=lambda: live)
    for batch in sealed(paths, engine_of(kind, 25)):
        if batch.llm is not None:
            metrics.count_sealed(batch.llm)
    text = generate_latest(registry).decode()
    wanted = ("gen_ai_", "llmtail_llm_", "llmtail_feedback")
    return "\n".join(
        line
        for line in text.splitlines()
        if line.removeprefix("# HELP ").removeprefix("# TYPE ").startswith(wanted)
    )


def test_metrics_are_identical_on_both_engines_past_the_cap(generated: list[str]) -> None:
    core, ref = scrape("core", generated), scrape("python", generated)
    assert core == ref
    assert 'app="other"' in core  # the cap was hit: some sets counted under OTHER
    assert "llmtail_llm_calls_per_minute{" in core
    calls = [ln for ln in core.splitlines() if ln.startswith("llmtail_llm_calls_per_minute{")]
    assert any(not ln.endswith(" 0.0") for ln in calls)  # the window saw calls


def test_report_and_validate_are_identical_on_both_engines(generated: list[str]) -> None:
    reports = {}
    for kind in ("core", "python"):
        report = LlmReport(by=("model", "workspace"), timezone=ZONE)
        report.read(generated, engine_of(kind, 25), lambda _path: 0)
        checked = validate_files(generated, engine_of(kind, 25)).to_dict()
        reports[kind] = (report.to_dict(), report.render(), checked)
    assert reports["core"] == reports["python"]
    got, _, checked = reports["core"]
    assert got["label_sets_over_limit_calls"] > 0  # the batches' cap folded sets into OTHER
    assert got["calls"] > 1000 and got["qpm"]["peak"] and got["feedback"] is not None
    assert checked["top"]["models"]
