"""The local Logstore: an HTTP server a real `LogClient` cannot tell from SLS for PutLogs.

See the package docstring for what it checks and for the admin HTTP API.
"""

from __future__ import annotations

import contextlib
import email.utils
import hmac
import json
import re
import secrets
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from tests.logstore.codec import (
    MAX_LOGS_PER_GROUP,
    MAX_RAW_BODY,
    StoredLog,
    StoredLogGroup,
    check_contents,
    check_group,
    decode_logs,
    decompress,
    parse_group,
    to_stored,
)
from tests.logstore.errors import TOKEN_EXPIRED_MESSAGE, TOKEN_INVALID_MESSAGE, SlsError
from tests.logstore.faults import FaultKind, FaultPlan, FaultRule
from tests.logstore.signing import content_md5, signature, string_to_sign
from tests.logstore.store import Stats, Store

MAX_CLOCK_SKEW = 15 * 60
ADMIN_PREFIX = "/_llmtail/"
_PUT_PATH = re.compile(r"/logstores/([^/]+)/shards/(lb|route)")
_LOGSTORE_PATH = re.compile(r"/logstores/([^/]+)")
_IPV4 = re.compile(r"\d{1,3}(\.\d{1,3}){3}")


@dataclass(frozen=True, slots=True)
class Credential:
    """An AccessKey pair; with `security_token`, requests must carry that STS token."""

    access_key_id: str
    access_key_secret: str
    security_token: str | None = None


@dataclass(frozen=True, slots=True)
class Request:
    """The parts of an HTTP request the SLS checks look at."""

    method: str
    path: str
    params: dict[str, str]
    headers: dict[str, str]  # lower-case names
    body: bytes


