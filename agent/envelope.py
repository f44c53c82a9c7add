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
import ipaddress
import os
import socket
import threading
from dataclasses import dataclass

from agent.events import Batch


@dataclass(frozen=True, slots=True)
class Envelope:
    topic: str
    source: str
    tags: tuple[tuple[str, str], ...]


def host_ip(probes: tuple[str, ...] = ("223.5.5.5", "2400:3200::1")) -> str:
    """The address of the interface that routes outward: Logtail's default `__source__`.

    Many hosts map their own name to 127.0.0.1 or 127.0.1.1 in /etc/hosts, so the name's
    address would tag every host's logs alike. Connecting a UDP socket to a public address
    (AliDNS here) sends nothing: the kernel only picks the route and its source address. On a
    host without such a route, the name's address when it is not loopback; else 127.0.0.1.
    """
    for probe in probes:
        family = socket.AF_INET6 if ":" in probe else socket.AF_INET
        try:
            with socket.socket(family, socket.SOCK_DGRAM) as s:
                s.connect((probe, 53))
                address = str(s.getsockname()[0])
        except OSError:
            continue  # no route in this family
        ip = ipaddress.ip_address(address)
        if not (ip.is_loopback or ip.is_unspecified or ip.is_link_local):
            return address
    try:
        address = socket.gethostbyname(socket.gethostname())
    except OSError:
        return "127.0.0.1"
    return "127.0.0.1" if ipaddress.ip_address(address).is_loopback else address


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
