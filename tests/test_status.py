"""`llmtail status` tells a person on the host what the agent is doing, or clearly that it can't."""

from __future__ import annotations

import io
import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from llmtail.agent.config import Config, parse_config
from llmtail.agent.ops.metrics import MetricsServer, Registry
from llmtail.agent.ops.status import AgentStatus, FileState, show_status
from llmtail.agent.ops.throughput import Throughput
from llmtail.agent.reading.fingerprint import FileIdentity
from llmtail.agent.state.checkpoint import Checkpointer, SavedPosition, StateDirLock
from tests.agentproc import Agent, free_port, ids_in_output, record_line, wait_for


class _StatusServer:
    """A stand-in for the agent's metrics endpoint, served over a real socket."""

    def __init__(self) -> None:
        self.status = 200
        self.body: bytes = b"{}"
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                payload = owner.body if self.path == "/status" else b"not found"
                self.send_response(owner.status if self.path == "/status" else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.listen = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def serve(self, doc: Any, status: int = 200) -> None:
        self.body = json.dumps(doc).encode() if not isinstance(doc, bytes) else doc
        self.status = status


@pytest.fixture
def endpoint() -> Iterator[_StatusServer]:
    server = _StatusServer()
    server.thread.start()
    yield server
    server.server.shutdown()
    server.server.server_close()


@pytest.fixture
def closed_port() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{sock.getsockname()[1]}"


def _config(state_dir: Path, listen: str | None) -> Config:
    return parse_config({"state_dir": str(state_dir), "metrics": {"listen": listen}})


def _run(config: Config) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = show_status(config, out, err, timeout=10.0)
    return code, out.getvalue(), err.getvalue()


def _row(text: str, path: Path) -> list[str]:
    [line] = [line for line in text.splitlines() if line.startswith(str(path))]
    return line.split()


def _save_checkpoints(state_dir: Path, positions: list[SavedPosition]) -> None:
    """What the agent leaves in state_dir, written by the agent's own Checkpointer."""
    Checkpointer(state_dir).save({pos.key: pos for pos in positions})


def _position(path: Path, offset: int, identity_of: Path | None = None) -> SavedPosition:
    source = identity_of or path
    st = source.stat()
    key = f"{st.st_dev:x}-{st.st_ino:x}-{path.name}"
    identity = FileIdentity.of(key, st.st_dev, st.st_ino, source.read_bytes())
    return SavedPosition(key, str(path), offset, identity.to_dict())


def _live_status() -> AgentStatus:
    """What the daemon knows about itself, as its status function would build it."""
    return AgentStatus(
        source="daemon",
        pid=4321,
        started_at=1_000.0,
        records_per_second=250.0,
        last_delivery_at=1_500.0,
        last_error="403 ShardWriteQuotaExceed,\nbacking off",
        last_error_at=1_400.0,
        files=[
            FileState("/var/log/app/b.log", offset=100, size=100),
            FileState("/var/log/app/a.log", offset=1024, size=3 * 1024 * 1024 + 1024),
        ],
    )


def test_the_running_agent_reports_files_lag_delivery_and_last_error(tmp_path: Path) -> None:
    server = MetricsServer(Registry(), "127.0.0.1:0", status=_live_status().to_document)
    server.start()
    try:
        host, port = server.address
        code, out, err = _run(_config(tmp_path / "state", f"{host}:{port}"))
    finally:
        server.close()

    assert (code, err) == (0, "")
    assert f"http://{host}:{port}/status" in out
    assert "running, pid 4321" in out
    assert "250.0 records/s" in out
    assert "last error:     403 ShardWriteQuotaExceed, backing off" in out
    assert "last delivery:  never" not in out
    a_row = ["/var/log/app/a.log", "1024", "3146752", "3.0", "MiB"]
    assert _row(out, Path("/var/log/app/a.log")) == a_row
    assert _row(out, Path("/var/log/app/b.log"))[-2:] == ["0", "B"]
    assert out.index("a.log") < out.index("b.log")


def test_the_systemd_status_line_sums_up_files_rate_lag_and_error() -> None:
    line = _live_status().summary()

    assert line == (
        "2 files, 250.0 records/s, 3.0 MiB behind, "
        "last error: 403 ShardWriteQuotaExceed, backing off"
    )
    assert AgentStatus(source="daemon").summary() == "0 files, 0 B behind"


def test_without_the_endpoint_the_checkpoint_and_the_files_tell_the_lag(
    closed_port: str, tmp_path: Path
) -> None:
    live, rotated, gone = tmp_path / "app.log", tmp_path / "old.log", tmp_path / "gone.log"
    live.write_bytes(b"x" * 5000)
    rotated.write_bytes(b"y" * 10)
    gone.write_bytes(b"z")
    positions = [_position(live, 4200), _position(rotated, 10, identity_of=gone)]
    positions.append(_position(gone, 1))
    gone.unlink()
    _save_checkpoints(tmp_path / "state", positions)

    with StateDirLock(tmp_path / "state"):  # held by a running agent: this process
        code, out, err = _run(_config(tmp_path / "state", closed_port))

    assert (code, err) == (0, "")
    assert "checkpoint file" in out
    assert f"no agent answering at http://{closed_port}/status" in out
    assert f"running, pid {os.getpid()}" in out
    assert _row(out, live) == [str(live), "4200", "5000", "800", "B"]
    assert _row(out, rotated)[-1] == "rotated"
    assert _row(out, gone)[-1] == "missing"


def test_a_stopped_agent_is_reported_as_not_running(tmp_path: Path) -> None:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)  # fmt: skip
    log = tmp_path / "app.log"
    log.write_bytes(b"line\n")
    _save_checkpoints(tmp_path / "state", [_position(log, 5)])
    # A lock file outlives its agent (flock is released, the pid stays written).
    (tmp_path / "state" / "lock").write_text(finished.stdout)

    code, out, err = _run(_config(tmp_path / "state", None))

    assert (code, out) == (3, "")  # LSB's "program is not running", as systemctl status
    assert err.count("\n") == 1
    assert err.startswith(f"llmtail: no agent is running (last pid {int(finished.stdout)});")
    assert err.endswith(": 1 file, 0 B behind\n")


