"""A misbehaving HTTP server on 127.0.0.1, for the SLS client's bounds.

It reads each request whole (head and `Content-Length` body), then answers as its `mode` says:

- `huge`: a status line, `Content-Length: body_size` (or none, with `chunked`) and that many
  bytes, written as fast as the client takes them, until the client hangs up;
- `drip`: a 200 head announcing 1 MiB, then one byte every `drip_interval` seconds, for ever;
- `cut`: a 200 head announcing 100 bytes, 10 of them, and the end of the connection;
- `ok`: the answer SLS gives (200, empty body, `x-log-requestid`).

It counts requests and the bytes it managed to write, so tests can tell that a client abandoned
an answer instead of reading it.
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
from dataclasses import dataclass, field

_BLOCK = memoryview(bytes(1024 * 1024))  # sliced without copies: the tests trace memory


@dataclass
class HostileServer:
    mode: str = "ok"
    status: int = 200
    body_size: int = 1024**3
    chunked: bool = False
    drip_interval: float = 1.0
    requests: int = 0
    bytes_written: list[int] = field(default_factory=list)  # per answer, once it ended
    port: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _listener: socket.socket | None = None
    _conns: list[socket.socket] = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> HostileServer:
        listener = socket.create_server(("127.0.0.1", 0))
        self._listener = listener
        self.port = listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True, name="hostile-accept").start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            conns = list(self._conns)
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)
            conn.close()

    def answered(self) -> list[int]:
        with self._lock:
            return list(self.bytes_written)

    def __enter__(self) -> HostileServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving ---------------------------------------------------------------------------

    def _accept(self) -> None:
        assert self._listener is not None
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        try:
            while not self._stop.is_set():
                length = self._read_request(reader)
                if length is None:
                    return
                reader.read(length)
                with self._lock:
                    self.requests += 1
                self._answer(conn)
        except OSError:
            return
        finally:
            reader.close()
            conn.close()

    @staticmethod
    def _read_request(reader: io.BufferedReader) -> int | None:
        length = 0
        first = True
        while True:
            line = reader.readline(65536)
            if not line:
                return None
            if line in (b"\r\n", b"\n"):
                return length if not first else None
            first = False
            name, _, value = line.decode("latin-1").partition(":")
            if name.strip().lower() == "content-length":
                length = int(value.strip())

    def _answer(self, conn: socket.socket) -> None:
        if self.mode == "ok":
            conn.sendall(b"HTTP/1.1 200 OK\r\nx-log-requestid: ok-1\r\nContent-Length: 0\r\n\r\n")
            return
        if self.mode == "cut":  # announces 100 bytes, sends 10, hangs up
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
            conn.shutdown(socket.SHUT_WR)
            return
        if self.mode == "drip":
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 1048576\r\n\r\n")
            while not self._stop.wait(self.drip_interval):
                conn.sendall(b"x")
            return
        head = f"HTTP/1.1 {self.status} Hostile\r\nx-log-requestid: hostile-1\r\n"
        head += (
            "Transfer-Encoding: chunked\r\n"
            if self.chunked
            else (f"Content-Length: {self.body_size}\r\n")
        )
        conn.sendall(head.encode() + b"\r\n")
        written = 0
        try:
            while written < self.body_size and not self._stop.is_set():
                block = _BLOCK[: min(len(_BLOCK), self.body_size - written)]  # no copy
                if self.chunked:
                    conn.sendall(f"{len(block):x}\r\n".encode())
                conn.sendall(block)
                if self.chunked:
                    conn.sendall(b"\r\n")
                written += len(block)
        finally:
            with self._lock:
                self.bytes_written.append(written)
