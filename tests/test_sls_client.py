"""The SDK adapter against a plain HTTP server that records what arrives: one attempt, bounded
time, IP endpoints with ports, credentials asked per request."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lz4.block
import pytest
from aliyun.log.auth import AuthV1
from aliyun.log.credentials import StaticCredentialsProvider

from llmtail.agent.config import ConfigError, parse_config
from llmtail.agent.delivery.credentials import Credentials, StaticCredentials
from llmtail.agent.delivery.sls_client import (
    Endpoint,
    EndpointError,
    SlsClient,
    SlsError,
    parse_endpoint,
)
from llmtail.agent.delivery.sls_signing import signature, string_to_sign
from llmtail.agent.endpoint import project_in_front
from llmtail.agent.engine.corestream import lz4_block as core_lz4
from llmtail.agent.engine.loggroup import LogEncoder, LogGroupBytes, encode_trailer
from tests.agentproc import wait_for
from tests.hostile_http import HostileServer

SECRET = "recorder-secret-value"


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    """Answers every request with `status`/`body` after `delay` seconds, and keeps it."""

    status: int = 200
    body: bytes = b""
    delay: float = 0.0
    seen: list[Seen] = field(default_factory=list)
    peers: list[tuple[str, int]] = field(default_factory=list)  # client address per request
    port: int = 0


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as SLS

        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            rec.seen.append(
                Seen("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
            rec.peers.append(self.client_address)
            time.sleep(rec.delay)
            try:
                self.send_response(rec.status)
                self.send_header("x-log-requestid", f"req-{len(rec.seen)}")
                self.send_header("Content-Length", str(len(rec.body)))
                self.end_headers()
                self.wfile.write(rec.body)
            except OSError:
                pass  # the client gave up (the timeout test): nothing to answer

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    rec.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield rec
    server.shutdown()
    server.server_close()
    thread.join()


class Rotating:
    """A credentials source whose token changes on every `get` (as a rotated STS file would)."""

    def __init__(self) -> None:
        self.calls = 0

    def get(self) -> Credentials:
        self.calls += 1
        return Credentials("STS.KeyId1234", SECRET, f"token-{self.calls}")

    def refresh(self) -> None:
        pass


def group() -> LogGroupBytes:
    log = LogEncoder().encode_log({"level": "INFO", "message": "hi"}, 1_700_000_000, 5)
    return LogGroupBytes([log], encode_trailer("topic", "10.0.0.7", [("__path__", "/a.log")]))


def client(port: int, timeout: float = 5.0, creds: object = None) -> SlsClient:
    source = creds or StaticCredentials(Credentials("LTAI5tExampleKeyId", SECRET))
    return SlsClient(f"127.0.0.1:{port}", source, "10.0.0.7", timeout)  # type: ignore[arg-type]


def test_with_the_core_the_body_is_the_cores_lz4_block_of_the_group(recorder: Recorder) -> None:
    """The sink gives the client the core's lz4 when the agent runs on the core: SLS gets a
    block that decompresses to the LogGroup (`x-log-bodyrawsize` its size), hashed as sent."""
    lz4_block = core_lz4(senders=1)
    if lz4_block is None:
        pytest.skip("the core is not built")
    source = StaticCredentials(Credentials("LTAI5tExampleKeyId", SECRET))
    c = SlsClient(f"127.0.0.1:{recorder.port}", source, "10.0.0.7", 5.0, lz4=lz4_block)
    assert c.put("proj", "store", group()) == "req-1"
    (req,) = recorder.seen
    raw = group().SerializeToString()
    assert req.headers["x-log-bodyrawsize"] == str(len(raw))
    assert req.headers["x-log-compresstype"] == "lz4"
    assert lz4.block.decompress(req.body, uncompressed_size=len(raw)) == raw
    assert req.headers["content-md5"] == hashlib.md5(req.body).hexdigest().upper()


def test_an_ip_endpoint_with_a_port_is_posted_to_directly(recorder: Recorder) -> None:
    c = client(recorder.port, creds=Rotating())
    assert c.put("proj", "store", group()) == "req-1"
    (req,) = recorder.seen
    assert req.path == "/logstores/store/shards/lb"
    assert req.headers["host"] == "proj.127.0.0.1"  # SLS takes the project from Host
    raw = group().SerializeToString()
    assert req.headers["x-log-bodyrawsize"] == str(len(raw))
    assert req.headers["x-log-compresstype"] == "lz4"
    assert lz4.block.decompress(req.body, uncompressed_size=len(raw)) == raw
    assert req.headers["content-md5"] == hashlib.md5(req.body).hexdigest().upper()
    assert req.headers["x-log-apiversion"] == "0.6.0"
    assert req.headers["authorization"].startswith("LOG STS.KeyId1234:")
    assert req.headers["x-acs-security-token"] == "token-1"
    assert SECRET not in str(req.headers)


def test_credentials_are_asked_for_each_request(recorder: Recorder) -> None:
    c = client(recorder.port, creds=Rotating())
    c.put("proj", "store", group())
    c.put("proj", "store", group())
    assert [s.headers["x-acs-security-token"] for s in recorder.seen] == ["token-1", "token-2"]


def test_uncompressed_when_configured(recorder: Recorder) -> None:
    creds = StaticCredentials(Credentials("LTAI5tExampleKeyId", SECRET))
    SlsClient(f"127.0.0.1:{recorder.port}", creds, "s", 5.0, compress=False).put("p", "l", group())
    assert recorder.seen[0].body == group().SerializeToString()
    assert "x-log-compresstype" not in recorder.seen[0].headers


def test_a_5xx_is_one_attempt_not_the_sdks_ten(recorder: Recorder) -> None:
    recorder.status = 500
    recorder.body = b'{"errorCode": "InternalServerError", "errorMessage": "boom"}'
    with pytest.raises(SlsError) as info:
        client(recorder.port).put("proj", "store", group())
    assert len(recorder.seen) == 1  # the SDK would have tried 10 times, 1 s apart
    assert (info.value.status, info.value.code, info.value.message) == (
        500,
        "InternalServerError",
        "boom",
    )
    assert info.value.request_id == "req-1"


def test_a_non_json_error_body_is_still_an_error_with_its_status(recorder: Recorder) -> None:
    recorder.status = 502
    recorder.body = b"<html>Bad Gateway</html>"
    with pytest.raises(SlsError) as info:
        client(recorder.port).put("proj", "store", group())
    assert info.value.status == 502


def test_a_silent_server_is_bounded_by_the_request_timeout(recorder: Recorder) -> None:
    recorder.delay = 60.0  # far beyond the timeout: only the deadline can end the request
    with pytest.raises(SlsError) as info:
        client(recorder.port, timeout=0.3).put("proj", "store", group())
    assert (info.value.status, info.value.code) == (0, "Timeout")


def test_connection_refused_and_dns_failures_are_named() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    with pytest.raises(SlsError) as info:
        client(port).put("proj", "store", group())
    assert (info.value.status, info.value.message) == (0, "connection refused")
    creds = StaticCredentials(Credentials("LTAI5tExampleKeyId", SECRET))
    dns = SlsClient("nonexistent.invalid", creds, "s", 2.0)
    with pytest.raises(SlsError) as info:
        dns.put("proj", "store", group())
    assert info.value.status == 0 and "DNS" in info.value.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", Endpoint("http", "127.0.0.1", 8080)),
        ("http://10.0.0.5:80", Endpoint("http", "10.0.0.5", 80)),
        ("https://10.0.0.5", Endpoint("https", "10.0.0.5", 443)),
        ("cn-hangzhou.log.aliyuncs.com", Endpoint("http", "cn-hangzhou.log.aliyuncs.com", 80)),
        (
            " https://cn-hangzhou.log.aliyuncs.com/ ",
            Endpoint("https", "cn-hangzhou.log.aliyuncs.com", 443),
        ),
        ("[::1]:8080", Endpoint("http", "::1", 8080)),
    ],
)
def test_endpoints_parse(text: str, expected: Endpoint) -> None:
    assert parse_endpoint(text) == expected


def test_ip_literals_are_recognised_and_names_are_not() -> None:
    assert parse_endpoint("10.0.0.5:80").is_ip and parse_endpoint("[::1]:80").is_ip
    assert not parse_endpoint("cn-hangzhou.log.aliyuncs.com").is_ip
    assert parse_endpoint("[::1]:8080").netloc() == "[::1]:8080"


@pytest.mark.parametrize("text", ["ftp://host", "http://:80", "127.0.0.1:notaport", ""])
def test_bad_endpoints_are_one_line(text: str) -> None:
    with pytest.raises(EndpointError) as info:
        parse_endpoint(text)
    assert "\n" not in str(info.value)


# -- llmtail's own client against the SDK and against hostile servers ---------------------------


def test_the_signature_is_the_sdks_on_the_same_request(recorder: Recorder) -> None:
    client(recorder.port, creds=Rotating()).put("proj", "store", group())
    (req,) = recorder.seen
    sent = {k: v for k, v in req.headers.items() if k not in ("authorization", "x-log-date")}
    sdk_headers = {
        "Content-Type": sent["content-type"],
        "x-log-bodyrawsize": sent["x-log-bodyrawsize"],
        "x-log-compresstype": sent["x-log-compresstype"],
        "x-log-apiversion": sent["x-log-apiversion"],
    }
    provider = StaticCredentialsProvider("STS.KeyId1234", SECRET, "token-1")
    AuthV1(provider).sign_request("POST", req.path, {}, sdk_headers, req.body)
    assert sdk_headers["Content-MD5"] == sent["content-md5"]
    assert sdk_headers["x-acs-security-token"] == sent["x-acs-security-token"]

    # The SDK stamps its own Date (and has no public way to be given one). llmtail's signing of
    # the request exactly as sent, at the SDK's Date, must give the SDK's signature; and at the
    # request's own Date it must give what the client sent.
    def ours(date: str) -> str:
        text = string_to_sign("POST", req.path, {}, {**sent, "date": date})
        return f"LOG STS.KeyId1234:{signature(SECRET, text)}"

    assert ours(sdk_headers["Date"]) == sdk_headers["Authorization"]
    assert ours(sent["date"]) == req.headers["authorization"]


def test_the_signature_matches_the_published_vector() -> None:
    headers = {
        "Date": "Mon, 3 Jan 2010 08:33:47 GMT",
        "x-log-apiversion": "0.6.0",
        "x-log-bodyrawsize": "0",
        "x-log-signaturemethod": "hmac-sha1",
    }
    text = string_to_sign("GET", "/logstores", {}, headers)
    assert signature("mockAccessKeySecret", text) == "Rwm6cTKzoti4HWoe+GKcb6Kv07E="


def test_a_kept_alive_connection_is_reused(recorder: Recorder) -> None:
    c = client(recorder.port)
    for _ in range(3):
        c.put("proj", "store", group())
    assert len(recorder.seen) == 3
    assert len(set(recorder.peers)) == 1  # one TCP connection for all three


@pytest.mark.parametrize(
    ("status", "chunked", "expected_status"),
    [(200, False, 0), (500, False, 500), (500, True, 500), (200, True, 0)],
)
def test_a_huge_answer_is_abandoned_after_64_kib(
    status: int, chunked: bool, expected_status: int
) -> None:
    with HostileServer(mode="huge", status=status, chunked=chunked) as server:
        c = client(server.port, timeout=600.0)
        tracemalloc.start()
        try:
            with pytest.raises(SlsError) as info:
                c.put("proj", "store", group())
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert (info.value.status, info.value.code) == (expected_status, "ResponseTooLarge")
        assert peak < 2 * 1024 * 1024  # the answer was not read into memory
        wait_for(lambda: len(server.answered()) == 1, 60, "the server to see the hang-up")
        assert server.answered()[0] < 64 * 1024 * 1024  # of 1 GiB: the rest was abandoned
        # The next request opens a fresh connection and is bounded the same way.
        with pytest.raises(SlsError):
            c.put("proj", "store", group())
        assert server.requests == 2


def test_a_server_that_drips_its_answer_hits_the_request_deadline() -> None:
    # One byte every 50 ms is well inside any per-read timeout: only a total deadline ends it.
    with HostileServer(mode="drip", drip_interval=0.05) as server:
        c = client(server.port, timeout=1.0)
        outcome: list[BaseException] = []

        def put() -> None:
            try:
                c.put("proj", "store", group())
            except SlsError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=put)
        thread.start()
        thread.join(timeout=120)
        assert not thread.is_alive()
        (err,) = outcome
        assert isinstance(err, SlsError)
        assert (err.status, err.code) == (0, "Timeout")
        assert "request timeout (1 s)" in err.message


def test_abort_ends_a_request_in_flight_and_later_ones() -> None:
    with HostileServer(mode="drip", drip_interval=0.05) as server:
        c = client(server.port, timeout=600.0)
        outcome: list[SlsError] = []

        def put() -> None:
            try:
                c.put("proj", "store", group())
            except SlsError as exc:
                outcome.append(exc)

        thread = threading.Thread(target=put)
        thread.start()
        wait_for(lambda: server.requests == 1, 60, "the request to arrive")
        c.abort()
        thread.join(timeout=60)  # the deadline is 600 s away: only the abort ends it
        assert [e.code for e in outcome] == ["Aborted"]
        with pytest.raises(SlsError) as info:
            c.put("proj", "store", group())
        assert info.value.code == "Aborted" and server.requests == 1


def test_an_answer_cut_short_is_a_failure_not_a_success() -> None:
    with HostileServer(mode="cut") as server:
        with pytest.raises(SlsError) as info:
            client(server.port).put("proj", "store", group())
        assert (info.value.status, info.value.code) == (0, "ConnectionError")


@pytest.mark.parametrize(
    ("endpoint", "project", "fixed"),
    [
        ("myproj.cn-hangzhou.log.aliyuncs.com", "myproj", "cn-hangzhou.log.aliyuncs.com"),
        (
            "https://MyProj.cn-hangzhou.log.aliyuncs.com",
            "myproj",
            "https://cn-hangzhou.log.aliyuncs.com",
        ),
        ("cn-hangzhou.log.aliyuncs.com", "myproj", None),
        ("cn-hangzhou.log.aliyuncs.com", "cn", None),  # a prefix of the first label is fine
        ("10.0.0.5:80", "10", None),  # an IP literal is sent to as is
        ("myprojx.example.com", "myproj", None),
    ],
)
def test_an_endpoint_with_the_project_in_front_is_named(
    endpoint: str, project: str, fixed: str | None
) -> None:
    problem = project_in_front(endpoint, project)
    if fixed is None:
        assert problem is None
    else:
        assert problem is not None and f"write {fixed!r}" in problem and "\n" not in problem


def test_the_config_refuses_an_endpoint_with_the_project_in_front() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            {
                "output": {
                    "type": "sls",
                    "endpoint": "myproj.cn-hangzhou.log.aliyuncs.com",
                    "project": "myproj",
                    "logstore": "l",
                }
            }
        )
    assert "starts with the project name 'myproj'" in str(info.value)
