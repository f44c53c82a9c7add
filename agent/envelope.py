"""What a LogGroup carries besides its logs: topic, source and tags.

Shared by every output so that the file output holds exactly what SLS would receive. The
`__pack_id__` tag lets the SLS console browse a record's context: a prefix stable per source file
and a sequence incremented per LogGroup, both in upper hex.
"""

from __future__ import annotations

import hashlib
import socket
import threading
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: str
    source: str
    tags: tuple[tuple[str, str], ...]


def host_ip() -> str:
    """The host's address as its own name resolves, like Logtail's default `__source__`."""
    try:
        return socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"


class EnvelopeMaker:
    """Builds one Envelope per LogGroup; thread-safe because senders run concurrently."""

    def __init__(
        self,
        topic: str = "",
        source: str | None = None,
        tags: dict[str, str] | None = None,
        hostname: str | None = None,
    ) -> None:
        self._topic = topic
        self._source = source if source is not None else host_ip()
        self._hostname = hostname if hostname is not None else socket.gethostname()
        self._user_tags = tuple((tags or {}).items())
        self._seq: dict[str, int] = {}
        self._lock = threading.Lock()

    def make(self, source_key: str, path: str) -> Envelope:
        """The envelope for the next LogGroup cut from the file identified by `source_key`."""
        with self._lock:
            seq = self._seq.get(source_key, 0)
            self._seq[source_key] = seq + 1
        prefix = (
            hashlib.md5(f"{self._hostname}\0{source_key}".encode(), usedforsecurity=False)
            .hexdigest()[:16]
            .upper()
        )
        tags = (
            ("__hostname__", self._hostname),
            ("__path__", path),
            ("__pack_id__", f"{prefix}-{seq:X}"),
            *self._user_tags,
        )
        return Envelope(topic=self._topic, source=self._source, tags=tags)
