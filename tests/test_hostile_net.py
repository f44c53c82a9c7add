"""A real `llmtail run` against hostile HTTP peers: answers of 1 GiB, answers that drip, and
an endpoint written with the project in front. What users rely on: memory stays bounded, a
request ends at its deadline and says so, SIGTERM is honoured within shutdown_timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.agentproc import Agent, StampedLines, wait_for
from tests.hostile_http import HostileServer

ZONE = "Asia/Shanghai"
CREDS = {
    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAIhostileTestKey01",
    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": "hostile-test-secret",
}
MIB = 1024 * 1024


def agent_config(logs: Path, endpoint: str, **output: Any) -> dict[str, Any]:
    return {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "parser": {"timezone": ZONE},
        "output": {
            "type": "sls",
            "endpoint": endpoint,
            "project": "proj",
            "logstore": "store",
            "max_backoff": 0.2,
            **output,
        },
        "tail": {"poll_interval": 0.05},
        "batch": {"linger": 0.1},
        "shutdown_timeout": 2,
    }


def write_records(logs: Path, count: int = 200) -> None:
    logs.mkdir(exist_ok=True)
    (logs / "app.log").write_bytes(StampedLines(ZONE).block(range(count)))


def peak_rss(pid: int) -> int:
    """VmHWM: the highest resident set the process ever had, in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM in /proc")


@pytest.mark.slow
@pytest.mark.parametrize("status", [200, 500])
def test_a_1_gib_answer_leaves_the_agent_small(tmp_path: Path, status: int) -> None:
    write_records(tmp_path / "logs")
    with HostileServer(mode="huge", status=status, body_size=1024**3) as server:
        config = agent_config(tmp_path / "logs", server.endpoint, request_timeout=600)
        with Agent(tmp_path, config) as agent:
            agent.start(env=CREDS)
            # Three answers abandoned: each was read to 64 KiB, then the connection closed.
            wait_for(lambda: len(server.answered()) >= 3, 120, "three abandoned answers")
            assert agent.proc is not None
            assert peak_rss(agent.proc.pid) < 200 * MIB
            assert all(n < 1024**3 for n in server.answered())
            assert agent.stop() == 0
        assert "ResponseTooLarge" in agent.logs()
        assert "Traceback" not in agent.logs()


@pytest.mark.slow
def test_a_dripping_answer_ends_at_the_request_deadline_and_is_logged(tmp_path: Path) -> None:
    write_records(tmp_path / "logs")
    with HostileServer(mode="drip", drip_interval=1.0) as server:
        config = agent_config(tmp_path / "logs", server.endpoint, request_timeout=2)
        with Agent(tmp_path, config) as agent:
            agent.start(env=CREDS)
            wait_for(lambda: "Timeout" in agent.logs(), 120, "a timeout in the log")
            wait_for(lambda: server.requests >= 2, 120, "the retry after the deadline")
            assert agent.stop() == 0
        assert "no complete answer within the request timeout (2 s)" in agent.logs()


@pytest.mark.slow
def test_sigterm_during_a_dripping_request_exits_within_shutdown_timeout(
    tmp_path: Path,
) -> None:
    write_records(tmp_path / "logs")
    with HostileServer(mode="drip", drip_interval=1.0) as server:
        # A 600 s request deadline: only the shutdown's abort can end the request in time.
        config = agent_config(tmp_path / "logs", server.endpoint, request_timeout=600)
        with Agent(tmp_path, config) as agent:
            agent.start(env=CREDS)
            wait_for(lambda: server.requests >= 1, 120, "a request in flight")
            assert agent.proc is not None
            agent.proc.send_signal(signal.SIGTERM)
            # shutdown_timeout is 2 s; the margin covers interpreter exit on a loaded machine.
            assert agent.proc.wait(timeout=2 + 8) == 0
            agent.proc = None
        assert "shutdown deadline reached" in agent.logs()
        assert "Traceback" not in agent.logs()


def test_an_endpoint_with_the_project_in_front_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "llmtail.yaml"
    config.write_text(
        "output:\n  type: sls\n  endpoint: https://proj.cn-hangzhou.log.aliyuncs.com\n"
        "  project: proj\n  logstore: store\n"
    )
    result = subprocess.run(
        [sys.executable, "-m", "llmtail", "check-output", "-c", str(config)],
        capture_output=True,
        text=True,
        env={**os.environ, **CREDS},
        timeout=60,
        check=False,
    )
    lines = (result.stdout + result.stderr).splitlines()
    assert result.returncode == 2 and len(lines) == 1, lines
    assert "starts with the project name 'proj'" in lines[0]
    assert "'https://cn-hangzhou.log.aliyuncs.com'" in lines[0]
