"""systemd/llmtail.service: valid, hardened (exposure <= 2.5), and livable for the agent.

The sandbox is only worth having if the agent still works inside it, so besides systemd's own
checks these tests run a workload shaped like the agent's (lz4, orjson, regex, pydantic, yaml,
watchdog's inotify, TLS setup, sockets, threads, durable checkpoint writes) under the kernel's
MemoryDenyWriteExecute and compare the system calls it makes with the unit's filter.
"""

from __future__ import annotations

import ctypes
import errno
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmtail.agent.config import Config

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "systemd" / "llmtail.service"
MAX_EXPOSURE = 2.5

# Output of `systemd-analyze verify` that is understood and harmless, with the reason.
EXPLAINED_VERIFY_OUTPUT: dict[str, str] = {
    # Containers without systemd as PID 1 have no /run/systemd/system: verify still parses.
    r"^System has not been booted with systemd": "no running manager in the test container",
}

needs_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None,
    reason="systemd-analyze not installed (apt-get install systemd); CI installs it",
)


def _directives(text: str) -> dict[str, list[str]]:
    """Every `Key=Value` of the unit, in order; repeated keys accumulate like systemd's."""
    found: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        found.setdefault(key.strip(), []).append(value.strip())
    return found


def _seconds(value: str) -> float:
    units = {"ms": 0.001, "s": 1, "min": 60, "m": 60, "h": 3600}
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        total += float(number) * units.get(unit or "s", 1)
    return total


@pytest.fixture
def testable_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointed at an executable that exists on this machine."""
    binary = tmp_path / "llmtail"
    binary.write_text("#!/bin/sh\nexit 0\n")
    binary.chmod(0o755)
    text = UNIT.read_text()
    text, count = re.subn(
        r"^ExecStart=/opt/llmtail/venv/bin/llmtail ", f"ExecStart={binary} ", text, flags=re.M
    )
    assert count == 1, "ExecStart no longer starts the venv's llmtail: update this test"
    unit = tmp_path / "llmtail.service"
    unit.write_text(text)
    return unit


@needs_analyze
def test_systemd_analyze_verify_accepts_the_unit(testable_unit: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "verify", str(testable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    unexplained = [
        line
        for line in (proc.stdout + proc.stderr).splitlines()
        if line.strip() and not any(re.search(p, line) for p in EXPLAINED_VERIFY_OUTPUT)
    ]
    assert proc.returncode == 0, proc.stderr
    assert unexplained == [], "systemd-analyze verify warned:\n" + "\n".join(unexplained)


@needs_analyze
def test_security_exposure_is_at_most_2_5(testable_unit: Path) -> None:
    proc = subprocess.run(
        ["systemd-analyze", "security", "--offline=true", "--no-pager", str(testable_unit)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+(?:\.\d+)?)", proc.stdout)
    assert match, f"no exposure score in:\n{proc.stdout}\n{proc.stderr}"
    score = float(match[1])
    print(f"systemd-analyze security --offline=true: exposure {score} (limit {MAX_EXPOSURE})")
    assert score <= MAX_EXPOSURE, proc.stdout


def test_unit_speaks_the_agents_protocol_and_outwaits_its_shutdown() -> None:
    unit = _directives(UNIT.read_text())

    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    assert unit["User"] == ["llmtail"]
    assert unit["StateDirectory"] == ["llmtail"]
    assert unit["ExecStart"] == ["/opt/llmtail/venv/bin/llmtail run -c /etc/llmtail/config.yaml"]
    # The agent drains for at most shutdown_timeout; systemd must not SIGKILL it first.
    assert _seconds(unit["TimeoutStopSec"][0]) >= Config().shutdown_timeout + 10
    # Pings come every WatchdogSec/2 from a loop that polls every tail.poll_interval.
    assert _seconds(unit["WatchdogSec"][0]) / 2 > 10 * Config().tail.poll_interval
    assert unit["CapabilityBoundingSet"] == [""]


# A workload shaped like the agent's, run in a child so its sandbox does not leak into pytest.
WORKLOAD = r"""
import ctypes, mmap, os, queue, socket, ssl, sys, threading, time
if sys.argv[1] == "mdwe":
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
        sys.exit(3)
