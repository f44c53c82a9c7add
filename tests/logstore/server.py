"""The local Logstore: an HTTP server a real `LogClient` cannot tell from SLS for PutLogs.

See the package docstring for what it checks and for the admin HTTP API.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.logstore.admin import PREFIX as ADMIN_PREFIX
from tests.logstore.admin import Admin
from tests.logstore.catalog import Catalog
from tests.logstore.codec import MAX_LOGS_PER_GROUP, StoredLog, StoredLogGroup
from tests.logstore.errors import SlsError
from tests.logstore.faults import FaultPlan
from tests.logstore.sls import SDK_DOMAIN, Credential, Request, Sls, new_request_id
from tests.logstore.store import Stats, Store

_PUT_PATH = re.compile(r"/logstores/([^/]+)/shards/(lb|route)")


def proxy_env(url: str) -> dict[str, str]:
    """Environment that makes `requests` send plain-http requests through the server at `url`."""
    return {"http_proxy": url, "HTTP_PROXY": url, "no_proxy": "", "NO_PROXY": ""}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], owner: LocalLogstore) -> None:
        self.owner = owner
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that hung up mid-answer is normal here (timeouts, drops); stay quiet."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    def close_connections(self) -> None:
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)


class LocalLogstore:
    """A started-on-demand SLS PutLogs endpoint on 127.0.0.1 that keeps what it accepted.

    Use as a context manager or call `start()`/`stop()`. Everything is safe to call from test
    threads while the server runs.
    """

    def __init__(
        self,
        project: str = "llmtail-test",
        logstore: str = "llmtail",
        *,
        access_key_id: str = "LTAIlocaltestkey",
        access_key_secret: str = "local-test-secret",
        security_token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        count_only: bool = False,
        max_logs_per_group: int = MAX_LOGS_PER_GROUP,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        fault_seed: int = 0,
    ) -> None:
        """`monotonic` times the drop-all outage window (tests pass a fake one)."""
        self.project = project
        self.logstore = logstore
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.faults = FaultPlan(seed=fault_seed)
        self.store = Store(count_only=count_only)
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self.sls = Sls(
            self.store,
            project,
            Credential(access_key_id, access_key_secret, security_token),
            clock,
            max_logs_per_group,
        )
        self.sls.add_logstore(project, logstore)
        self.catalog = Catalog(self.sls.logstore_names, self.sls.add_logstore)
        self.admin = Admin(self)
        self._drop_all_until = 0.0
        self._monotonic = monotonic
        self.internal_errors: list[str] = []  # tracebacks of server bugs; tests may assert []
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._reopen: threading.Timer | None = None

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> LocalLogstore:
        """Bind (port 0 picks a free port, kept across restarts) and serve in a thread.
        During a refusing outage, this ends it early."""
        self._cancel_reopen()
        with self._lock:
            if self._server is not None:
                return self
            server = _Server((self._host, self._port), self)
            self._port = server.server_address[1]
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},
                name=f"local-logstore:{self._port}",
                daemon=True,
            )
            self._server, self._thread = server, thread
            thread.start()
        return self

    def stop(self) -> None:
        """Close the listener and every open connection (clients see resets, not answers);
        a pending reopen from `outage` is cancelled."""
        self._cancel_reopen()
        self._close_listener()

    def _cancel_reopen(self) -> None:
        with self._lock:
            timer, self._reopen = self._reopen, None
        if timer is not None:
            timer.cancel()

    def _close_listener(self) -> None:
        with self._lock:
            server, thread = self._server, self._thread
            self._server = self._thread = None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        server.close_connections()
        if thread is not None:
            thread.join(timeout=5)

    def __enter__(self) -> LocalLogstore:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def port(self) -> int:
        return self._port

    @property
    def endpoint(self) -> str:
        """`127.0.0.1:PORT`, what the agent's `output.endpoint` takes."""
        return f"{self._host}:{self._port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def sdk_endpoint(self) -> str:
        """`sls.llmtail.test:PORT`: an endpoint name for the aliyun SDK, which reaches a project
        at `{project}.{endpoint}` by name (it cannot reach `127.0.0.1:PORT`); use with `sdk_env`."""
        return f"{SDK_DOMAIN}:{self._port}"

    def sdk_env(self) -> dict[str, str]:
        """Environment that sends `requests` (the SDK's HTTP library) to this server as its HTTP
        proxy: `http://{project}.sls.llmtail.test:PORT/...` arrives here in absolute form, with
        the project in the request target, as SLS receives it by name."""
        return proxy_env(self.url)

    # -- outages ---------------------------------------------------------------------------

    def outage(self, seconds: float, *, refuse: bool = True) -> None:
        """An outage of `seconds`, starting now, without blocking the caller.

        `refuse=True` closes the listener (connections refused, open ones reset) and reopens it
        on the same port; `refuse=False` keeps listening but drops every PutLogs connection."""
        if not refuse:
            with self._lock:
                self._drop_all_until = self._monotonic() + seconds
            return
        self.stop()
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        with self._lock:
            self._reopen = timer
        timer.start()

    def dropping_all(self) -> bool:
        with self._lock:
            return self._monotonic() < self._drop_all_until

    # -- configuration ---------------------------------------------------------------------

    def add_logstore(self, project: str, logstore: str) -> None:
        self.sls.add_logstore(project, logstore)

    def remove_logstore(self, project: str, logstore: str) -> None:
        """Later requests get 404 LogStoreNotExist (or ProjectNotExist for its last one)."""
        self.sls.remove_logstore(project, logstore)

    def add_credential(
        self, access_key_id: str, access_key_secret: str, security_token: str | None = None
    ) -> None:
        self.sls.add_credential(Credential(access_key_id, access_key_secret, security_token))

    def expire_token(self, token: str) -> None:
        """Requests with this STS token now get 401 Unauthorized "...token...has expired."."""
        self.sls.expire_token(token)

    # -- what was received -----------------------------------------------------------------

    def groups(
        self, project: str | None = None, logstore: str | None = None
    ) -> list[StoredLogGroup]:
        return self.store.groups(project, logstore)

    def logs(self, project: str | None = None, logstore: str | None = None) -> list[StoredLog]:
        return [log for g in self.groups(project, logstore) for log in g.logs]

    def records(
        self, project: str | None = None, logstore: str | None = None
    ) -> list[dict[str, str]]:
        """The contents of every accepted log as a dict, in arrival order."""
        return [log.as_dict() for log in self.logs(project, logstore)]

    def stats(self) -> Stats:
        return self.store.stats()

    def reset(self) -> None:
        """Forget stored data, counters and fault rules."""
        self.store.reset()
        self.faults.clear()

    def wait_for_logs(self, count: int, timeout: float = 10.0) -> int:
        """Poll until at least `count` logs were accepted or `timeout` passed; the count."""
        deadline = time.monotonic() + timeout
        while True:
            seen = self.store.stats().accepted_logs
            if seen >= count or time.monotonic() >= deadline:
                return seen
            time.sleep(0.01)


