"""`__source__` by default: the address of the interface that routes outward, even on hosts
whose /etc/hosts maps their own name to loopback."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

import pytest

from llmtail.agent.config import Config
from llmtail.agent.engine.envelope import host_ip
from llmtail.agent.modes.pipeline import build_engine


def has_default_route() -> bool:
    """Whether the kernel has an IPv4 default route (read from /proc, not from a socket)."""
    try:
        rows = Path("/proc/net/route").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(row.split()[1] == "00000000" for row in rows if len(row.split()) > 1)


def is_local_address(address: str) -> bool:
    """Only an address of one of this host's interfaces can be bound."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.bind((address, 0))
        except OSError:
            return False
    return True


@pytest.mark.skipif(not has_default_route(), reason="this host has no default route")
def test_a_hostname_mapped_to_loopback_does_not_make_the_source_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Debian's installer writes "127.0.1.1 HOSTNAME" into /etc/hosts; containers often
    # write 127.0.0.1. Either way the name's address says nothing about the host.
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "127.0.1.1")
    address = host_ip()
    assert not ipaddress.ip_address(address).is_loopback
    assert is_local_address(address)
    assert build_engine(Config()).settings[0].source == address  # what every batch carries


def test_without_a_route_the_names_address_is_used_unless_it_is_loopback(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "10.1.2.3")
    assert host_ip(probes=()) == "10.1.2.3"
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "127.0.1.1")
    assert host_ip(probes=()) == "127.0.0.1"

    def unknown(name: str) -> str:
        raise socket.gaierror("name or service not known")

    monkeypatch.setattr(socket, "gethostbyname", unknown)
    assert host_ip(probes=()) == "127.0.0.1"


def test_a_probe_without_a_route_falls_through_to_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(socket, "gethostbyname", lambda name: "10.1.2.3")
    # 0.0.0.0 and the IPv4 broadcast address cannot be connected to for a route.
    assert host_ip(probes=("255.255.255.255",)) == "10.1.2.3"
