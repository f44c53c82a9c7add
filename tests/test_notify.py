"""sd_notify messages reach a real AF_UNIX datagram socket, as systemd's would."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from llmtail.agent.ops.notify import Notifier


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
    sock.settimeout(30)  # generous: a loaded CI machine starts Python slowly
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
        "from llmtail.agent.ops.notify import Notifier\n"
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


# -- the real daemon under a fake manager ----------------------------------------------------

LINE = (
    "2025-07-09 14:23:24.748 INFO  [traceId:] [c.a.c.s.i.ChatServiceImpl#chat():42] [main] - {}\n"
)


class _Inbox:
    """Collects every notification of a running process on a background thread."""

    def __init__(self, manager: FakeManager) -> None:
        self.messages: list[dict[str, str]] = []
        self._manager = manager
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        self._manager.sock.settimeout(None)
        while True:
            try:
                fields, _pid = self._manager.receive()
            except OSError:
                return
            with self._changed:
                self.messages.append(fields)
                self._changed.notify_all()

    def wait_for(self, key: str, after: int = 0, count: int = 1, timeout: float = 20) -> int:
        """Index just past the `count`-th message carrying `key` at or after index `after`."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                hits = [i for i, m in enumerate(self.messages) if i >= after and key in m]
                if len(hits) >= count:
                    return hits[count - 1] + 1
                left = deadline - time.monotonic()
                assert left > 0, f"no {key} after message {after}; got {self.messages}"
                self._changed.wait(left)


def _wait_for_text(path: Path, text: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never reached {path}")


def _write_config(path: Path, tmp: Path, globs: list[str], extra: str = "") -> None:
    path.write_text(
        f"inputs:\n  - paths: {globs!r}\n    start_at: beginning\n"
        f"output: {{type: file, path: {str(tmp / 'out.ndjson')!r}}}\n"
        f"state_dir: {str(tmp / 'state')!r}\n"
        "metrics: {listen: null}\n"
        "tail: {poll_interval: 0.05, multiline_flush: 0.1}\n"
        "batch: {linger: 0.05}\n" + extra
    )


@pytest.mark.slow
def test_the_daemon_reports_ready_pings_reloads_and_stops(
    manager: FakeManager, tmp_path: Path
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "a.log").write_text(LINE.format("first-a"))
    config, out = tmp_path / "config.yaml", tmp_path / "out.ndjson"
    _write_config(config, tmp_path, [str(logs / "a*.log")])
    env = {**os.environ, "NOTIFY_SOCKET": manager.env_value, "WATCHDOG_USEC": "400000"}
    inbox = _Inbox(manager)
    stderr = (tmp_path / "stderr").open("w+")
    proc = subprocess.Popen(
        [sys.executable, "-m", "llmtail", "run", "-c", str(config)],
        env=env,
        stderr=stderr,
    )
    try:
        ready = inbox.wait_for("READY")
        assert "STATUS" in inbox.messages[ready - 1], "READY comes with a status line"
        _wait_for_text(out, "first-a")
        inbox.wait_for("WATCHDOG", after=ready, count=3)  # every 0.2 s from the main loop

        # SIGHUP with a new input: the reload is announced and the new file is followed.
        _write_config(config, tmp_path, [str(logs / "a*.log"), str(logs / "b*.log")])
        (logs / "b.log").write_text(LINE.format("first-b"))
        proc.send_signal(signal.SIGHUP)
        reloaded = inbox.wait_for("RELOADING", after=ready)
        ready = inbox.wait_for("READY", after=reloaded)
        _wait_for_text(out, "first-b")

        # SIGHUP with a broken config: refused, and the running config keeps working.
        config.write_text(config.read_text() + "surprise: 1\n")
        proc.send_signal(signal.SIGHUP)
        refused = inbox.wait_for("RELOADING", after=ready)
        ready = inbox.wait_for("READY", after=refused)
        with (logs / "b.log").open("a") as f:
            f.write(LINE.format("second-b"))
        _wait_for_text(out, "second-b")
        assert proc.poll() is None

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        inbox.wait_for("STOPPING", after=ready)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr.seek(0)
    log = stderr.read()
    stderr.close()
    assert "reload refused" in log and "surprise" in log, log
