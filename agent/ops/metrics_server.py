"""The metrics listener: `/metrics`, `/status`, `/health`, `/ready`, safe against local abuse.

prometheus_client's own `start_http_server` has no timeouts and no connection cap, so any local
user could hold its threads forever. This server is small and bounded:
- at most `max_connections` connections are served at once, one thread each. When all are
  taken, the connection that has waited longest *without finishing its request* is closed to
  make room (an idle or dripping client never locks a scraper out); when every one is busy
  answering, the newcomer is closed;
- sending the request and taking the answer each have a deadline (`deadline` s) besides the
  socket timeout, so a client that sends or reads one byte every few seconds is cut off too
  (the time spent rendering the page is not the client's and does not count);
- faults (timeouts, half requests, resets, evictions) never print tracebacks: each kind is
  logged once, as one line, and counted in `llmtail_metrics_http_faults_total{kind}`.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import math
import socket
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson
from prometheus_client import Counter
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger(__name__)

StatusFn = Callable[[], Mapping[str, Any]]
ReadyFn = Callable[[], bool]

MAX_CONNECTIONS = 16
DEADLINE = 10.0  # seconds for a whole exchange: request in, answer out
IDLE_TIMEOUT = 5.0  # seconds a socket read or write may wait
FAULT_KINDS = ("timeout", "bad_request", "disconnect", "evicted", "refused", "error")


class MetricsError(Exception):
    """The metrics endpoint cannot start; the message is one line meant for the user."""


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` -> (host, port); MetricsError names what is wrong."""
    host, sep, port_text = listen.rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or not port_text.isdigit() or int(port_text) > 65535:
        raise MetricsError(
            f"metrics.listen {listen!r}: expected host:port, e.g. 127.0.0.1:9631 (port 0: any)"
        )
    return host, int(port_text)


