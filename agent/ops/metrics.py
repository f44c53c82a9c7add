"""Self-metrics and LLM water levels on prometheus_client, registered on the agent's registry.

A registry (`Registry`, prometheus_client's `CollectorRegistry`) is built by the composition
root and passed to whoever counts; there is no global one, so tests and several pipelines in one
process never share numbers. Callers count per chunk or per batch, never per record.

Names follow Prometheus conventions (base units as suffixes, `_total` on counters). Families:
- process (`process_*`, prometheus_client's collector) and `llmtail_build_info`;
- reading: `llmtail_lines_read_total`, `llmtail_bytes_read_total`, `llmtail_records_total{event}`,
  `llmtail_parse_errors_total`, `llmtail_rotations_total`, `llmtail_truncations_total`,
  `llmtail_files_watched`, `llmtail_input_bytes_behind{input}` (one series per configured input,
  never per rotated path);
- output: `llmtail_output_records_total{output,outcome}`, `llmtail_output_bytes_total{output,
  outcome}`, `llmtail_output_state{output,llmtail_output_state}` (delivering, retrying, held),
  `llmtail_batches_total{outcome}`, `llmtail_batch_retries_total`,
  `llmtail_output_latency_seconds`, `llmtail_buffer_bytes`, `llmtail_buffer_capacity_bytes`;
- LLM calls: see `agent.ops.llm_metrics` (fed by `count_sealed`).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from prometheus_client import (
    Counter,
    Enum,
    Gauge,
    Histogram,
    Info,
    ProcessCollector,
    disable_created_metrics,
)
from prometheus_client.registry import CollectorRegistry

from llmtail.agent import __version__
from llmtail.agent.engine.llm_aggregate import DEFAULT_MAX_LABEL_SETS, Aggregate
from llmtail.agent.ops.llm_metrics import LlmMetrics
from llmtail.agent.ops.metrics_server import MetricsError, MetricsServer, parse_listen

__all__ = [
    "OUTCOMES",
    "OUTPUT_STATES",
    "AgentMetrics",
    "MetricsError",
    "MetricsServer",
    "Registry",
    "parse_listen",
]

Registry = CollectorRegistry
OUTCOMES = ("delivered", "rejected", "aborted")
OUTPUT_STATES = ("delivering", "retrying", "held")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True)
class AgentMetrics:
    """The agent's named metrics, registered once on a registry the composition root owns."""

    output: str  # the output's type, the `output` label
    inputs: tuple[str, ...]  # the `input` label of each configured input, by index
    llm: LlmMetrics
    lines_read: Counter
    bytes_read: Counter
    records: Counter  # labels: event
    parse_errors: Counter
    masked: Counter  # labels: rule (parsers/mask.py); present at 0 per rule (count_rules)
    input_bytes_behind: Gauge  # labels: input
    files_watched: Gauge
    buffer_bytes: Gauge
    buffer_capacity_bytes: Gauge
    batches: Counter  # labels: outcome (delivered, rejected, aborted)
    batch_retries: Counter
    output_records: Counter  # labels: output, outcome
    output_bytes: Counter  # labels: output, outcome
    output_state: Enum  # labels: output
    output_latency: Histogram
    rotations: Counter
    truncations: Counter
    start_time: Gauge

    @classmethod
    def register(
        cls,
        registry: CollectorRegistry,
        *,
        output: str = "file",
        inputs: Sequence[str] = (),
        max_label_sets: int = DEFAULT_MAX_LABEL_SETS,
        clock: Callable[[], float] = time.time,
    ) -> AgentMetrics:
        """`inputs`: a name per configured input (its first glob), used as the `input` label."""
        r = registry
        # `*_created` series double the page and nobody charts them.
        disable_created_metrics()  # type: ignore[no-untyped-call]  # untyped in the library
        ProcessCollector(registry=r)
        Info("llmtail_build", "The running llmtail.", registry=r).info(
            {"version": __version__, "python": platform.python_version()}
        )
        llm = LlmMetrics(max_label_sets, clock)
        r.register(llm)
        m = cls(
            output=output,
            inputs=tuple(inputs),
            llm=llm,
            lines_read=Counter("llmtail_lines_read", "Lines read from input files.", registry=r),
            bytes_read=Counter("llmtail_bytes_read", "Bytes read from input files.", registry=r),
            records=Counter(
                "llmtail_records", "Records parsed, by event kind.", ("event",), registry=r
            ),
            parse_errors=Counter(
                "llmtail_parse_errors", "Records that did not parse (sent raw).", registry=r
            ),
            masked=Counter(
                "llmtail_masked",
                "Values masked before records left the host, by rule.",
                ("rule",),
                registry=r,
            ),
            input_bytes_behind=Gauge(
                "llmtail_input_bytes_behind",
                "Bytes of an input's open files not yet committed (size minus committed offset).",
                ("input",),
                registry=r,
            ),
            files_watched=Gauge(
                "llmtail_files_watched", "Files currently open for reading.", registry=r
            ),
            buffer_bytes=Gauge(
                "llmtail_buffer_bytes",
                "Bytes held against max_in_flight_bytes: batches in flight to the output and "
                "the buffers kept for the next batches.",
                registry=r,
            ),
            buffer_capacity_bytes=Gauge(
                "llmtail_buffer_capacity_bytes",
                "Bound on bytes in flight (max_in_flight_bytes).",
                registry=r,
            ),
            batches=Counter(
                "llmtail_batches",
                "Batches finished by the output, by outcome.",
                ("outcome",),
                registry=r,
            ),
            batch_retries=Counter(
                "llmtail_batch_retries", "Retried attempts to deliver a batch.", registry=r
            ),
            output_records=Counter(
                "llmtail_output_records",
                "Records the output finished, by outcome (delivered, rejected, aborted).",
                ("output", "outcome"),
                registry=r,
            ),
            output_bytes=Counter(
                "llmtail_output_bytes",
                "File bytes of the records the output finished, by outcome.",
                ("output", "outcome"),
                registry=r,
            ),
            output_state=Enum(
                "llmtail_output_state",
                "What the output is doing: delivering, retrying (transient errors) or held "
                "(refused for good until fixed: bad key, missing logstore).",
                ("output",),
                states=list(OUTPUT_STATES),
                registry=r,
            ),
            output_latency=Histogram(
                "llmtail_output_latency_seconds",
                "Time from handing a batch to the output until its outcome.",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            rotations=Counter("llmtail_rotations", "Input file rotations followed.", registry=r),
            truncations=Counter(
                "llmtail_truncations",
                "Input files found truncated (read again from 0).",
                registry=r,
            ),
            start_time=Gauge(
                "llmtail_start_time_seconds",
                "Start time of the agent, seconds since the epoch.",
                registry=r,
            ),
        )
        m.start_time.set(time.time())
        for outcome in OUTCOMES:  # present at 0 from the start, so rate() works
            m.batches.labels(outcome)
            m.output_records.labels(output, outcome)
            m.output_bytes.labels(output, outcome)
        m.output_state.labels(output).state("delivering")
        for name in m.inputs:
            m.input_bytes_behind.labels(name).set(0)
        return m

    def count_rules(self, rules: tuple[str, ...]) -> None:
        """Make `llmtail_masked_total` present at 0 for each rule, so rate() works at once."""
        for rule in rules:
            self.masked.labels(rule)

    def count_sealed(self, aggregate: Aggregate) -> None:
        """A batch was sealed: count its LLM calls. Once per batch, never again on a retry."""
        self.llm.count(aggregate)

    def batch_finished(self, outcome: str, records: int, nbytes: int, seconds: float) -> None:
        """The output finished a batch (`outcome` one of OUTCOMES) after `seconds`."""
        self.batches.labels(outcome).inc()
        self.output_records.labels(self.output, outcome).inc(records)
        self.output_bytes.labels(self.output, outcome).inc(nbytes)
        self.output_latency.observe(seconds)

    def set_output_state(self, state: str) -> None:
        """One of OUTPUT_STATES."""
        self.output_state.labels(self.output).state(state)

    def set_bytes_behind(self, by_input: Mapping[int, int]) -> None:
        """Bytes behind per input index (summed over its files); inputs absent are at 0."""
        for index, name in enumerate(self.inputs):
            self.input_bytes_behind.labels(name).set(by_input.get(index, 0))
        for index, behind in by_input.items():
            if index >= len(self.inputs):
                self.input_bytes_behind.labels(str(index)).set(behind)
