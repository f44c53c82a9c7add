"""Self-metrics: counters, gauges and histograms with labels, served as Prometheus text.

A `Registry` is built by the composition root and passed to whoever counts; there is no global
one, so tests and several pipelines in one process never share numbers. Increments take one
small lock; callers count per chunk or per batch, not per record, to keep the hot path cheap.
The exposition format is Prometheus text 0.0.4; `/status` serves JSON for `llmtail status`.
"""

from __future__ import annotations

import errno
import logging
import math
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Generic, TypeVar

import orjson

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_LABEL = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
DEFAULT_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

Labels = tuple[str, ...]
_V = TypeVar("_V")
_M = TypeVar("_M", bound="_Metric[Any]")


class MetricsError(Exception):
    """The metrics endpoint cannot start; the message is one line meant for the user."""


class _Value:
    """One time series of a counter or gauge."""

    __slots__ = ("_lock", "_value")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: float = 0

    def get(self) -> float:
        return self._value


class CounterValue(_Value):
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        if amount < 0:
            raise ValueError("a counter only goes up")
        with self._lock:
            self._value += amount


class GaugeValue(_Value):
    __slots__ = ()

    def set(self, value: float) -> None:
        self._value = value  # a single store: atomic under the GIL

    def inc(self, amount: float = 1) -> None:
        with self._lock:
            self._value += amount

    def dec(self, amount: float = 1) -> None:
        self.inc(-amount)


class HistogramValue:
    """Cumulative buckets, sum and count of one labelled series."""

    __slots__ = ("_bounds", "_count", "_counts", "_lock", "_sum")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self._bounds = bounds
        self._counts = [0] * len(bounds)
        self._sum = 0.0
        self._count = 0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        with self._lock:
            self._sum += value
            self._count += 1
            for i, bound in enumerate(self._bounds):
                if value <= bound:
                    self._counts[i] += 1
                    break

    def snapshot(self) -> tuple[list[int], float, int]:
        """Cumulative bucket counts, sum, count."""
        with self._lock:
            counts, total, count = list(self._counts), self._sum, self._count
        running = 0
        for i, c in enumerate(counts):
            running += c
            counts[i] = running
        return counts, total, count


class _Metric(Generic[_V]):
    kind: ClassVar[str]

    def __init__(self, name: str, help: str, labelnames: Labels) -> None:
        if not _NAME.match(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labelnames:
            if not _LABEL.match(label) or label.startswith("__") or label == "le":
                raise ValueError(f"invalid label name {label!r} for {name}")
        self.name = name
        self.help = help
        self.labelnames = labelnames
        self._children: dict[Labels, _V] = {}
        self._lock = threading.Lock()
        if not labelnames:
            self._children[()] = self._new()  # exposed at 0 from the start, so rate() works

    def labels(self, *values: str) -> _V:
        """The series for these label values, in `labelnames` order; created on first use."""
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.labelnames):
                raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
            with self._lock:
                child = self._children.setdefault(values, self._new())
        return child

    def remove(self, *values: str) -> None:
        """Drop a series (a file that was let go), so label cardinality stays bounded."""
        with self._lock:
            self._children.pop(values, None)

    def series(self) -> list[tuple[Labels, _V]]:
        with self._lock:
            return list(self._children.items())

    def _new(self) -> _V:
        raise NotImplementedError


class Counter(_Metric[CounterValue]):
    kind = "counter"

    def inc(self, amount: float = 1) -> None:
        """Increment the unlabelled series."""
        self.labels().inc(amount)

    def _new(self) -> CounterValue:
        return CounterValue()


class Gauge(_Metric[GaugeValue]):
    kind = "gauge"

    def set(self, value: float) -> None:
        """Set the unlabelled series."""
        self.labels().set(value)

    def _new(self) -> GaugeValue:
        return GaugeValue()