def project_from_host(host: str | None, default: str) -> str:
    """`{project}.{endpoint}[:port]` -> project. A bare IP (the SDK's raw-IP mode sends no
    project in the URL) or a dotless name carries no project: use `default`."""
    if not host:
        return default
    name = host.strip()
    if name.startswith("["):
        return default
    name = name.rsplit(":", 1)[0]
    if _IPV4.fullmatch(name) or "." not in name:
        return default
    return name.split(".", 1)[0]


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
        fault_seed: int = 0,
    ) -> None:
        self.project = project
        self.logstore = logstore
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        self.security_token = security_token
        self.max_logs_per_group = max_logs_per_group
        self.faults = FaultPlan(seed=fault_seed)
        self.store = Store(count_only=count_only)
        self._clock = clock
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._credentials = {
            access_key_id: Credential(access_key_id, access_key_secret, security_token)
        }
        self._expired_tokens: set[str] = set()
        self._logstores: set[tuple[str, str]] = {(project, logstore)}
        self._drop_all_until = 0.0
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

    # -- outages ---------------------------------------------------------------------------

    def outage(self, seconds: float, *, refuse: bool = True) -> None:
        """An outage of `seconds`, starting now, without blocking the caller.

        `refuse=True` closes the listener (connections refused, open ones reset) and reopens it
        on the same port; `refuse=False` keeps listening but drops every PutLogs connection."""
        if not refuse:
            with self._lock:
                self._drop_all_until = time.monotonic() + seconds
            return
        self.stop()
        timer = threading.Timer(seconds, self.start)
        timer.daemon = True
        with self._lock:
            self._reopen = timer
        timer.start()

    def dropping_all(self) -> bool:
        with self._lock:
            return time.monotonic() < self._drop_all_until

    # -- configuration ---------------------------------------------------------------------

    def add_logstore(self, project: str, logstore: str) -> None:
        with self._lock:
            self._logstores.add((project, logstore))

    def remove_logstore(self, project: str, logstore: str) -> None:
        """Later requests get 404 LogStoreNotExist (or ProjectNotExist for its last one)."""
        with self._lock:
            self._logstores.discard((project, logstore))

    def add_credential(
        self, access_key_id: str, access_key_secret: str, security_token: str | None = None
    ) -> None:
        with self._lock:
            self._credentials[access_key_id] = Credential(
                access_key_id, access_key_secret, security_token
            )

    def expire_token(self, token: str) -> None:
        """Requests with this STS token now get 401 Unauthorized "...token...has expired."."""
        with self._lock:
            self._expired_tokens.add(token)

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

    # -- the SLS side ----------------------------------------------------------------------

    def _authenticate(self, req: Request, project: str) -> None:
        with self._lock:
            known_project = any(p == project for p, _ in self._logstores)
        if not known_project:
            raise SlsError(404, "ProjectNotExist", f"The Project does not exist : {project}")
        auth = req.headers.get("authorization", "")
        if not auth.startswith("LOG ") or ":" not in auth:
            raise SlsError(400, "MissAccessKeyId", "x-log-accesskeyid does not exist in header.")
        key_id, _, claimed = auth[4:].strip().rpartition(":")
        with self._lock:
            cred = self._credentials.get(key_id)
            expired = set(self._expired_tokens)
        if cred is None:
            raise SlsError(401, "InvalidAccessKeyId", f"AccessKeyId not found: {key_id}")
        expected = signature(
            cred.access_key_secret, string_to_sign(req.method, req.path, req.params, req.headers)
        )
        if not hmac.compare_digest(expected, claimed):
            raise SlsError(401, "SignatureNotMatch", f"signature {claimed} not match")
        token = req.headers.get("x-acs-security-token")
        if token != cred.security_token:
            raise SlsError(401, "Unauthorized", TOKEN_INVALID_MESSAGE)
        if token is not None and token in expired:
            raise SlsError(401, "Unauthorized", TOKEN_EXPIRED_MESSAGE)
        date = req.headers.get("date")
        if date is None:
            raise SlsError(400, "MissingDate", "Date does not exist in http header.")
        try:
            sent = email.utils.parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError) as exc:
            raise SlsError(400, "InvalidDateFormat", f"Date {date} must follow RFC822.") from exc
        now = self._clock()
        if abs(now - sent) > MAX_CLOCK_SKEW:
            raise SlsError(
                400,
                "RequestTimeExpired",
                f"Request time {date} has been expired while server time is "
                f"{email.utils.formatdate(now, usegmt=True)}.",
            )

    def _check_logstore(self, project: str, logstore: str) -> None:
        with self._lock:
            exists = (project, logstore) in self._logstores
        if not exists:
            raise SlsError(404, "LogStoreNotExist", f"logstore {logstore} does not exist")

    def put_logs(self, req: Request, logstore: str) -> str:
        """Check, decode and store one PutLogs request; its request id. Raises `SlsError`."""
        project = project_from_host(req.headers.get("host"), self.project)
        self._authenticate(req, project)
        self._check_logstore(project, logstore)
        h = req.headers
        if "x-log-apiversion" not in h:
            raise SlsError(
                400, "MissingAPIVersion", "x-log-apiversion does not exist in http header."
            )
        if h.get("content-type") != "application/x-protobuf":
            raise SlsError(
                415, "InvalidContentType", f"Content-Type {h.get('content-type')} is unsupported."
            )
        md5 = h.get("content-md5")
        # SLS's public docs name no code for this; InvalidContentMD5 is this server's choice.
        if md5 is not None and md5.upper() != content_md5(req.body):
            raise SlsError(400, "InvalidContentMD5", f"Content-MD5 {md5} does not match the body")
        if "x-log-bodyrawsize" not in h:
            raise SlsError(
                400,
                "MissingBodyRawSize",
                "x-log-bodyrawsize does not exist in header when it is necessary.",
            )
        try:
            raw_size = int(h["x-log-bodyrawsize"])
        except ValueError as exc:
            raise SlsError(400, "InvalidBodyRawSize", "x-log-bodyrawsize is invalid.") from exc
        if raw_size > MAX_RAW_BODY or len(req.body) > MAX_RAW_BODY:
            raise SlsError(
                413, "PostBodyTooLarge", f"body size {raw_size} must little than {MAX_RAW_BODY}"
            )
        compress_type = h.get("x-log-compresstype", "")
        raw = decompress(req.body, compress_type, raw_size)
        group = parse_group(raw)
        check_group(group, self._clock(), self.max_logs_per_group)
        request_id = new_request_id()
        stored = None
        if self.store.count_only:
            check_contents(group.Logs[:1])
        else:
            stored = to_stored(
                group,
                decode_logs(group),
                project=project,
                logstore=logstore,
                request_id=request_id,
                compress_type=compress_type,
                hash_key=req.params.get("key"),
            )
        self.store.accepted(project, logstore, len(group.Logs), raw_size, stored)
        return request_id

    def describe_logstore(self, req: Request, logstore: str | None) -> dict[str, Any]:
        """GET /logstores[/{name}]: enough for a reachability check (`check-output`)."""
        project = project_from_host(req.headers.get("host"), self.project)
        self._authenticate(req, project)
        if logstore is None:
            with self._lock:
                names = sorted(ls for p, ls in self._logstores if p == project)
            return {"count": len(names), "total": len(names), "logstores": names}
        self._check_logstore(project, logstore)
        return {
            "logstoreName": logstore,
            "ttl": 30,
            "shardCount": 2,
            "enable_tracking": False,
            "appendMeta": False,
            "autoSplit": True,
            "maxSplitShard": 64,
            "createTime": 1700000000,
            "lastModifyTime": 1700000000,
        }

    # -- admin -----------------------------------------------------------------------------

    def admin(self, method: str, name: str, params: dict[str, str], body: bytes) -> tuple[int, Any]:
        """The JSON admin API (package docstring); returns (status, JSON-able answer)."""
        routes: dict[tuple[str, str], Callable[[dict[str, str], dict[str, Any]], Any]] = {
            ("GET", "stats"): lambda p, d: self.stats().to_json(),
            ("GET", "records"): lambda p, d: {
                "records": self.records(p.get("project"), p.get("logstore"))
            },
            ("GET", "groups"): lambda p, d: {
                "groups": [
                    group_to_json(g) for g in self.groups(p.get("project"), p.get("logstore"))
                ]
            },
            ("POST", "faults"): self._admin_add_fault,
            ("DELETE", "faults"): lambda p, d: self.faults.clear(),
            ("POST", "logstores"): lambda p, d: self.add_logstore(d["project"], d["logstore"]),
            ("DELETE", "logstores"): lambda p, d: self.remove_logstore(d["project"], d["logstore"]),
            ("POST", "expire-token"): lambda p, d: self.expire_token(d["token"]),
            ("POST", "outage"): self._admin_outage,
            ("POST", "reset"): lambda p, d: self.reset(),
        }
        route = routes.get((method, name))
        if route is None:
            return 404, {"errorCode": "NotFound", "errorMessage": f"no admin route {method} {name}"}
        data: dict[str, Any] = json.loads(body) if body else {}
        answer = route(params, data)
        return 200, {"ok": True} if answer is None else answer

    def _admin_add_fault(self, params: dict[str, str], data: dict[str, Any]) -> None:
        self.faults.add(
            FaultRule(
                kind=FaultKind(data.get("kind", "error")),
                code=data.get("code", "InternalServerError"),
                status=data.get("status"),
                message=data.get("message"),
                delay=float(data.get("delay", 0.0)),
                count=data.get("count"),
                probability=float(data.get("probability", 1.0)),
                seconds=data.get("seconds"),
            )
        )

    def _admin_outage(self, params: dict[str, str], data: dict[str, Any]) -> None:
        seconds, refuse = float(data["seconds"]), bool(data.get("refuse", True))
        # Answer first: a refusing outage closes this very connection.
        timer = threading.Timer(0.05, self.outage, (seconds,), {"refuse": refuse})
        timer.daemon = True
        timer.start()


