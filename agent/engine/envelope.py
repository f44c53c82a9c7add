"""What a LogGroup carries besides its logs: topic, source and tags, and the `__pack_id__`.

Shared by every output so that the file output holds exactly what SLS would receive. The
`__pack_id__` tag lets the SLS console browse a record's context: a prefix stable per source
file and a sequence incremented per LogGroup, both in upper hex. A Stream seals its batches in
file order, so it numbers them itself; `PackIds` carries a file's next number over to the next
Stream of the same file (after a truncation or a reload). The prefix changes with every start of
the agent, so a restart never reuses a pack id.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import socket
import threading
from dataclasses import dataclass


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


class PackIds:
    """Per-process `__pack_id__` prefixes and the next sequence of each file."""

    def __init__(self, hostname: str | None = None) -> None:
        self.hostname = hostname if hostname is not None else socket.gethostname()
        self._salt = os.urandom(8).hex()  # a new prefix per start: pack ids are never reused
        self._next: dict[str, int] = {}
        self._lock = threading.Lock()

    def prefix(self, key: str) -> str:
        digest = hashlib.md5(
            f"{self.hostname}\0{self._salt}\0{key}".encode(), usedforsecurity=False
        )
        return digest.hexdigest()[:16].upper()

    def next_seq(self, key: str) -> int:
        with self._lock:
            return self._next.get(key, 0)

    def remember(self, key: str, seq: int) -> None:
        """The file's next unused sequence (a Stream of it ended or was replaced)."""
        with self._lock:
            self._next[key] = max(seq, self._next.get(key, 0))

    def forget(self, key: str) -> None:
        with self._lock:
            self._next.pop(key, None)
