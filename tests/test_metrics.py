"""The metrics listener and the agent's self-metrics, scraped over real HTTP on 127.0.0.1."""

from __future__ import annotations

import http.client
import logging
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmtail.agent.ops.metrics import (
    AgentMetrics,
    MetricsError,
    MetricsServer,
    Registry,
    parse_listen,
)

SERVER_LOG = "llmtail.agent.ops.metrics_server"


@dataclass
class Served:
    registry: Registry
    metrics: AgentMetrics
    server: MetricsServer
    ready: list[bool]

    @property
    def port(self) -> int:
        return self.server.address[1]


def request(port: int, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics as (name, sorted labels) -> value, via the official parser."""
    status, _, body = request(port, "/metrics")
    assert status == 200
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition the test cannot be told about (server threads finishing)."""
    done = threading.Event()
    for _ in range(3000):
        if condition():
            return
        done.wait(0.01)
    raise AssertionError(f"gave up waiting for {what}")


def serve(**limits: float) -> Served:
    registry = Registry()
    metrics = AgentMetrics.register(registry, output="sls", inputs=["/var/log/app/*.log"])
    ready = [True]
    server = MetricsServer(
        registry,
        "127.0.0.1:0",
        status=lambda: {"files": 2, "state": "ok"},
        ready=lambda: ready[0],
        **limits,  # type: ignore[arg-type]
    )
    server.start()
    return Served(registry, metrics, server, ready)


@pytest.fixture
def served() -> Iterator[Served]:
    s = serve()
    yield s
    s.server.close()


def test_status_health_ready_and_unknown_paths(served: Served) -> None:
    status, headers, body = request(served.port, "/status")
    assert (status, headers["content-type"]) == (200, "application/json")
    assert orjson.loads(body) == {"files": 2, "state": "ok"}
    assert request(served.port, "/health")[0] == 200
    assert request(served.port, "/ready")[0] == 200
    served.ready[0] = False  # the output is held: alive, but not ready
    assert request(served.port, "/ready")[0] == 503
    assert request(served.port, "/health")[0] == 200
    assert request(served.port, "/nope")[0] == 404


@pytest.mark.parametrize("path", ["/metrics", "/status", "/health", "/ready", "/nope"])
def test_head_answers_like_get_without_a_body(served: Served, path: str) -> None:
    get_status, get_headers, _ = request(served.port, path)
    head_status, head_headers, head_body = request(served.port, path, "HEAD")
    assert head_status == get_status
    assert head_body == b""
    assert head_headers["content-type"] == get_headers["content-type"]


def test_a_failing_status_callable_is_a_500_and_the_server_keeps_serving() -> None:
    def broken() -> dict[str, int]:
        raise RuntimeError("bug")

    server = MetricsServer(Registry(), "127.0.0.1:0", status=broken)
    server.start()
    try:
        port = server.address[1]
        assert request(port, "/status")[0] == 500
        assert request(port, "/metrics")[0] == 200
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


def test_self_metrics_follow_prometheus_conventions_and_are_exposed_from_the_start(
    served: Served,
) -> None:
    got = scrape(served.port)
    names = {name for name, _ in got}
    for name in (
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "llmtail_build_info",
        "llmtail_lines_read_total",
        "llmtail_bytes_read_total",
        "llmtail_parse_errors_total",
        "llmtail_buffer_bytes",
        "llmtail_buffer_capacity_bytes",
        "llmtail_batch_retries_total",
        "llmtail_rotations_total",
        "llmtail_truncations_total",
        "llmtail_output_latency_seconds_count",
        "llmtail_llm_label_sets_dropped_total",
    ):
        assert name in names, name
    assert not [n for n in names if n.endswith("_created")]
    assert got[("llmtail_output_records_total", (("outcome", "rejected"), ("output", "sls")))] == 0
    state = {
        dict(labels)["llmtail_output_state"]: value
        for (name, labels), value in got.items()
        if name == "llmtail_output_state"
    }
    assert state == {"delivering": 1, "retrying": 0, "held": 0}
    assert got[("llmtail_input_bytes_behind", (("input", "/var/log/app/*.log"),))] == 0


def test_outcomes_output_state_and_bytes_behind_per_input(served: Served) -> None:
    m = served.metrics
    m.batch_finished("delivered", 4096, 3_000_000, 0.2)
    m.batch_finished("delivered", 10, 2_000, 0.3)
    m.batch_finished("rejected", 7, 900, 1.5)
    m.set_output_state("held")
    m.set_bytes_behind({0: 12_345})
    got = scrape(served.port)
    sls = (("outcome", "delivered"), ("output", "sls"))
    assert got[("llmtail_output_records_total", sls)] == 4106
    assert got[("llmtail_output_bytes_total", sls)] == 3_002_000
    rejected = (("outcome", "rejected"), ("output", "sls"))
    assert got[("llmtail_output_records_total", rejected)] == 7
    assert got[("llmtail_batches_total", (("outcome", "delivered"),))] == 2
    assert got[("llmtail_output_latency_seconds_count", ())] == 3
    held = (("llmtail_output_state", "held"), ("output", "sls"))
    assert got[("llmtail_output_state", held)] == 1
    assert got[("llmtail_input_bytes_behind", (("input", "/var/log/app/*.log"),))] == 12_345
    assert len([n for n, _ in got if n == "llmtail_input_bytes_behind"]) == 1


# -- abuse (issue 14, item 6) -------------------------------------------------------------


HALF_REQUESTS = [
    b"",
    b"GE",
    b"GET /metr",
    b"GET /metrics HTTP/1.1\r\nHost: 127",
    b"GET /metrics HTTP/1.1\r\nHost: x\r\n",
    b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS hello to a plain-HTTP port
    b"POST /metrics HTTP/1.1\r\nContent-Length: 100\r\n\r\nab",
]


def hang_up(port: int, data: bytes, reset: bool) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    if reset:  # close with RST instead of FIN
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if data:
        sock.sendall(data)
    sock.close()


def test_100_clients_that_send_half_a_request_and_hang_up_leave_a_few_quiet_lines(
    served: Served, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOG)
    for n in range(100):
        hang_up(served.port, HALF_REQUESTS[n % len(HALF_REQUESTS)], reset=n % 2 == 0)
    # The listener accepts in order, so once this scrape is answered all 100 were accepted.
    assert request(served.port, "/metrics")[0] == 200
    wait_until(lambda: served.server.connections == 0, "the 100 connections to end")
    lines = [r for r in caplog.records if r.name == SERVER_LOG]
    assert len(lines) <= 6, [r.getMessage() for r in lines]
    assert all(r.exc_info is None for r in lines)
    assert len({r.getMessage() for r in lines}) == len(lines)  # one line per kind
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    assert request(served.port, "/health")[0] == 200


def test_1000_idle_connections_keep_threads_bounded_and_scrapes_answered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=SERVER_LOG)
    s = serve(max_connections=16)
    before = threading.active_count()
    idle: list[socket.socket] = []
    try:
        for _ in range(1000):
            idle.append(socket.create_connection(("127.0.0.1", s.port), timeout=30))
        # The newest connections hold every slot, without a byte sent; a scraper still gets in.
        status, _, body = request(s.port, "/metrics")
        assert status == 200 and b"llmtail_build_info" in body
        assert s.server.connections <= 16
        wait_until(
            lambda: threading.active_count() <= before + 16, "evicted connection threads to end"
        )
        assert threading.active_count() <= before + 16  # not 1,006
        got = scrape(s.port)
        evicted = got[("llmtail_metrics_http_faults_total", (("kind", "evicted"),))]
        assert evicted >= 1000 - 16
    finally:
        for sock in idle:
            sock.close()
        s.server.close()
    lines = [r for r in caplog.records if r.name == SERVER_LOG]
    assert 1 <= len(lines) <= 3, [r.getMessage() for r in lines]