def new_request_id() -> str:
    """24 upper-case hex digits, the shape of SLS request ids."""
    return secrets.token_hex(12).upper()


def group_to_json(group: StoredLogGroup) -> dict[str, Any]:
    return {
        "project": group.project,
        "logstore": group.logstore,
        "request_id": group.request_id,
        "topic": group.topic,
        "source": group.source,
        "tags": [list(t) for t in group.tags],
        "compress_type": group.compress_type,
        "hash_key": group.hash_key,
        "logs": [
            {"time": log.time, "time_ns": log.time_ns, "contents": [list(c) for c in log.contents]}
            for log in group.logs
        ],
    }


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

    def _dispatch(self) -> None:
        owner = self.server.owner
        parts = urlsplit(self.path)
        path = unquote(parts.path)
        params = dict(parse_qsl(parts.query, keep_blank_values=True))
        length = self.headers.get("Content-Length")
        body = self.rfile.read(int(length)) if length else b""
        if path.startswith(ADMIN_PREFIX):
            try:
                status, answer = owner.admin(self.command, path[len(ADMIN_PREFIX) :], params, body)
            except (KeyError, ValueError, TypeError) as exc:
                status, answer = 400, {"errorCode": "BadAdminRequest", "errorMessage": str(exc)}
            self._answer(status, json.dumps(answer).encode(), "")
            return
        req = Request(
            method=self.command,
            path=path,
            params=params,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        put = _PUT_PATH.fullmatch(path)
        try:
            if self.command == "POST" and put:
                self._put_logs(owner, req, put.group(1))
                return
            described = _LOGSTORE_PATH.fullmatch(path)
            if self.command == "GET" and (described or path == "/logstores"):
                name = described.group(1) if described else None
                answer = owner.describe_logstore(req, name)
                self._answer(200, json.dumps(answer).encode(), new_request_id())
                return
            raise SlsError(404, "NotImplemented", f"{self.command} {path} is not served here")
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
        request_id = owner.put_logs(req, logstore)
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
