"""Self-metrics scraped over real HTTP, in the Prometheus text format."""

from __future__ import annotations

import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent.ops.metrics import AgentMetrics, MetricsError, MetricsServer, Registry, parse_listen

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$")


def samples(text: str) -> dict[str, float]:
    """Every sample line as `name{labels}` -> value; fails on any malformed line."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("# HELP ") or line.startswith("# TYPE "):
            continue
        match = SAMPLE.match(line)
        assert match, f"not a valid sample line: {line!r}"
        out[match[1] + (match[2] or "")] = float(match[3])
    return out


@pytest.fixture
def served() -> Iterator[tuple[Registry, str]]:
    registry = Registry()
    server = MetricsServer(registry, "127.0.0.1:0", status=lambda: {"files": 2, "state": "ok"})
    server.start()
    host, port = server.address
    yield registry, f"http://{host}:{port}"
    server.close()


def get(url: str) -> tuple[int, str, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, resp.headers["Content-Type"], resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers["Content-Type"], err.read()


def test_a_scrape_sees_counters_gauges_and_labels(served: tuple[Registry, str]) -> None:
    registry, base = served
    records = registry.counter("llmtail_records_total", "Records.", ("event",))
    behind = registry.gauge("llmtail_file_bytes_behind", "Behind.", ("path",))
    records.labels("llm_call").inc(3)
    records.labels("log").inc()
    behind.labels('/var/log/a "quoted"\\x.log').set(1024)
    status, content_type, body = get(base + "/metrics")
    assert status == 200
    assert content_type == "text/plain; version=0.0.4; charset=utf-8"
    got = samples(body.decode())
    assert got['llmtail_records_total{event="llm_call"}'] == 3
    assert got['llmtail_records_total{event="log"}'] == 1
    assert got['llmtail_file_bytes_behind{path="/var/log/a \\"quoted\\"\\\\x.log"}'] == 1024
    assert "# TYPE llmtail_records_total counter" in body.decode()


def test_status_serves_the_leads_json_and_unknown_paths_are_404(
    served: tuple[Registry, str],
) -> None:
    _, base = served
    status, content_type, body = get(base + "/status")
    assert (status, content_type) == (200, "application/json")
    assert orjson.loads(body) == {"files": 2, "state": "ok"}
    assert get(base + "/nope")[0] == 404


def test_a_failing_status_callable_is_a_500_and_the_server_keeps_serving() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("bug")

    server = MetricsServer(Registry(), "127.0.0.1:0", status=broken)
    server.start()
    try:
        host, port = server.address
        assert get(f"http://{host}:{port}/status")[0] == 500
        assert get(f"http://{host}:{port}/metrics")[0] == 200
    finally:
        server.close()


def test_a_port_in_use_is_one_clear_error_and_close_frees_it() -> None:
    first = MetricsServer(Registry(), "127.0.0.1:0")
    first.start()
    port = first.address[1]
    second = MetricsServer(Registry(), f"127.0.0.1:{port}")
    with pytest.raises(MetricsError) as err:
        second.start()
    assert "in use" in str(err.value) and "\n" not in str(err.value)
    first.close()
    first.close()
    second.start()  # the port is free again
    second.close()


@pytest.mark.parametrize("listen", ["9631", "localhost", "127.0.0.1:http", ":9631", "h:70000"])
def test_a_malformed_listen_address_names_the_setting(listen: str) -> None:
    with pytest.raises(MetricsError, match=r"metrics\.listen"):
        parse_listen(listen)


def test_ipv6_listen_addresses_are_understood() -> None:
    assert parse_listen("[::1]:9631") == ("::1", 9631)


def test_the_agent_metrics_are_all_exposed_from_the_start() -> None:
    registry = Registry()
    m = AgentMetrics.register(registry)
    m.lines_read.inc(10)
    m.output_latency.observe(0.2)
    got = samples(registry.render())
    for name in (
        "llmtail_lines_read_total",
        "llmtail_bytes_read_total",
        "llmtail_parse_errors_total",
        "llmtail_buffer_bytes",
        "llmtail_buffer_capacity_bytes",
        "llmtail_batch_retries_total",
        "llmtail_rotations_total",
        "llmtail_truncations_total",
        'llmtail_batches_total{outcome="rejected"}',
        "llmtail_output_latency_seconds_count",
    ):
        assert name in got, name
    assert got["llmtail_lines_read_total"] == 10


def test_a_series_of_a_file_let_go_disappears() -> None:
    registry = Registry()
    behind = registry.gauge("llmtail_file_bytes_behind", "Behind.", ("path",))
    behind.labels("/a").set(1)
    behind.remove("/a")
    assert samples(registry.render()) == {}


def test_collect_hooks_refresh_gauges_at_scrape_time() -> None:
    registry = Registry()
    buffered = registry.gauge("llmtail_buffer_bytes", "Buffered.")
    level = [0]
    registry.on_collect(lambda: buffered.set(level[0]))
    level[0] = 4096
    assert samples(registry.render())["llmtail_buffer_bytes"] == 4096


def test_increments_from_many_threads_are_not_lost() -> None:
    registry = Registry()
    counter = registry.counter("llmtail_lines_read_total", "Lines.")

    def work() -> None:
        for _ in range(20_000):
            counter.inc()

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert samples(registry.render())["llmtail_lines_read_total"] == 80_000


@given(st.lists(st.floats(0, 100, allow_nan=False), max_size=50))
def test_histogram_buckets_are_cumulative_counts_of_observations(values: list[float]) -> None:
    registry = Registry()
    latency = registry.histogram("llmtail_output_latency_seconds", "Latency.", buckets=(0.1, 1, 10))
    for value in values:
        latency.observe(value)
    got = samples(registry.render())
    for le in ("0.1", "1", "10"):
        expected = sum(v <= float(le) for v in values)
        assert got[f'llmtail_output_latency_seconds_bucket{{le="{le}"}}'] == expected
    assert got['llmtail_output_latency_seconds_bucket{le="+Inf"}'] == len(values)
    assert got["llmtail_output_latency_seconds_count"] == len(values)
    assert got["llmtail_output_latency_seconds_sum"] == pytest.approx(sum(values))


def test_counters_refuse_to_go_down_and_names_are_checked() -> None:
    registry = Registry()
    counter = registry.counter("llmtail_x_total", "X.")
    with pytest.raises(ValueError):
        counter.inc(-1)
    with pytest.raises(ValueError):
        registry.counter("llmtail_x_total", "again")
    with pytest.raises(ValueError):
        registry.gauge("bad-name", "X.")