import lz4.block, orjson, regex, yaml
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer
from aliyun.log import LogClient
from llmtail.agent.state.checkpoint import Checkpointer, SavedPosition
from llmtail.agent.config import parse_config
from llmtail.agent.ops.logsetup import setup_logging

work = sys.argv[2]
setup_logging("info")
cfg = parse_config(yaml.safe_load("inputs: [{paths: ['/var/log/app/*.log']}]\nstate_dir: " + work))
body = orjson.dumps({"level": "INFO", "message": "x" * 1000})
assert lz4.block.decompress(lz4.block.compress(body)) == body
assert regex.match(r"(?P<d>\d{4}-\d\d-\d\d) (?P<l>\w+)", "2025-07-09 INFO")["l"] == "INFO"
ssl.create_default_context()
socket.getaddrinfo("localhost", 443, 0, socket.SOCK_STREAM)

seen = threading.Event()
class Handler(FileSystemEventHandler):
    def on_created(self, event):
        seen.set()
observer = Observer()
observer.schedule(Handler(), work)
observer.start()
with open(os.path.join(work, "app.log"), "w") as f:
    f.write("line\n")
assert seen.wait(5), "inotify event never arrived"
observer.stop(); observer.join()

q = queue.Queue(maxsize=2)
sender = threading.Thread(target=lambda: q.put(orjson.loads(body)))
sender.start(); sender.join()
Checkpointer(work).save({"k": SavedPosition("k", "/var/log/app/a.log", 5)})
server = socket.socket(); server.bind(("127.0.0.1", 0)); server.listen()
client = socket.create_connection(server.getsockname()); client.sendall(body); client.close()
server.close()
LogClient("127.0.0.1:1", "id", "secret", source="127.0.0.1")

if sys.argv[1] == "mdwe":
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        sys.exit(4)
    except PermissionError:
        pass