def test_a_client_dripping_one_byte_at_a_time_is_cut_off_at_the_deadline() -> None:
    s = serve(deadline=0.5, idle_timeout=0.3)
    try:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        pause = threading.Event()
        cut = False
        # Each byte arrives well inside the idle timeout; only the whole-exchange deadline
        # can end this. The loop ends when the server has closed the connection.
        for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: " + b"a" * 100_000:
            try:
                sock.send(bytes([byte]))
            except OSError:
                cut = True
                break
            pause.wait(0.05)
        sock.close()
        assert cut
        got = scrape(s.port)
        assert got[("llmtail_metrics_http_faults_total", (("kind", "timeout"),))] >= 1
    finally:
        s.server.close()


def test_an_idle_client_is_timed_out_and_its_slot_freed() -> None:
    s = serve(deadline=30.0, idle_timeout=0.2)
    try:
        sock = socket.create_connection(("127.0.0.1", s.port), timeout=30)
        sock.sendall(b"GET /metrics HTTP/1.1\r\n")  # then nothing more
        # The server closes it without an answer, long before the 30 s deadline.
        assert b"".join(iter(lambda: sock.recv(65536), b"")) == b""
        sock.close()
        wait_until(lambda: s.server.connections == 0, "the timed-out connection to end")
        got = scrape(s.port)
        assert got[("llmtail_metrics_http_faults_total", (("kind", "timeout"),))] == 1
    finally:
        s.server.close()