class Histogram(_Metric[HistogramValue]):
    kind = "histogram"

    def __init__(
        self,
        name: str,
        help: str,
        labelnames: Labels,
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> None:
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError(f"{name}: buckets must be increasing")
        self.buckets = tuple(b for b in buckets if not math.isinf(b))
        super().__init__(name, help, labelnames)

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def _new(self) -> HistogramValue:
        return HistogramValue(self.buckets)


class Registry:
    """The metrics of one agent; `render` produces the Prometheus text exposition (0.0.4)."""

    def __init__(self) -> None:
        self._metrics: dict[str, _Metric[Any]] = {}
        self._collectors: list[Callable[[], None]] = []
        self._lock = threading.Lock()

    def counter(self, name: str, help: str, labels: Labels = ()) -> Counter:
        return self._add(Counter(name, help, labels))

    def gauge(self, name: str, help: str, labels: Labels = ()) -> Gauge:
        return self._add(Gauge(name, help, labels))

    def histogram(
        self,
        name: str,
        help: str,
        labels: Labels = (),
        buckets: tuple[float, ...] = DEFAULT_BUCKETS,
    ) -> Histogram:
        return self._add(Histogram(name, help, labels, buckets))

    def on_collect(self, refresh: Callable[[], None]) -> None:
        """Run `refresh` before each render: for gauges cheaper to read at scrape time."""
        with self._lock:
            self._collectors.append(refresh)

    def render(self) -> str:
        with self._lock:
            collectors, metrics = list(self._collectors), list(self._metrics.values())
        for refresh in collectors:
            refresh()
        return "".join(_exposition(metrics))

    def _add(self, metric: _M) -> _M:
        with self._lock:
            if metric.name in self._metrics:
                raise ValueError(f"metric {metric.name} is already registered")
            self._metrics[metric.name] = metric
        return metric


def _exposition(metrics: list[_Metric[Any]]) -> Iterator[str]:
    for metric in metrics:
        help_text = metric.help.replace("\\", "\\\\").replace("\n", "\\n")
        yield f"# HELP {metric.name} {help_text}\n# TYPE {metric.name} {metric.kind}\n"
        for values, child in sorted(metric.series(), key=lambda s: s[0]):
            pairs = list(zip(metric.labelnames, values, strict=True))
            if isinstance(metric, Histogram) and isinstance(child, HistogramValue):
                counts, total, count = child.snapshot()
                bounds = [*(_number(b) for b in metric.buckets), "+Inf"]
                for bound, cumulative in zip(bounds, [*counts, count], strict=True):
                    labels = _labels([*pairs, ("le", bound)])
                    yield f"{metric.name}_bucket{labels} {cumulative}\n"
                yield f"{metric.name}_sum{_labels(pairs)} {_number(total)}\n"
                yield f"{metric.name}_count{_labels(pairs)} {count}\n"
            else:
                yield f"{metric.name}{_labels(pairs)} {_number(child.get())}\n"


def _labels(pairs: list[tuple[str, str]]) -> str:
    if not pairs:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in pairs) + "}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


