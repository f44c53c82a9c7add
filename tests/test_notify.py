"""sd_notify messages reach a real AF_UNIX datagram socket, as systemd's would."""

from __future__ import annotations

import os
import socket
import struct
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.notify import Notifier


class FakeManager:
    """The receiving end of NOTIFY_SOCKET, with the sender's pid as systemd sees it."""

    def __init__(self, sock: socket.socket, env_value: str) -> None:
        self.sock = sock
        self.env_value = env_value

    def receive(self) -> tuple[dict[str, str], int]:
        data, ancdata, _flags, _addr = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = -1
        for level, kind, blob in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid, _uid, _gid = struct.unpack("3i", blob[:12])
        fields = dict(line.split("=", 1) for line in data.decode().split("\n"))
        return fields, pid

    def receive_all(self) -> list[dict[str, str]]:
        messages = []
        self.sock.settimeout(0.2)
        while True:
            try:
                messages.append(self.receive()[0])
            except TimeoutError:
                return messages


def _manager(address: str, env_value: str) -> Iterator[FakeManager]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
    sock.bind(address)
    sock.settimeout(5)
    try:
        yield FakeManager(sock, env_value)
    finally:
        sock.close()


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[FakeManager]:
    path = str(tmp_path / "notify")
    yield from _manager(path, path)


@pytest.fixture
def abstract_manager() -> Iterator[FakeManager]:
    name = f"llmtail-test-{uuid.uuid4().hex}"
    yield from _manager("\0" + name, "@" + name)


def test_ready_and_status_arrive_in_one_datagram(manager: FakeManager) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": manager.env_value})

    assert notifier.ready("watching 3 files")

    fields, pid = manager.receive()
    assert fields == {"READY": "1", "STATUS": "watching 3 files"}
    assert pid == os.getpid()


def test_abstract_namespace_socket_receives_messages(abstract_manager: FakeManager) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": abstract_manager.env_value})

    assert notifier.stopping("draining")

    fields, _pid = abstract_manager.receive()
    assert fields == {"STOPPING": "1", "STATUS": "draining"}


def test_reload_announces_itself_with_a_monotonic_timestamp(manager: FakeManager) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": manager.env_value})
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    notifier.reloading()
    notifier.ready()

    reloading, _ = manager.receive()
    ready, _ = manager.receive()
    assert reloading["RELOADING"] == "1"
    assert int(reloading["MONOTONIC_USEC"]) >= before
    assert ready == {"READY": "1"}


def test_a_status_with_newlines_cannot_inject_other_assignments(manager: FakeManager) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": manager.env_value})

    notifier.status("tailing /var/log/evil\nREADY=1\nWATCHDOG=trigger")

    fields, _ = manager.receive()
    assert set(fields) == {"STATUS"}
    assert "\n" not in fields["STATUS"]


def test_watchdog_pings_at_half_the_interval(manager: FakeManager) -> None:
    env = {"NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "60000000"}
    notifier = Notifier.from_environment(env)
    assert notifier.watchdog_interval == 30.0

    sent = [notifier.ping_if_due(t) for t in (100.0, 110.0, 129.9, 130.0, 131.0, 160.0)]

    assert sent == [True, False, False, True, False, True]
    assert manager.receive_all() == [{"WATCHDOG": "1"}] * 3


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "10000000"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "4242"}, 5.0),
        ({"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": "1"}, None),  # another process's
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_follows_sd_watchdog_enabled(
    env: dict[str, str], expected: float | None
) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": "/run/x", **env}, pid=4242)
    assert notifier.watchdog_interval == expected


def test_outside_systemd_every_call_is_a_quiet_no_op() -> None:
    notifier = Notifier.from_environment({})

    assert not notifier.enabled
    assert not notifier.ready("x")
    assert not notifier.ping_if_due(0.0)


def test_a_vanished_manager_does_not_raise(tmp_path: Path) -> None:
    notifier = Notifier.from_environment({"NOTIFY_SOCKET": str(tmp_path / "gone")})

    assert notifier.enabled
    assert not notifier.status("still running")


def test_a_real_process_notifies_from_its_own_pid(manager: FakeManager) -> None:
    script = (
        "import time\n"
        "from agent.notify import Notifier\n"
        "n = Notifier.from_environment()\n"
        "n.ready('watching 1 file')\n"
        "for t in (0.0, 0.5, 1.0):\n"
        "    n.ping_if_due(t)\n"
        "n.stopping()\n"
    )
    env = {
        **os.environ,
        "NOTIFY_SOCKET": manager.env_value,
        "WATCHDOG_USEC": "2000000",
    }
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    try:
        received = [manager.receive() for _ in range(4)]
    finally:
        assert proc.wait(timeout=10) == 0

    assert [fields for fields, _ in received] == [
        {"READY": "1", "STATUS": "watching 1 file"},
        {"WATCHDOG": "1"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1"},
    ]
    # NotifyAccess=main: systemd accepts these only because they come from the main pid.
    assert {pid for _, pid in received} == {proc.pid}
