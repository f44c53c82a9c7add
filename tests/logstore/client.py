"""Clients for tests: the real SDK pointed at the local Logstore, and raw signed requests.

The SDK reaches a project at `{project}.{endpoint}` by name, so its clients here are given
`sls.llmtail.test:PORT` and reach the server through `requests`' HTTP proxy (`sdk_route`), with
nothing of the SDK's own changed. Raw requests let fault tests see exactly one answer: the SDK
retries 5xx ten times with 1 s sleeps inside `_send`, which would make every such test slow.
"""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from aliyun.log import LogClient

from tests.logstore.server import LocalLogstore, proxy_env
from tests.logstore.signing import sign_headers
from tests.logstore.sls import SDK_DOMAIN


@contextmanager
def sdk_route(url: str) -> Iterator[None]:
    """While inside, this process's `requests` (the SDK's HTTP library) goes through the local
    Logstore at `url` as its HTTP proxy; the environment is put back after."""
    env = proxy_env(url)
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def sdk_client(
    server: LocalLogstore,
    *,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    source: str = "10.0.0.1",
) -> LogClient:
    """A `LogClient` for `server`, with its credentials unless others are given."""
    return sdk_client_for(
        server.url,
        access_key_id or server.access_key_id,
        access_key_secret or server.access_key_secret,
        security_token=security_token if security_token is not None else server.security_token,
        source=source,
    )


def sdk_client_for(
    url: str,
    access_key_id: str,
    access_key_secret: str,
    *,
    security_token: str | None = None,
    source: str = "10.0.0.1",
) -> LogClient:
    """A `LogClient` for a local Logstore at `url` (e.g. one run with `python -m`), by name:
    its calls reach the server inside `sdk_route(url)`."""
    endpoint = f"http://{SDK_DOMAIN}:{urlsplit(url).port}"
    return LogClient(
        endpoint, access_key_id, access_key_secret, securityToken=security_token, source=source
    )


@dataclass(frozen=True, slots=True)
class Answer:
    """One HTTP answer; `error_code` is parsed from an SLS error body."""

    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def request_id(self) -> str | None:
        return self.headers.get("x-log-requestid")

    @property
    def error_code(self) -> str | None:
        if not self.body:
            return None
        code = json.loads(self.body).get("errorCode")
        return str(code) if code is not None else None


def signed_post(
    server: LocalLogstore,
    body: bytes,
    *,
    raw_size: int,
    compress_type: str = "lz4",
    project: str | None = None,
    logstore: str | None = None,
    access_key_id: str | None = None,
    access_key_secret: str | None = None,
    security_token: str | None = None,
    extra_headers: dict[str, str] | None = None,
    date: str | None = None,
    sent_body: bytes | None = None,
    timeout: float = 10.0,
) -> Answer:
    """POST one PutLogs body signed as the SDK signs it. `extra_headers` are applied after
    signing (to forge a header); `sent_body` replaces the signed body on the wire (corruption
    in transit). Raises `ConnectionError`s when the server drops the call."""
    path = f"/logstores/{logstore or server.logstore}/shards/lb"
    headers = {
        "Host": f"{project or server.project}.{server.endpoint.split(':')[0]}",
        "Content-Type": "application/x-protobuf",
        "x-log-bodyrawsize": str(raw_size),
    }
    if compress_type:
        headers["x-log-compresstype"] = compress_type
    sign_headers(
        "POST",
        path,
        {},
        headers,
        body,
        access_key_id=access_key_id or server.access_key_id,
        access_key_secret=access_key_secret or server.access_key_secret,
        security_token=security_token if security_token is not None else server.security_token,
        date=date,
    )
    headers.update(extra_headers or {})
    wire = body if sent_body is None else sent_body
    return raw_request(server, "POST", path, body=wire, headers=headers, timeout=timeout)


def raw_request(
    server: LocalLogstore,
    method: str,
    path: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return Answer(resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read())
    finally:
        conn.close()


def admin(server_url: str, method: str, name: str, payload: dict[str, Any] | None = None) -> Any:
    """Call the admin API of a local Logstore running in another process (`python -m`)."""
    host, _, port = server_url.removeprefix("http://").partition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        body = json.dumps(payload).encode() if payload is not None else b""
        conn.request(method, f"/_llmtail/{name}", body=body)
        return json.loads(conn.getresponse().read())
    finally:
        conn.close()