class _DropConnectionError(Exception):
    """Close the connection without answering."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        super().setup()
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            with self.server.connections_lock:
                self.server.connections.discard(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: tests assert on stats, not on access logs."""

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = self.headers.get("Content-Length")
        body = self.rfile.read(int(length)) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        if parts.scheme:
            # Absolute form (through a proxy): the target names the host (RFC 9112 3.2.2).
            headers["host"] = parts.netloc
        if path.startswith(ADMIN_PREFIX):
            route = path.removeprefix(ADMIN_PREFIX)
            status, answer = self.server.owner.admin.answer(self.command, route, params, body)
            self._answer(status, json.dumps(answer).encode(), "")
            return
        self._sls(Request(self.command, path, params, headers, body))

    def _sls(self, req: Request) -> None:
        """Serve an SLS API request; every failure becomes an SLS answer or a dropped line."""
        owner = self.server.owner
        try:
            put = _PUT_PATH.fullmatch(req.path)
            if req.method == "POST" and put:
                self._put_logs(owner, req, put.group(1))
            elif owner.catalog.handles(req.path):
                answer = owner.catalog.answer(req, owner.sls.authenticate(req))
                body = b"" if answer is None else json.dumps(answer).encode()
                self._answer(200, body, new_request_id())
            else:
                raise SlsError(404, "NotImplemented", f"{req.method} {req.path} is not served here")
        except SlsError as err:
            owner.store.rejected(err.code)
            self._error(err)
        except _DropConnectionError:
            owner.store.dropped()
            self.close_connection = True
        except ConnectionError:
            raise  # the client hung up: not a bug, and nobody to answer
        except Exception as exc:  # a bug here must not look like a network fault to the agent
            owner.internal_errors.append(traceback.format_exc())
            owner.store.rejected("LocalLogstoreBug")
            self._error(SlsError(500, "InternalServerError", f"local Logstore bug: {exc!r}"))

    def _put_logs(self, owner: LocalLogstore, req: Request, logstore: str) -> None:
        owner.store.request_seen()
        if owner.dropping_all():
            raise _DropConnectionError
        verdict = owner.faults.verdict()
        if verdict.delay:
            time.sleep(verdict.delay)
        if verdict.drop:
            raise _DropConnectionError
        if verdict.error is not None:
            raise verdict.error
        request_id = owner.sls.put_logs(req, logstore)
        if verdict.drop_after_store:
            raise _DropConnectionError
        self._answer(200, b"", request_id)

    def _error(self, err: SlsError) -> None:
        body = json.dumps({"errorCode": err.code, "errorMessage": err.message}).encode()
        self._answer(err.status, body, new_request_id())

    def _answer(self, status: int, body: bytes, request_id: str) -> None:
        self.send_response(status)
        if request_id:
            self.send_header("x-log-requestid", request_id)
        if body:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