class MetricsServer:
    """Serves the registry and the daemon's status/readiness from a daemon thread."""

    def __init__(
        self,
        registry: CollectorRegistry,
        listen: str,
        status: StatusFn | None = None,
        ready: ReadyFn | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        deadline: float = DEADLINE,
        idle_timeout: float = IDLE_TIMEOUT,
    ) -> None:
        self._registry = registry
        self._listen = listen
        self._status = status
        self._ready = ready
        self._limits = (max_connections, deadline, idle_timeout)
        self._faults = Counter(
            "llmtail_metrics_http_faults",
            "Connections to the metrics listener that ended in a fault, by kind.",
            ("kind",),
            registry=registry,
        )
        for kind in FAULT_KINDS:
            self._faults.labels(kind)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        """The bound host and port (the real port when `listen` asked for port 0)."""
        if self._server is None:
            raise RuntimeError("the metrics server is not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def connections(self) -> int:
        """Connections being served now (bounded by max_connections)."""
        return 0 if self._server is None else self._server.active()

    def start(self) -> None:
        """Bind and serve; raises MetricsError with one line (address in use, bad address)."""
        host, port = parse_listen(self._listen)
        handler = _handler(self._registry, self._status, self._ready)
        max_connections, deadline, idle_timeout = self._limits
        handler.timeout = idle_timeout
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            server = _Server((host, port), handler, family, _Faults(self._faults))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            hint = " (another llmtail running? choose another metrics.listen port, or null)"
            raise MetricsError(
                f"metrics.listen {self._listen}: cannot listen: {reason}"
                + (hint if exc.errno == errno.EADDRINUSE else "")
            ) from None
        server.limit(max_connections, deadline)
        self._server = server
        # Polling 10 times a second lets shutdown return quickly and enforces deadlines.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.1,), name="llmtail-metrics", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        """Stop serving and free the port; idempotent."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.close_all()
            server.server_close()
        if self._thread is not None:
            self._thread.join()
            self._thread = None


class _Faults:
    """One log line per kind of fault for the life of the server; every one counted."""

    def __init__(self, counter: Counter) -> None:
        self._counter = counter
        self._logged: set[str] = set()
        self._lock = threading.Lock()

    def note(self, kind: str, detail: str) -> None:
        self._counter.labels(kind).inc()
        with self._lock:
            if kind in self._logged:
                return
            self._logged.add(kind)
        log.warning(
            "metrics endpoint: a client %s; further ones are counted in "
            'llmtail_metrics_http_faults_total{kind="%s"}',
            detail,
            kind,
        )


class _Conn:
    __slots__ = ("busy", "deadline", "expired", "sock")

    def __init__(self, sock: socket.socket, deadline: float) -> None:
        self.sock = sock
        self.deadline = deadline
        self.busy = False  # the request has been read; answering it
        self.expired = False  # closed by the server (deadline or eviction)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # a burst of connections waits in the kernel, not refused

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        family: socket.AddressFamily,
        faults: _Faults,
    ) -> None:
        self.address_family = family
        self.faults = faults
        self._conns: OrderedDict[socket.socket, _Conn] = OrderedDict()
        self._lock = threading.Lock()
        self._max = MAX_CONNECTIONS
        self._deadline = DEADLINE
        super().__init__(address, handler)

    def limit(self, max_connections: int, deadline: float) -> None:
        self._max, self._deadline = max_connections, deadline

    def active(self) -> int:
        with self._lock:
            return len(self._conns)

    def conn(self, sock: socket.socket) -> _Conn | None:
        with self._lock:
            return self._conns.get(sock)

    def process_request(self, request: Any, client_address: Any) -> None:
        """Admit the connection (evicting the oldest unfinished one if full) or close it."""
        victim: _Conn | None = None
        with self._lock:
            if len(self._conns) >= self._max:
                victim = next((c for c in self._conns.values() if not c.busy), None)
                if victim is None:
                    self.faults.note("refused", "was refused: every connection slot is answering")
                    self.shutdown_request(request)
                    return
                victim.expired = True
                del self._conns[victim.sock]
            self._conns[request] = _Conn(request, time.monotonic() + self._deadline)
        if victim is not None:
            self.faults.note("evicted", "held a connection without finishing its request")
            _cut(victim.sock)
        super().process_request(request, client_address)

    def rearm(self, sock: socket.socket) -> None:
        with self._lock:
            conn = self._conns.get(sock)
            if conn is not None:
                conn.deadline = time.monotonic() + self._deadline

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._conns.pop(request, None)

    def service_actions(self) -> None:
        """Called by serve_forever between polls: cut connections past their deadline."""
        now = time.monotonic()
        with self._lock:
            late = [c for c in self._conns.values() if c.deadline <= now and not c.expired]
            for c in late:
                c.expired = True
        for c in late:
            self.faults.note("timeout", "took longer than the deadline and was cut off")
            _cut(c.sock)

    def close_all(self) -> None:
        with self._lock:
            conns = list(self._conns.values())
            for c in conns:
                c.expired = True
        for c in conns:
            _cut(c.sock)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A fault while serving: one quiet line per kind, never a traceback."""
        conn = self.conn(request)
        if conn is not None and conn.expired:
            return  # already noted when it was cut
        self.faults.note("disconnect", "went away in the middle of an exchange")


def _cut(sock: socket.socket) -> None:
    """Wake the thread blocked on this socket: its read or write fails at once."""
    with contextlib.suppress(OSError):  # already closed by its thread
        sock.shutdown(socket.SHUT_RDWR)


def _handler(
    registry: CollectorRegistry, status: StatusFn | None, ready: ReadyFn | None
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "llmtail"
        server: _Server

        def parse_request(self) -> bool:
            ok = super().parse_request()
            conn = self.server.conn(self.request)
            if ok and conn is not None:
                conn.busy = True  # no longer a candidate for eviction
                conn.deadline = math.inf  # rendering is ours: only the client's part is timed
            return ok

        def do_GET(self) -> None:
            self._answer(head=False)

        def do_HEAD(self) -> None:
            self._answer(head=True)

        def _answer(self, head: bool) -> None:
            path = self.path.split("?", 1)[0]
            text = "text/plain; charset=utf-8"
            try:
                if path == "/metrics":
                    encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                    self._reply(200, content_type, encoder(registry), head)
                elif path == "/status" and status is not None:
                    self._reply(200, "application/json", orjson.dumps(dict(status())), head)
                elif path == "/health":
                    self._reply(200, text, b"ok\n", head)
                elif path == "/ready":
                    if ready is None or ready():
                        self._reply(200, text, b"ready\n", head)
                    else:
                        self._reply(503, text, b"not ready: output not delivering\n", head)
                else:
                    body = b"not found: try /metrics, /status, /health or /ready\n"
                    self._reply(404, text, body, head)
            except OSError:
                raise  # the client went away: handle_error notes it quietly
            except Exception:
                log.exception("metrics endpoint: cannot answer %s", path)
                self._reply(500, text, b"internal error, see agent log\n", head)

        def _reply(self, code: int, content_type: str, body: bytes, head: bool) -> None:
            self.server.rearm(self.request)  # the client now has `deadline` to take the answer
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head:
                self.wfile.write(body)

        def send_error(
            self, code: int, message: str | None = None, explain: str | None = None
        ) -> None:
            conn = self.server.conn(self.request)
            if conn is not None and conn.expired:
                return  # cut by the server: nobody is listening for the answer
            if code == 408:
                self.server.faults.note("timeout", "was idle past the socket timeout")
            else:
                self.server.faults.note("bad_request", f"sent a malformed request ({code})")
            super().send_error(code, message, explain)

        def log_error(self, format: str, *args: Any) -> None:
            """http.server reports timeouts here; note them as faults, quietly."""
            if format.startswith("Request timed out"):
                conn = self.server.conn(self.request)
                if conn is None or not conn.expired:
                    self.server.faults.note("timeout", "was idle past the socket timeout")

        def log_message(self, format: str, *args: Any) -> None:
            """Scrapes are routine: keep them out of the agent's log."""

    return Handler
