"""A local ECS metadata service (100.100.100.200) for credential tests.

It listens on 127.0.0.1 and is reached as an HTTP proxy: alibabacloud-credentials' HTTP client
honours `HTTP_PROXY`, so a request for `http://100.100.100.200/latest/...` arrives here with its
absolute URL and is answered as the metadata service would: IMDSv2 token (`PUT
/latest/api/token`, then the `X-aliyun-ecs-metadata-token` header is required), the role name at
`/latest/meta-data/ram/security-credentials/`, and the role's STS credentials below it.
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

METADATA_HOST = "100.100.100.200"
_CREDS = "/latest/meta-data/ram/security-credentials/"


@dataclass(frozen=True)
class RoleCredential:
    access_key_id: str
    access_key_secret: str
    security_token: str
    expiration: int  # epoch seconds


class EcsMetadata:
    """Serves one role; `issue(lifetime)` decides what the next credential request gets."""

    def __init__(
        self, role: str = "llmtail-role", on_issue: Callable[[RoleCredential], None] | None = None
    ) -> None:
        self.role = role
        self._on_issue = on_issue  # e.g. tell the Logstore to accept it, before it is answered
        self.requests: Counter[str] = Counter()  # "token", "role", "credentials", "other"
        self.issued: list[RoleCredential] = []
        self.seen_hosts: set[str] = set()
        self._lifetime = 6 * 3600
        self._tokens: set[str] = set()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def proxy(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> EcsMetadata:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_lifetime(self, seconds: int) -> None:
        """Credentials issued from now on expire `seconds` after issue."""
        with self._lock:
            self._lifetime = seconds

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, bytes]:
        with self._lock:
            if method == "PUT" and path == "/latest/api/token":
                self.requests["token"] += 1
                token = secrets.token_hex(16)
                self._tokens.add(token)
                return 200, token.encode()
            if headers.get("x-aliyun-ecs-metadata-token") not in self._tokens:
                self.requests["refused"] += 1
                return 401, b""
            if method == "GET" and path == _CREDS:
                self.requests["role"] += 1
                return 200, self.role.encode()
            if method == "GET" and path == _CREDS + self.role:
                self.requests["credentials"] += 1
                n = len(self.issued) + 1
                cred = RoleCredential(
                    f"STS.role{n:04d}key",
                    secrets.token_hex(15),
                    f"token-{n}-{secrets.token_hex(8)}",
                    int(time.time()) + self._lifetime,
                )
                self.issued.append(cred)
                if self._on_issue is not None:
                    self._on_issue(cred)
                body = {
                    "AccessKeyId": cred.access_key_id,
                    "AccessKeySecret": cred.access_key_secret,
                    "SecurityToken": cred.security_token,
                    "Expiration": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(cred.expiration)),
                    "LastUpdated": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "Code": "Success",
                }
                return 200, json.dumps(body).encode()
            self.requests["other"] += 1
            return 404, b""


def _handler(owner: EcsMetadata) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet."""

        def _serve(self) -> None:
            url = urlsplit(self.path)  # a proxy request carries the absolute URL
            owner.seen_hosts.add(url.hostname or self.headers.get("Host", ""))
            length = int(self.headers.get("Content-Length") or 0)
            if length:
                self.rfile.read(length)
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, body = owner.answer(self.command, url.path, headers)
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = _serve  # noqa: N815 - http.server's method names
        do_PUT = _serve  # noqa: N815

    return Handler
