"""The admin client: the SDK's public API, each call ended by its deadline, and the endpoints
the SDK cannot reach refused in one line."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from llmtail.agent.delivery.admin_client import (
    AdminClient,
    AdminTimeoutError,
    log_client,
    sdk_endpoint,
)
from llmtail.agent.delivery.credentials import Credentials, StaticCredentials
from llmtail.agent.endpoint import EndpointError, parse_endpoint

KEY = StaticCredentials(Credentials("LTAIadmintestkey", "admin-test-secret"))


class _Peer(ThreadingHTTPServer):
    """An SLS that answers every request with `status` (or, with status 0, never answers)."""

    daemon_threads = True

    def __init__(self, status: int) -> None:
        self.status = status
        self.requests = 0
        self.release = threading.Event()
        super().__init__(("127.0.0.1", 0), _PeerHandler)


class _PeerHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Peer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""

    def do_GET(self) -> None:
        self.server.requests += 1
        if self.server.status == 0:
            self.server.release.wait(30)  # silent until the test ends
            return
        body = b'{"errorCode": "InternalServerError", "errorMessage": "busy"}'
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _serve(status: int, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Peer]:
    """The peer, reached by the SDK by name through `requests`' proxy (as the local Logstore)."""
    peer = _Peer(status)
    thread = threading.Thread(target=peer.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{peer.server_address[1]}"
    for name in ("http_proxy", "HTTP_PROXY"):
        monkeypatch.setenv(name, url)
    for name in ("no_proxy", "NO_PROXY"):
        monkeypatch.setenv(name, "")
    try:
        yield peer
    finally:
        peer.release.set()
        peer.shutdown()
        peer.server_close()
        thread.join(timeout=10)


@pytest.fixture
def failing(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Peer]:
    yield from _serve(500, monkeypatch)


@pytest.fixture
def silent(monkeypatch: pytest.MonkeyPatch) -> Iterator[_Peer]:
    yield from _serve(0, monkeypatch)


def test_a_server_error_is_not_retried_past_the_deadline(failing: _Peer) -> None:
    # The clock moves 10 s per look: the first attempt starts with 5 s left, the SDK's second
    # (after its 1 s pause) would start past the deadline and is refused, not sent.
    ticks = iter(range(0, 1000, 10))
    client = AdminClient(parse_endpoint("sls.peer.test"), KEY, 15.0, clock=lambda: next(ticks))
    with pytest.raises(AdminTimeoutError) as info:
        client.get_logstore("proj", "store")
    assert str(info.value) == "no success from SLS within 15 s"
    assert failing.requests == 1  # the SDK alone sends ten


def test_a_silent_server_costs_one_deadline_not_ten_sdk_timeouts(silent: _Peer) -> None:
    # Alone, the SDK waits 120 s for an answer, ten times over.
    client = log_client("sls.peer.test", KEY, 0.5)
    with pytest.raises(AdminTimeoutError):
        client.get_logstore("proj", "store")
    assert silent.requests == 1


def test_private_sdk_members_are_not_reachable_through_the_client() -> None:
    client = log_client("cn-hangzhou.log.aliyuncs.com", KEY, 5.0)
    with pytest.raises(AttributeError):
        _ = client._send


@pytest.mark.parametrize(
    ("endpoint", "given_to_the_sdk"),
    [
        ("cn-hangzhou.log.aliyuncs.com", "http://cn-hangzhou.log.aliyuncs.com:80"),
        ("https://cn-hangzhou.log.aliyuncs.com", "https://cn-hangzhou.log.aliyuncs.com:443"),
        ("sls.llmtail.test:8080", "http://sls.llmtail.test:8080"),
        ("10.0.0.1", "10.0.0.1"),  # the SDK's raw-IP mode: port 80, project in Host only
        ("http://10.0.0.1:80", "10.0.0.1"),
    ],
)
def test_endpoints_the_sdk_can_reach(endpoint: str, given_to_the_sdk: str) -> None:
    assert sdk_endpoint(parse_endpoint(endpoint)) == given_to_the_sdk


@pytest.mark.parametrize(
    "endpoint", ["127.0.0.1:8080", "https://10.0.0.1", "[::1]:80", "http://[fe80::1]"]
)
def test_endpoints_the_sdk_cannot_reach_are_one_line_naming_the_fix(endpoint: str) -> None:
    with pytest.raises(EndpointError) as info:
        log_client(endpoint, KEY, 5.0)
    text = str(info.value)
    assert "\n" not in text and "cn-hangzhou.log.aliyuncs.com" in text