def test_a_broken_endpoint_answer_falls_back_to_the_checkpoint(
    endpoint: _StatusServer, tmp_path: Path
) -> None:
    endpoint.serve(b"<html>proxy error</html>")
    log = tmp_path / "app.log"
    log.write_bytes(b"12345")
    _save_checkpoints(tmp_path / "state", [_position(log, 2)])

    with StateDirLock(tmp_path / "state"):  # held by a running agent: this process
        code, out, _ = _run(_config(tmp_path / "state", endpoint.listen))

    assert code == 0
    assert "did not answer the expected JSON" in out
    assert _row(out, log) == [str(log), "2", "5", "3", "B"]


def test_a_proxy_in_the_environment_is_not_used_for_the_local_endpoint(
    endpoint: _StatusServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    endpoint.serve({"pid": 7, "files": []})

    code, out, _ = _run(_config(tmp_path, endpoint.listen))

    assert code == 0
    assert "running, pid 7" in out
    assert "no files followed yet" in out


def test_nothing_to_report_is_one_line_and_a_failing_exit(closed_port: str, tmp_path: Path) -> None:
    code, out, err = _run(_config(tmp_path / "nowhere", closed_port))

    assert code == 1
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("llmtail: no agent status found:")
    assert str(tmp_path / "nowhere" / "checkpoints.json") in err


def test_a_corrupt_checkpoint_is_named_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "checkpoints.json").write_text('{"version": 1, "checkpoints": [{"path": 3}]')

    code, _, err = _run(_config(tmp_path, None))

    assert code == 1
    assert "is not a checkpoint file llmtail can read" in err


# -- the delivery rate, and a stopped agent, through a real `llmtail run` ----------------------


def test_the_rate_counts_what_was_delivered_in_the_last_minute() -> None:
    now = [100.0]
    rate = Throughput(window=60.0, clock=lambda: now[0])
    assert rate.rate() == 0.0
    now[0] = 102.5
    rate.add(3000)  # a burst 2.5 s after start: shown at once, over the time since start
    assert rate.rate() == pytest.approx(3000 / 2.5)
    now[0] = 130.0
    rate.add(600)
    assert rate.rate() == pytest.approx(3600 / 30.0)
    now[0] = 160.0  # the burst is 57.5 s old: still in the last minute
    assert rate.rate() == pytest.approx(3600 / 60.0)
    now[0] = 163.0  # the burst has left the window
    assert rate.rate() == pytest.approx(600 / 60.0)
    now[0] = 1000.0
    assert (rate.rate(), rate.total) == (0.0, 3600)


def test_status_of_a_real_agent_shows_its_rate_then_that_it_stopped(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"".join(record_line(i) for i in range(2000)))
    config = {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "metrics": {"listen": f"127.0.0.1:{free_port()}"},
        "tail": {"poll_interval": 0.05},
        "batch": {"linger": 0.1},
    }
    status_command = [sys.executable, "-m", "llmtail", "status", "-c"]
    with Agent(tmp_path, config) as agent:
        agent.start()
        wait_for(lambda: len(ids_in_output(agent.output)) == 2000, 60, "every record")
        shown = subprocess.run(
            [*status_command, str(agent.config_path)], capture_output=True, text=True, check=False
        )
        assert shown.returncode == 0, shown.stderr
        (line,) = [x for x in shown.stdout.splitlines() if x.startswith("throughput:")]
        assert "2,000 delivered since start" in line
        assert float(line.split()[1]) > 0.0  # it used to say 0.0 for the first 10 s
        pid = agent.proc.pid if agent.proc is not None else 0
        assert agent.stop() == 0
    stopped = subprocess.run(
        [*status_command, str(agent.config_path)], capture_output=True, text=True, check=False
    )
    assert stopped.returncode == 3
    assert stopped.stdout == ""
    assert stopped.stderr.count("\n") == 1
    assert stopped.stderr.startswith(f"llmtail: no agent is running (last pid {pid});")
    assert "1 file, 0 B behind" in stopped.stderr
