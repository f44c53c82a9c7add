"""What a LogGroup carries besides its logs: topic, source and tags.

Shared by every output so that the file output holds exactly what SLS would receive. The
`__pack_id__` tag lets the SLS console browse a record's context: a prefix stable per source
file and a sequence incremented per LogGroup, both in upper hex. The sequence must follow the
file's order, so it is reserved when a batch is handed over (`assign`, on the reading thread),
not when a sender thread gets to it; the prefix changes with every start of the agent, so a
restart never reuses a pack id.
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
from dataclasses import dataclass

from agent.engine.events import Batch


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
        self._salt = os.urandom(8).hex()  # a new prefix per start: pack ids are never reused

    def assign(self, batch: Batch) -> None:
        """Reserve the batch's sequence in file order; call in the order batches are cut."""
        if batch.events:
            batch.pack_seq = self._next(batch.events[0].source)

    def make(self, source_key: str, path: str, seq: int | None = None) -> Envelope:
        """The envelope of one LogGroup of the file `source_key`: with the `seq` that `assign`
        reserved, or the file's next one (a LogGroup split off a batch, validate's records)."""
        if seq is None:
            seq = self._next(source_key)
        prefix = (
            hashlib.md5(
                f"{self._hostname}\0{self._salt}\0{source_key}".encode(), usedforsecurity=False
            )
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

    def _next(self, source_key: str) -> int:
        with self._lock:
            seq = self._seq.get(source_key, 0)
            self._seq[source_key] = seq + 1
        return seq
