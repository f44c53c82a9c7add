"""A real `llmtail run` process and a real log writer, for end-to-end tests.

The writer puts a unique id in every record (the payload's request id), so a test can count
what the output received: none missing, and how many duplicated.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import yaml

PREFIX = (
    "2026-11-27 10:00:00.000 INFO  [traceId:t{id}] [c.a.c.s.i.ChatServiceImpl#chat():88] [main] - "
)


def record_line(seq: int, extra_lines: int = 0) -> bytes:
    """One llm_call record whose request id carries `seq`; optional continuation lines."""
    text = PREFIX.format(id=seq) + (
        f"chatbot,qa,qwen-plus,ws-1,req-{seq:010d},200,120,10,20,30,,\n"
    )
    for i in range(extra_lines):
        text += f"\tat com.example.Frame{i}.call(Frame.java:{i})\n"
    return text.encode()


def ids_in_output(path: Path) -> Counter[int]:
    """Request ids the file output holds, with their counts (torn lines are an error).

    A last line without its newline is a write in progress (the agent may be appending while
    the test reads), so it is left for the next look.
    """
    found: Counter[int] = Counter()
    if not path.exists():
        return found
    data = path.read_bytes()
    for line in data[: data.rfind(b"\n") + 1].splitlines():
        doc = orjson.loads(line)
        request_id = doc.get("request_id")
        if isinstance(request_id, str) and request_id.startswith("req-"):
            found[int(request_id[4:])] += 1
    return found


def wait_for(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)


class Agent:
    """`python -m llmtail run -c CONFIG` with a config written from a dict."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.config = {
            "state_dir": str(workdir / "state"),
            "output": {"type": "file", "path": str(workdir / "out" / "records.ndjson")},
            "metrics": {"listen": None},
            **config,
        }
        self.config_path = workdir / "llmtail.yaml"
        self.log_path = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.write_config()

    @property
    def output(self) -> Path:
        return Path(self.config["output"]["path"])

    def write_config(self, config: dict[str, Any] | None = None) -> None:
        self.config_path.write_text(yaml.safe_dump(config or self.config))

    def start(
        self, env: dict[str, str] | None = None, wait: bool = True, prefix: list[str] | None = None
    ) -> None:
        """Start the agent; with `wait`, return once it has scanned its inputs. `prefix` runs
        it under another program, e.g. `["prlimit", "--nofile=128", "--"]` (which execs it,
        so the pid is the agent's)."""
        seen = self.logs().count("watching")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    *(prefix or []),
                    sys.executable,
                    "-m",
                    "llmtail",
                    "run",
                    "-c",
                    str(self.config_path),
                ],
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
            )
        if wait:
            wait_for(
                lambda: self.logs().count("watching") > seen or not self.running(), 30, "start"
            )
            assert self.running(), f"the agent exited at start:\n{self.logs()[-2000:]}"

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM and wait: the agent delivers what is in flight and exits. One that does not
        is asked for its threads' stacks (SIGUSR1) before it is killed, for the failure."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGUSR1)
            with contextlib.suppress(AssertionError):
                wait_for(lambda: "in _run_module_as_main" in self.logs(), 10, "a stack dump")
            self.kill()
            raise AssertionError(
                f"the agent did not exit {timeout:.0f} s after SIGTERM:\n{self.logs()[-6000:]}"
            ) from None
        self.proc = None
        return code

    def kill(self) -> None:
        """kill -9: no chance to deliver, flush or checkpoint."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def cpu_seconds(self) -> float:
        """User + system CPU time of the running agent, from /proc."""
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def open_fds(self) -> int:
        """File descriptors the running agent holds now, from /proc."""
        assert self.proc is not None
        return len(os.listdir(f"/proc/{self.proc.pid}/fd"))

    def rss_bytes(self) -> int:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        return 0

    def __enter__(self) -> Agent:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.running():
            self.kill()


# -- the SLS output against a local Logstore running as its own process -----------------------

REPO = Path(__file__).resolve().parent.parent


class LogstoreProcess:
    """`python -m tests.logstore` as a separate process, driven through its admin HTTP API.

    The agent talks to it over loopback with the real SDK, as it would talk to SLS.
    `cpu` pins the process to one CPU (taskset), for benchmarks."""

    def __init__(
        self,
        *,
        project: str = "llmtail-test",
        logstore: str = "llmtail",
        access_key_id: str = "LTAIe2eTestKey0001",
        access_key_secret: str = "e2e-local-secret-0001",
        count_only: bool = False,
        cpu: int | None = None,
    ) -> None:
        self.project = project
        self.logstore = logstore
        self.access_key_id = access_key_id
        self.access_key_secret = access_key_secret
        args = [sys.executable, "-m", "tests.logstore", "--port", "0", "--project", project]
        args += ["--logstore", logstore, "--ak-id", access_key_id, "--ak-secret"]
        args += [access_key_secret] + (["--count-only"] if count_only else [])
        if cpu is not None:
            args = ["taskset", "-c", str(cpu), *args]
        self.proc = subprocess.Popen(args, cwd=REPO, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line.strip().isdigit(), f"the local Logstore did not start: {line!r}"
        self.port = int(line)

    @property
    def endpoint(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    @property
    def pid(self) -> int:
        return self.proc.pid

    def env(self, secret: str | None = None) -> dict[str, str]:
        """The agent's credentials, as the standard environment variables."""
        return {
            "ALIBABA_CLOUD_ACCESS_KEY_ID": self.access_key_id,
            "ALIBABA_CLOUD_ACCESS_KEY_SECRET": secret or self.access_key_secret,
        }

    def output(self, **extra: Any) -> dict[str, Any]:
        """An `output:` section for the agent that points at this server."""
        return {
            "type": "sls",
            "endpoint": self.endpoint,
            "project": self.project,
            "logstore": self.logstore,
            **extra,
        }

    def admin(self, method: str, name: str, data: dict[str, Any] | None = None) -> Any:
        """One admin API call (`/_llmtail/NAME`); raises on a non-200 answer."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            body = orjson.dumps(data) if data is not None else b""
            conn.request(method, f"/_llmtail/{name}", body=body)
            resp = conn.getresponse()
            answer = resp.read()
        finally:
            conn.close()
        if resp.status != 200:
            raise AssertionError(f"admin {method} {name}: {resp.status} {answer[:300]!r}")
        return orjson.loads(answer)

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = self.admin("GET", "stats")
        return stats

    def accepted_logs(self) -> int:
        return int(self.stats()["accepted_logs"])

    def groups(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.admin("GET", "groups")["groups"]
        return groups

    def records(self) -> list[dict[str, str]]:
        records: list[dict[str, str]] = self.admin("GET", "records")["records"]
        return records

    def fault(self, kind: str = "error", **rule: Any) -> None:
        """Program a fault (see tests/logstore: kind, code, count, probability, seconds...)."""
        self.admin("POST", "faults", {"kind": kind, **rule})

    def clear_faults(self) -> None:
        self.admin("DELETE", "faults")

    def outage(self, seconds: float) -> None:
        """Close the listener for `seconds` (connections refused), then reopen the same port."""
        self.admin("POST", "outage", {"seconds": seconds, "refuse": True})
        wait_for(lambda: not self.reachable(), 10, "the outage to start")

    def reachable(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        except OSError:
            return False
        return True

    def cpu_seconds(self) -> float:
        return _proc_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def __enter__(self) -> LogstoreProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _proc_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def ids_in_records(records: list[dict[str, str]]) -> Counter[int]:
    """Request ids (`req-N`) among records the local Logstore accepted, with their counts."""
    found: Counter[int] = Counter()
    for record in records:
        request_id = record.get("request_id", "")
        if request_id.startswith("req-"):
            found[int(request_id[4:])] += 1
    return found


class StampedLines:
    """Seed-format records stamped with recent times in `zone`, so SLS's window accepts them.

    Record `seq` is stamped `base + seq` milliseconds (base: `minutes_ago` before now, on a whole
    second), so a test knows each record's epoch time and nanoseconds without parsing."""

    def __init__(self, zone: str, minutes_ago: float = 30.0) -> None:
        self.zone = ZoneInfo(zone)
        self.base_ms = int(time.time() - minutes_ago * 60) * 1000

    def epoch_ms(self, seq: int) -> int:
        return self.base_ms + seq

    def stamp(self, seq: int) -> str:
        ms = self.epoch_ms(seq)
        when = datetime.fromtimestamp(ms // 1000, self.zone)
        return when.strftime("%Y-%m-%d %H:%M:%S") + f".{ms % 1000:03d}"

    def line(self, seq: int, extra_lines: int = 0) -> bytes:
        """An llm_call record whose request id carries `seq` (as `record_line`, but dated now)."""
        text = (
            f"{self.stamp(seq)} INFO  [traceId:t{seq}] [c.a.c.s.i.ChatServiceImpl#chat():88] "
            f"[http-nio-8080-exec-{seq % 200}] - "
            f"chatbot,qa,qwen-plus,ws-1,req-{seq:010d},200,120,10,20,30,,\n"
        )
        for i in range(extra_lines):
            text += f"\tat com.example.Frame{i}.call(Frame.java:{i})\n"
        return text.encode()

    def block(self, ids: range) -> bytes:
        return b"".join(self.line(seq) for seq in ids)


def free_port() -> int:
    """A loopback port free right now (for the agent's metrics endpoint)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def metrics_text(port: int) -> str:
    """The agent's Prometheus endpoint, as text."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.request("GET", "/metrics")
        return conn.getresponse().read().decode()
    finally:
        conn.close()


def scrape(port: int) -> dict[str, float]:
    """The agent's unlabelled metrics from its Prometheus endpoint, by name."""
    text = metrics_text(port)
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, _, value = line.partition(" ")
            out[name] = float(value)
    return out


def rss_of(pid: int) -> int:
    """VmRSS of a process, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
