"""The SDK adapter against a plain HTTP server that records what arrives: one attempt, bounded
time, IP endpoints with ports, credentials asked per request."""

from __future__ import annotations

import hashlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import lz4.block
import pytest

from agent.delivery.credentials import Credentials, StaticCredentials
from agent.delivery.sls_client import Endpoint, EndpointError, SlsClient, SlsError, parse_endpoint
from agent.engine.loggroup import LogEncoder, LogGroupBytes, encode_trailer

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
    port: int = 0


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    rec = Recorder()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            n = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(n)
            rec.seen.append(
                Seen("POST", self.path, {k.lower(): v for k, v in self.headers.items()}, body)
            )
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
    started = time.monotonic()
    with pytest.raises(SlsError) as info:
        client(recorder.port).put("proj", "store", group())
    assert time.monotonic() - started < 0.9  # the SDK would have slept 1 s between attempts
    assert len(recorder.seen) == 1
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
    recorder.delay = 2.0
    started = time.monotonic()
    with pytest.raises(SlsError) as info:
        client(recorder.port, timeout=0.3).put("proj", "store", group())
    assert time.monotonic() - started < 1.5
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