print("workload ok")
"""


# `llmtail run` itself, optionally under the kernel's MDWE, as the unit would start it.
DAEMON = (
    "import ctypes, sys\n"
    "if sys.argv.pop(1) == 'mdwe':\n"
    "    assert ctypes.CDLL(None).prctl(65, 1, 0, 0, 0) == 0, 'PR_SET_MDWE failed'\n"
    "from llmtail.agent.cli import main\n"
    "main()\n"
)
LINE = "2025-07-09 14:23:24.748 INFO  [traceId:] [c.a.Chat#chat():42] [main] - hello-sandbox\n"


def _ship_a_line_with_the_daemon(tmp_path: Path, prefix: list[str], mode: str) -> None:
    """`llmtail run` follows a file into the file output, checkpoints, and stops on SIGTERM."""
    logs, state, out = tmp_path / "logs", tmp_path / "state", tmp_path / "out.ndjson"
    logs.mkdir()
    (logs / "app.log").write_text(LINE)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"inputs: [{{paths: [{str(logs / '*.log')!r}], start_at: beginning}}]\n"
        f"output: {{type: file, path: {str(out)!r}}}\n"
        f"state_dir: {str(state)!r}\n"
        "metrics: {listen: '127.0.0.1:0'}\n"
        "tail: {poll_interval: 0.05, multiline_flush: 0.1}\n"
        "batch: {linger: 0.05}\n"
    )
    stderr = tmp_path / "stderr"
    with stderr.open("w") as err:
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-c", DAEMON, mode, "run", "-c", str(config)], stderr=err
        )
    try:
        deadline = time.monotonic() + 30
        while not (out.exists() and "hello-sandbox" in out.read_text()):
            assert proc.poll() is None, stderr.read_text()
            assert time.monotonic() < deadline, "the line was never shipped"
            time.sleep(0.05)
        while not (state / "checkpoints.json").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        # Signal the agent itself (under strace, proc is the tracer): its pid is in the lock.
        os.kill(int((state / "lock").read_text()), signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert code == 0, stderr.read_text()


def _mdwe_supported() -> bool:
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(66, 0, 0, 0, 0) >= 0 or ctypes.get_errno() != errno.EINVAL


def test_the_agents_libraries_work_under_memory_deny_write_execute(tmp_path: Path) -> None:
    """MemoryDenyWriteExecute=yes: no JIT, no executable stack in any extension we load.

    The workload covers the SLS path (SDK, TLS) that a file-output daemon run does not.
    """
    if not _mdwe_supported():
        pytest.skip("kernel lacks PR_SET_MDWE (Linux >= 6.3): cannot emulate the setting")
    proc = subprocess.run(
        [sys.executable, "-c", WORKLOAD, "mdwe", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode != 4, "W+X mapping was allowed: MDWE was not in force"
    assert (proc.returncode, proc.stdout.strip()) == (0, "workload ok"), proc.stderr
    _ship_a_line_with_the_daemon(tmp_path, [], "mdwe")


def _syscall_groups() -> dict[str, list[str]]:
    listing = subprocess.run(
        ["systemd-analyze", "syscall-filter", "--no-pager"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    groups: dict[str, list[str]] = {}
    current: list[str] = []
    for line in listing.splitlines():
        if line.startswith("@"):
            current = groups.setdefault(line.strip(), [])
        elif line.strip() and not line.strip().startswith("#") and line[0].isspace():
            current.append(line.strip())
    return groups


def _expand(name: str, groups: dict[str, list[str]]) -> set[str]:
    calls: set[str] = set()
    for member in groups.get(name, []):
        calls |= _expand(member, groups) if member.startswith("@") else {member}
    return calls


def _filter_of_unit(groups: dict[str, list[str]]) -> set[str]:
    allowed: set[str] = set()
    for value in _directives(UNIT.read_text())["SystemCallFilter"]:
        deny = value.startswith("~")
        names: set[str] = set()
        for item in value.removeprefix("~").split():
            names |= _expand(item, groups) if item.startswith("@") else {item}
        allowed = allowed - names if deny else allowed | names
    return allowed


@needs_analyze
@pytest.mark.skipif(shutil.which("strace") is None, reason="strace not installed")
def test_the_agents_system_calls_and_sockets_pass_the_units_filters(tmp_path: Path) -> None:
    """SystemCallFilter= and RestrictAddressFamilies=: anything outside fails in production."""
    trace = tmp_path / "strace.txt"
    work = tmp_path / "work"
    work.mkdir()
    proc = subprocess.run(
        ["strace", "-f", "-qq", "-o", str(trace), sys.executable, "-c", WORKLOAD, "-", str(work)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if proc.returncode != 0 and "ptrace" in proc.stderr:
        pytest.skip(f"strace cannot trace here: {proc.stderr.strip()}")
    assert proc.returncode == 0, proc.stderr
    daemon_trace = tmp_path / "daemon-strace.txt"
    _ship_a_line_with_the_daemon(tmp_path, ["strace", "-f", "-qq", "-o", str(daemon_trace)], "-")
    text = trace.read_text() + daemon_trace.read_text()
    used = set(re.findall(r"^\d+\s+(\w+)\(", text, flags=re.M))
    assert {"openat", "inotify_add_watch", "fsync", "connect"} <= used, "trace not understood"
    refused = sorted(used - _filter_of_unit(_syscall_groups()))
    assert refused == [], f"the unit's SystemCallFilter would refuse: {refused}"

    families = set(re.findall(r"\bsocket\((AF_\w+)", text))
    allowed = set(_directives(UNIT.read_text())["RestrictAddressFamilies"][0].split())
    assert families, "no socket() seen in the trace"
    assert families <= allowed, f"RestrictAddressFamilies would refuse {families - allowed}"
