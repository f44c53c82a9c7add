"""LLM water levels on `/metrics`: a prometheus_client collector fed with batches' aggregates.

`count(aggregate)` is called once per sealed batch (never per delivery attempt, so a retried
batch is not counted twice). The collector keeps one cumulative aggregate under the cardinality
guard (`metrics.max_label_sets`), of the batches' own kind (with the core engine a Rust one, so
a batch is merged without a Python object per label set), and renders the families at scrape
time from a snapshot:

- `gen_ai_client_operation_duration_seconds` and `gen_ai_client_token_usage` (OpenTelemetry GenAI
  names and buckets), `llmtail_llm_calls_total`, `llmtail_llm_tokens_total`,
  `llmtail_feedback_total`, `llmtail_llm_label_sets_dropped_total`: cumulative, counted when
  read. `rate()` over them is the rate at which records were *read*: a backlog read in seconds
  raises it for those seconds (a restart resets them, as Prometheus expects of counters).
- `llmtail_llm_calls_per_minute` and `llmtail_llm_tokens_per_minute` by model and workspace:
  the calls and tokens whose *own* record time falls in the last complete minute of the wall
  clock. This is what QPM/TPM alerts use: records of a backlog carry their old times, land in
  old minutes and leave these gauges alone, however fast they are read.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from llmtail.agent.engine.llm_aggregate import (
    DEFAULT_MAX_LABEL_SETS,
    DURATION_BOUNDS,
    DURATION_SLOTS,
    LABEL_NAMES,
    TOKEN_BOUNDS,
    TOKEN_SLOTS,
    Aggregate,
    LabelKey,
    LlmAggregate,
    empty_like,
    failed,
)

OPERATION = "chat"  # gen_ai.operation.name: the payload logs chat completions
_GEN_AI_LABELS = ("gen_ai_operation_name", "gen_ai_request_model", "app", "module", "workspace")
_WINDOW_BEHIND = 3  # record-time minutes kept behind the current one (the gauge shows one)
_WINDOW_AHEAD = 2  # and ahead of it, for writers whose clock runs a little fast


def error_type(key: LabelKey) -> str:
    """OTel `error.type` of a label set: the error code, else the status, else `_OTHER`;
    empty for a success (an empty label is an absent one in Prometheus)."""
    if not failed(key):
        return ""
    return key[5] or key[4] or "_OTHER"


class LlmMetrics(Collector):
    """The process's LLM families; thread-safe (`count` from the engine, `collect` on scrape)."""

    def __init__(
        self, max_label_sets: int = DEFAULT_MAX_LABEL_SETS, clock: Callable[[], float] = time.time
    ) -> None:
        self._lock = threading.Lock()
        self._clock = clock
        self._max_label_sets = max_label_sets
        # Made by the first batch, of its kind (Python or core); the per-minute cells are kept
        # in `_recent` only, a few minutes wide.
        self._total: Aggregate | None = None
        # (model, workspace) -> record-time minute -> [calls, tokens], a few minutes wide.
        self._recent: dict[tuple[str, str], dict[int, list[int]]] = {}

    def count(self, aggregate: Aggregate) -> None:
        """Add a sealed batch's aggregate; call once per batch, when it is sealed."""
        now_minute = int(self._clock() // 60)
        with self._lock:
            if self._total is None:
                self._total = empty_like(aggregate, self._max_label_sets, 0)
            window = self._total.merge_window(
                aggregate, now_minute - _WINDOW_BEHIND, now_minute + _WINDOW_AHEAD
            )
            for model, workspace, minute, calls, tokens in window:
                cell = self._recent.setdefault((model, workspace), {}).setdefault(minute, [0, 0])
                cell[0] += calls
                cell[1] += tokens
            self._prune(now_minute)

    def collect(self) -> Iterator[Metric]:
        now_minute = int(self._clock() // 60)
        with self._lock:
            self._prune(now_minute)
            snapshot = (
                LlmAggregate(self._max_label_sets, 0)
                if self._total is None
                else self._total.snapshot()
            )
            recent = {k: {m: tuple(c) for m, c in v.items()} for k, v in self._recent.items()}
        yield from _families(snapshot)
        yield from _per_minute(recent, now_minute - 1)

    def _prune(self, now_minute: int) -> None:
        oldest = now_minute - _WINDOW_BEHIND
        for series in list(self._recent):
            cells = self._recent[series]
            for minute in [m for m in cells if m < oldest]:
                del cells[minute]
            if not cells:
                del self._recent[series]


def _families(a: LlmAggregate) -> Iterator[Metric]:
    calls = CounterMetricFamily(
        "llmtail_llm_calls", "llm_call records read, by label set.", labels=LABEL_NAMES
    )
    tokens = CounterMetricFamily(
        "llmtail_llm_tokens",
        "Tokens of llm_call records read, by label set and token type (input, output, total).",
        labels=(*LABEL_NAMES, "token_type"),
    )
    # Several label sets (status codes) share one GenAI series: sum them per series.
    durations: dict[tuple[str, ...], tuple[list[int], float]] = {}
    usage: dict[tuple[str, ...], tuple[list[int], float]] = {}
    for i, key in enumerate(a.keys):
        calls.add_metric(key, a.calls[i])
        tokens.add_metric((*key, "input"), a.input_tokens[i])
        tokens.add_metric((*key, "output"), a.output_tokens[i])
        tokens.add_metric((*key, "total"), a.total_tokens[i])
        app, module, model, workspace = key[:4]
        base = (OPERATION, model, app, module, workspace)
        _accumulate(durations, (*base, error_type(key)), a.duration_buckets, i, DURATION_SLOTS,
                    a.duration_ms[i])  # fmt: skip
        _accumulate(usage, (*base, "input"), a.input_buckets, i, TOKEN_SLOTS, a.input_tokens[i])
        _accumulate(usage, (*base, "output"), a.output_buckets, i, TOKEN_SLOTS, a.output_tokens[i])
    duration = HistogramMetricFamily(
        "gen_ai_client_operation_duration_seconds",
        "GenAI operation duration (duration_ms of llm_call records), seconds.",
        labels=(*_GEN_AI_LABELS, "error_type"),
    )
    for labels, (counts, total_ms) in durations.items():
        duration.add_metric(labels, _cumulative(DURATION_BOUNDS, counts), total_ms / 1000)
    token_usage = HistogramMetricFamily(
        "gen_ai_client_token_usage",
        "GenAI tokens used per operation, by gen_ai_token_type (input, output).",
        labels=(*_GEN_AI_LABELS, "gen_ai_token_type"),
    )
    for labels, (counts, total) in usage.items():
        token_usage.add_metric(labels, _cumulative(TOKEN_BOUNDS, counts), total)
    yield duration
    yield token_usage
    yield calls
    yield tokens
    feedback = CounterMetricFamily(
        "llmtail_feedback", "feedback records read, by rating.", labels=("rating",)
    )
    for rating, n in sorted(a.feedback.items()):
        feedback.add_metric((rating,), n)
    yield feedback
    yield CounterMetricFamily(
        "llmtail_llm_label_sets_dropped",
        "llm_call records whose label set was new beyond metrics.max_label_sets, "
        'counted under the label set "other".',
        value=a.dropped_calls,
    )
    yield GaugeMetricFamily(
        "llmtail_llm_label_sets", "Label sets of llm_call metrics held.", value=len(a.keys)
    )


def _per_minute(
    recent: dict[tuple[str, str], dict[int, tuple[int, ...]]], minute: int
) -> Iterator[Metric]:
    labels = ("model", "workspace")
    qpm = GaugeMetricFamily(
        "llmtail_llm_calls_per_minute",
        "llm_call records whose own time is in the last complete minute (QPM).",
        labels=labels,
    )
    tpm = GaugeMetricFamily(
        "llmtail_llm_tokens_per_minute",
        "Total tokens of llm_call records whose own time is in the last complete minute (TPM).",
        labels=labels,
    )
    for series, cells in sorted(recent.items()):
        calls, tokens = cells.get(minute, (0, 0))
        qpm.add_metric(series, calls)
        tpm.add_metric(series, tokens)
    yield qpm
    yield tpm


def _accumulate(
    into: dict[tuple[str, ...], tuple[list[int], float]],
    labels: tuple[str, ...],
    buckets: list[int],
    i: int,
    slots: int,
    total: float,
) -> None:
    counts, running = into.get(labels, ([0] * slots, 0.0))
    base = i * slots
    for s in range(slots):
        counts[s] += buckets[base + s]
    into[labels] = (counts, running + total)


def _cumulative(bounds: tuple[float, ...], counts: list[int]) -> list[tuple[str, float]]:
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip((*bounds, float("inf")), counts, strict=True):
        running += count
        out.append((_le(bound), running))
    return out


def _le(bound: float) -> str:
    """A bucket bound as prometheus_client writes it (`+Inf`, `0.01`, `1.048576e+06`)."""
    return str(floatToGoString(bound))  # type: ignore[no-untyped-call]  # untyped in the library
