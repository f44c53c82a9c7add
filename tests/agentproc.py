"""A real `llmtail run` process and a real log writer, for end-to-end tests.

The writer puts a unique id in every record (the payload's request id), so a test can count
what the output received: none missing, and how many duplicated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
    """Request ids the file output holds, with their counts (torn lines are an error)."""
    found: Counter[int] = Counter()
    if not path.exists():
        return found
    for line in path.read_bytes().splitlines():
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
    """`python -m agent run -c CONFIG` with a config written from a dict."""

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

    def start(self, env: dict[str, str] | None = None, wait: bool = True) -> None:
        """Start the agent; with `wait`, return once it has scanned its inputs."""
        seen = self.logs().count("watching")
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "agent", "run", "-c", str(self.config_path)],
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
        """SIGTERM and wait: the agent delivers what is in flight and exits."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
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