@dataclass(frozen=True, slots=True)
class AgentMetrics:
    """The agent's named metrics, registered once on a registry the composition root owns."""

    lines_read: Counter
    bytes_read: Counter
    records: Counter  # labels: event
    parse_errors: Counter
    masked: Counter  # labels: rule (parsers/mask.py); series made at 0 by count_rules
    file_bytes_behind: Gauge  # labels: path
    files_watched: Gauge
    buffer_bytes: Gauge
    buffer_capacity_bytes: Gauge
    batches: Counter  # labels: outcome (delivered, rejected, aborted)
    batch_retries: Counter
    output_latency: Histogram
    rotations: Counter
    truncations: Counter
    start_time: Gauge

    @classmethod
    def register(cls, registry: Registry) -> AgentMetrics:
        r = registry
        metrics = cls(
            lines_read=r.counter("llmtail_lines_read_total", "Lines read from input files."),
            bytes_read=r.counter("llmtail_bytes_read_total", "Bytes read from input files."),
            records=r.counter(
                "llmtail_records_total", "Records parsed, by event kind.", ("event",)
            ),
            parse_errors=r.counter(
                "llmtail_parse_errors_total", "Records that did not parse (sent raw)."
            ),
            masked=r.counter(
                "llmtail_masked_total",
                "Values masked before records left the host, by rule.",
                ("rule",),
            ),
            file_bytes_behind=r.gauge(
                "llmtail_file_bytes_behind",
                "Bytes of a file not yet committed (size minus committed offset).",
                ("path",),
            ),
            files_watched=r.gauge("llmtail_files_watched", "Files currently open for reading."),
            buffer_bytes=r.gauge("llmtail_buffer_bytes", "Bytes in flight to the output."),
            buffer_capacity_bytes=r.gauge(
                "llmtail_buffer_capacity_bytes", "Bound on bytes in flight (max_in_flight_bytes)."
            ),
            batches=r.counter(
                "llmtail_batches_total", "Batches finished by the output, by outcome.", ("outcome",)
            ),
            batch_retries=r.counter(
                "llmtail_batch_retries_total", "Retried attempts to deliver a batch."
            ),
            output_latency=r.histogram(
                "llmtail_output_latency_seconds",
                "Time from handing a batch to the output until its outcome.",
            ),
            rotations=r.counter("llmtail_rotations_total", "Input file rotations followed."),
            truncations=r.counter(
                "llmtail_truncations_total", "Input files found truncated (read again from 0)."
            ),
            start_time=r.gauge(
                "llmtail_start_time_seconds", "Start time of the agent, seconds since the epoch."
            ),
        )
        metrics.start_time.set(time.time())
        for outcome in ("delivered", "rejected", "aborted"):
            metrics.batches.labels(outcome)  # present at 0, so rate() works from the start
        return metrics

    def count_rules(self, rules: tuple[str, ...]) -> None:
        """Make `llmtail_masked_total` present at 0 for each rule, so rate() works at once."""
        for rule in rules:
            self.masked.labels(rule)


StatusFn = Callable[[], Mapping[str, Any]]


class MetricsServer:
    """Serves `/metrics` (Prometheus text) and `/status` (JSON) from a daemon thread."""

    def __init__(self, registry: Registry, listen: str, status: StatusFn | None = None) -> None:
        self._registry = registry
        self._listen = listen
        self._status = status
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when `listen` asked for port 0)."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def start(self) -> None:
        """Bind and serve; raises MetricsError with one line (address in use, bad address)."""
        host, port = parse_listen(self._listen)
        handler = _handler(self._registry, self._status)
        server_class = _Server6 if ":" in host else _Server4
        try:
            server = server_class((host, port), handler)
        except OSError as exc:
            reason = exc.strerror or str(exc)
            hint = " (another llmtail running? choose another metrics.listen port, or null)"
            raise MetricsError(
                f"metrics.listen {self._listen}: cannot listen: {reason}"
                + (hint if exc.errno == errno.EADDRINUSE else "")
            ) from None
        self._server = server
        # Polling 10 times a second costs nothing measurable and lets shutdown return quickly.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="llmtail-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); MetricsError names what is wrong."""
    host, sep, port_text = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise MetricsError(
            f"metrics.listen {listen!r}: expected host:port, e.g. 127.0.0.1:9631 (port 0: any)"
        )
    return host, int(port_text)


class _Server4(ThreadingHTTPServer):
    daemon_threads = True


class _Server6(_Server4):
    address_family = socket.AF_INET6


def _handler(registry: Registry, status: StatusFn | None) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "llmtail"

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            try:
                if path == "/metrics":
                    body = registry.render().encode()
                    self._reply(200, "text/plain; version=0.0.4; charset=utf-8", body)
                elif path == "/status" and status is not None:
                    self._reply(200, "application/json", orjson.dumps(dict(status())))
                else:
                    self._reply(404, "text/plain; charset=utf-8", b"not found: try /metrics\n")
            except Exception:
                log.exception("metrics endpoint: cannot answer %s", path)
                self._reply(500, "text/plain; charset=utf-8", b"internal error, see agent log\n")

        def _reply(self, code: int, content_type: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are routine: keep them out of the agent's log."""

    return Handler
