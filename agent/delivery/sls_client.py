"""llmtail's own PutLogs client: one signed attempt, a total deadline, a bounded answer.

Why not the SDK: its `_send` retries 5xx ten times with 1 s sleeps, its timeout applies to each
read rather than to the request (a server dripping a byte a second holds it for ever), and it
reads any answer whole into memory (a proxy answering with 1 GiB costs GiBs). Overriding its
private methods to avoid that is fragile, so PutLogs is signed and sent here (signature v1,
`sls_signing`); the SDK stays for the tests' admin calls.

Per client (the sink keeps one per sender thread): one persistent connection; every socket
operation gets the time left until the request's deadline as its timeout, so connect, TLS
handshake, sending and reading together never take longer than `timeout` (a DNS lookup is the
one step the standard library cannot bound). At most `MAX_ANSWER` bytes of an answer are read:
SLS answers are tiny, so more means something else is talking; the rest is abandoned with the
connection and the request counts as failed. `abort` shuts the socket down from another thread,
which wakes a request blocked mid-way (shutdown must not wait for a request deadline).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import lz4.block

from llmtail.agent import __version__
from llmtail.agent.delivery.credentials import Credentials, CredentialsSource
from llmtail.agent.delivery.sls_signing import http_date, signature, string_to_sign
from llmtail.agent.endpoint import Endpoint, EndpointError, parse_endpoint
from llmtail.agent.engine.stream import Encoded

__all__ = ["Endpoint", "EndpointError", "SlsClient", "SlsError", "parse_endpoint"]

API_VERSION = "0.6.0"
MAX_ANSWER = 64 * 1024  # body bytes read of any answer
_MAX_READ = 2 * MAX_ANSWER  # all bytes read of one answer: status line, headers, body, framing
_SEND_CHUNK = 256 * 1024
_USER_AGENT = f"llmtail/{__version__}"


Compress = Callable[[Encoded], Encoded]
"""An lz4 block of a LogGroup's bytes, without a size prefix (what `x-log-compresstype: lz4`
means to SLS)."""


def python_lz4(raw: Encoded) -> Encoded:
    """python-lz4's block: a fresh buffer per call. With the core, the sink passes the core's
    `lz4_block` instead (the same liblz4, into a kept buffer: agent/engine/corestream.py)."""
    block: bytes = lz4.block.compress(raw, store_size=False)
    return block


class Group(Protocol):
    """What PutLogs sends: an encoded LogGroup (`agent.engine.loggroup.SerializedGroup`, or
    `LogGroupBytes` of separate logs)."""

    def SerializeToString(self) -> Encoded: ...  # noqa: N802 - the protobuf name the SDK uses


@dataclass(frozen=True, slots=True)
class SlsError(Exception):
    """A failed PutLogs. `status` 0 means no usable HTTP response (DNS, refused, reset, timeout,
    an answer too large to be from SLS)."""

    status: int
    code: str
    message: str
    request_id: str = ""

    def __str__(self) -> str:
        where = f"HTTP {self.status}" if self.status else "no response"
        rid = f" (request id {self.request_id})" if self.request_id else ""
        return f"{where} {self.code}: {self.message}{rid}"


class _AnswerTooLargeError(Exception):
    """More than _MAX_READ bytes arrived for one answer."""


class _DeadlineReader(io.RawIOBase):
    """The socket's incoming bytes, each read bounded by the time left and by a byte budget."""

    def __init__(self, sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
        super().__init__()
        self._sock = sock
        self._deadline = deadline
        self._clock = clock
        self._left = _MAX_READ

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        if self._left <= 0:
            raise _AnswerTooLargeError
        _settimeout(self._sock, self._deadline, self._clock)
        view = memoryview(buffer)
        n = self._sock.recv_into(view[: min(len(view), self._left)])
        self._left -= n
        return n


class _Stream:
    """What `http.client.HTTPResponse` reads from (it only calls `makefile`)."""

    def __init__(self, reader: _DeadlineReader) -> None:
        self._reader = reader

    def makefile(self, mode: str) -> io.BufferedReader:
        return io.BufferedReader(self._reader)


def _settimeout(sock: socket.socket, deadline: float, clock: Callable[[], float]) -> None:
    left = deadline - clock()
    if left <= 0:
        raise TimeoutError
    sock.settimeout(left)


class SlsClient:
    """PutLogs of encoded LogGroups to one endpoint; one attempt per call, bounded in time and
    in the bytes it reads. One caller at a time; `abort` and `close` from any thread."""

    def __init__(
        self,
        endpoint: str | Endpoint,
        credentials: CredentialsSource,
        source: str,
        timeout: float,
        compress: bool = True,
        *,
        lz4: Compress | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
    ) -> None:
        """`source` is kept for the seam's sake: SLS takes `__source__` from the LogGroup.
        `lz4` makes the body when `compress`: python-lz4 unless given (the sink gives the
        core's when the agent runs on the core)."""
        self.endpoint = endpoint if isinstance(endpoint, Endpoint) else parse_endpoint(endpoint)
        self._credentials = credentials
        self._timeout = timeout
        self._compress = compress
        self._lz4 = lz4 or python_lz4
        self._clock = clock
        self._wall = wall
        self._tls = ssl.create_default_context() if self.endpoint.scheme == "https" else None
        self._lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._sock_host = ""  # the host the connection was made for (the project is in it)
        self._aborted = False

    def put(self, project: str, logstore: str, group: Group) -> str:
        """Send one LogGroup; returns the request id; raises SlsError or CredentialsError.

        The connection comes first: while the endpoint is unreachable, a retried LogGroup is
        not serialised and compressed again on every attempt (megabytes each, per sender)."""
        path = f"/logstores/{logstore}/shards/lb"
        creds = self._credentials.get()
        host = self.endpoint.request_host(project)
        sent = (path, host, creds.access_key_id, creds.security_token or "")
        if any(c in text for text in sent for c in "\r\n"):
            raise SlsError(0, "InvalidRequest", "a line break in the logstore, project or token")
        deadline = self._clock() + self._timeout
        try:
            sock = self._connection(project, deadline)
            raw = group.SerializeToString()
            body = self._lz4(raw) if self._compress else raw
            headers = self._headers(creds, host, path, len(raw), body)
            del raw  # only its size is sent (a join of pieces is freed before the body goes out)
            self._send(sock, path, headers, body, deadline)
            status, request_id, answer = self._answer(sock, deadline)
        except SlsError:
            self._drop()
            raise
        except TimeoutError:
            self._drop()
            raise SlsError(
                0, "Timeout", f"no complete answer within the request timeout ({self._timeout:g} s)"
            ) from None
        except _AnswerTooLargeError:
            self._drop()
            raise SlsError(
                0, "ResponseTooLarge", f"the answer's head is over {_MAX_READ // 1024} KiB"
            ) from None
        except (OSError, http.client.HTTPException) as exc:
            self._drop()
            if self._aborted:
                raise SlsError(0, "Aborted", "the agent is shutting down") from None
            raise SlsError(0, "ConnectionError", _connection_problem(exc)) from None
        if 200 <= status < 300:
            return request_id
        raise _error(status, answer, request_id)

    def abort(self) -> None:
        """Fail the request in progress now and every later one (shutdown)."""
        with self._lock:
            self._aborted = True
            sock = self._sock
        if sock is not None:
            _shutdown(sock)

    def close(self) -> None:
        self.abort()
        self._drop()

    # -- one request -----------------------------------------------------------------------

    def _headers(
        self, creds: Credentials, host: str, path: str, raw_size: int, body: Encoded
    ) -> dict[str, str]:
        headers = {
            "Host": host,
            "User-Agent": _USER_AGENT,
            "Content-Type": "application/x-protobuf",
            "Content-Length": str(len(body)),
            "x-log-apiversion": API_VERSION,
            "x-log-bodyrawsize": str(raw_size),
            "x-log-signaturemethod": "hmac-sha1",
        }
        if body:
            headers["Content-MD5"] = hashlib.md5(body).hexdigest().upper()
        if self._compress:
            headers["x-log-compresstype"] = "lz4"
        if creds.security_token:
            headers["x-acs-security-token"] = creds.security_token
        headers["Date"] = http_date(self._wall())
        text = string_to_sign("POST", path, {}, headers)
        headers["Authorization"] = (
            f"LOG {creds.access_key_id}:{signature(creds.access_key_secret, text)}"
        )
        headers["x-log-date"] = headers["Date"]  # as the SDK: some proxies drop Date
        return headers

    def _connection(self, project: str, deadline: float) -> socket.socket:
        host = self.endpoint.connect_host(project)
        with self._lock:
            if self._aborted:
                raise SlsError(0, "Aborted", "the agent is shutting down")
            sock = self._sock
        if sock is not None and host == self._sock_host and _reusable(sock):
            return sock
        self._drop()
        left = deadline - self._clock()
        if left <= 0:
            raise TimeoutError
        sock = socket.create_connection((host, self.endpoint.port), timeout=left)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self._lock:
            self._sock, self._sock_host = sock, host
            aborted = self._aborted
        if aborted:  # abort() ran while connecting and could not see this socket
            _shutdown(sock)
        if self._tls is not None:
            _settimeout(sock, deadline, self._clock)
            tls = self._tls.wrap_socket(sock, server_hostname=host)  # handshake: one deadline
            with self._lock:
                self._sock = tls
                aborted = self._aborted
            if aborted:
                _shutdown(tls)
            return tls
        return sock

    def _send(
        self,
        sock: socket.socket,
        path: str,
        headers: dict[str, str],
        body: Encoded,
        deadline: float,
    ) -> None:
        head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        _settimeout(sock, deadline, self._clock)
        sock.sendall(head.encode("latin-1") + b"\r\n")
        view = memoryview(body)  # slices without copies
        for start in range(0, len(view), _SEND_CHUNK):
            _settimeout(sock, deadline, self._clock)
            sock.sendall(view[start : start + _SEND_CHUNK])

    def _answer(self, sock: socket.socket, deadline: float) -> tuple[int, str, bytes]:
        """Status, request id and at most MAX_ANSWER bytes of the body; a longer body is
        abandoned with the connection (SlsError)."""
        response = http.client.HTTPResponse(
            _Stream(_DeadlineReader(sock, deadline, self._clock)),  # type: ignore[arg-type]
            method="POST",
        )
        response.begin()
        request_id = response.getheader("x-log-requestid") or ""
        body = response.read(MAX_ANSWER)
        if not response.isclosed() and response.read(1):
            status = response.status
            raise SlsError(
                0 if 200 <= status < 300 else status,
                "ResponseTooLarge",
                f"HTTP {status} answer over {MAX_ANSWER // 1024} KiB abandoned "
                "(not from SLS? check the endpoint and any proxy)",
                request_id,
            )
        if response.length:  # the connection ended before the announced length
            raise http.client.IncompleteRead(body, response.length)
        if response.will_close:
            self._drop()
        return response.status, request_id, body

    def _drop(self) -> None:
        with self._lock:
            sock, self._sock = self._sock, None
        if sock is not None:
            _shutdown(sock)
            sock.close()


def _reusable(sock: socket.socket) -> bool:
    """False when the server closed the idle connection (or sent something unasked)."""
    poller = select.poll()  # not select(): fds above 1023 are common in a busy agent
    poller.register(sock, select.POLLIN)
    try:
        return not poller.poll(0)
    except OSError:
        return False


def _shutdown(sock: socket.socket) -> None:
    """Wake any thread blocked on the socket; the base method, so TLS state is left alone."""
    with contextlib.suppress(OSError):  # not connected, or already closed
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


def _error(status: int, body: bytes, request_id: str) -> SlsError:
    """An SLS error answer (`{"errorCode", "errorMessage"}`), or what a proxy said instead."""
    try:
        doc = json.loads(body)
        code, message = str(doc["errorCode"]), str(doc.get("errorMessage", ""))
    except (ValueError, TypeError, KeyError):
        text = " ".join(body[:200].decode("utf-8", "replace").split())
        code, message = f"HTTP{status}", text or "no error body"
    return SlsError(status, code, message[:500], request_id)


def _connection_problem(exc: BaseException) -> str:
    """A short reason: DNS failure, refused, reset, or the exception's type and text."""
    if isinstance(exc, socket.gaierror):
        return f"DNS lookup failed ({exc.strerror or 'name or service not known'})"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(
        exc, ConnectionError | http.client.RemoteDisconnected | http.client.BadStatusLine
    ):
        return "connection dropped by the server"
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}"
    text = str(exc) if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
    return text[:300]
