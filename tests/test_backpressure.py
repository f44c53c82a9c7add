"""Backpressure: when the output stalls, the files are the buffer, not the agent's memory.

A real `llmtail run` ships to the local Logstore running as its own process; the Logstore's
listener is closed (an outage) so every PutLogs is refused and the agent's in-flight bytes fill.
The agent's RSS is sampled from /proc while it is stalled, and the read position from its own
metrics (`llmtail_bytes_read_total`): stalled means it stopped reading.

Two backlogs: 1 GB for memory (far more than the in-flight bound; delivering it would take
minutes, so that test stops at the stall), and a separate ~15 MB one, far more than the 4 MiB
in-flight bound configured there holds, for "everything arrives once the output resumes".
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.agentproc import (
    Agent,
    LogstoreProcess,
    StampedLines,
    free_port,
    ids_in_records,
    rss_of,
    scrape,
    wait_for,
)

ZONE = "Asia/Shanghai"
BACKLOG_BYTES = 1 << 30
RESUME_BACKLOG_RECORDS = 80_000  # ~15 MB of seed-format lines
RSS_LIMIT = 150 << 20
STALLED_SAMPLE_SECONDS = 5.0


def write_backlog(path: Path, lines: StampedLines, size: int) -> int:
    """`size` bytes of seed-format records, fast: a pre-rendered ~4 MB block, written whole."""
    block = b"".join(lines.line(seq, extra_lines=2 if seq % 5 == 0 else 0) for seq in range(20000))
    written = 0
    with open(path, "wb") as f:
        while written < size:
            f.write(block)
            written += len(block)
    return written


def agent_config(
    logs: Path, output: dict[str, Any], metrics_port: int, **extra: Any
) -> dict[str, Any]:
    return {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "parser": {"timezone": ZONE},
        "output": output,
        "metrics": {"listen": f"127.0.0.1:{metrics_port}"},
        "tail": {"poll_interval": 0.05},
        **extra,
    }


class Stall:
    """Watches a running agent until it stops reading, sampling its RSS all along."""

    def __init__(self, agent: Agent, metrics_port: int) -> None:
        assert agent.proc is not None
        self.pid = agent.proc.pid
        self.port = metrics_port
        self.peak = 0
        self.stalled_peak = 0
        self.read = 0.0
        self.in_flight = 0.0

    def _sample(self, seconds: float) -> int:
        peak = 0
        deadline = time.monotonic() + seconds
        while True:
            peak = max(peak, rss_of(self.pid))
            if time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.peak = max(self.peak, peak)
        return peak

    def wait(self, timeout: float) -> None:
        """Until the bytes read stay unchanged for 2 s, then sample RSS for a few seconds."""
        deadline = time.monotonic() + timeout
        steady_since: float | None = None
        while True:
            self._sample(0.5)
            metrics = scrape(self.port)
            read = metrics.get("llmtail_bytes_read_total", 0.0)
            now = time.monotonic()
            if read > 0 and read == self.read:
                steady_since = steady_since or now
                if now - steady_since >= 2.0:
                    break
            else:
                steady_since = None
            self.read = read
            if now > deadline:
                raise AssertionError(f"the agent never stopped reading ({read:.0f} bytes read)")
        self.stalled_peak = self._sample(STALLED_SAMPLE_SECONDS)
        metrics = scrape(self.port)
        assert metrics.get("llmtail_bytes_read_total", 0.0) == self.read, "it read on"
        self.in_flight = metrics.get("llmtail_buffer_bytes", 0.0)

    def report(self, what: str) -> str:
        return (
            f"{what}: stalled after reading {self.read / 2**20:.1f} MiB "
            f"({self.in_flight / 2**20:.1f} MiB in flight); "
            f"peak RSS {self.peak / 2**20:.0f} MiB, "
            f"{self.stalled_peak / 2**20:.0f} MiB over {STALLED_SAMPLE_SECONDS:.0f} s stalled"
        )


def test_rss_stays_under_150_mb_with_a_1_gb_backlog_while_the_output_is_down(
    tmp_path: Path,
) -> None:
    """With the defaults a user runs (max_in_flight_bytes 16 MiB), a backlog of 1 GB."""
    logs = tmp_path / "logs"
    logs.mkdir()
    backlog = logs / "app.log"
    port = free_port()
    try:
        started = time.monotonic()
        size = write_backlog(backlog, StampedLines(ZONE), BACKLOG_BYTES)
        print(f"backlog: {size / 2**30:.2f} GiB written in {time.monotonic() - started:.1f} s")
        with LogstoreProcess() as store:
            store.outage(600)  # longer than the test: the output stays down throughout
            with Agent(tmp_path, agent_config(logs, store.output(), port)) as agent:
                agent.start(env=store.env())
                stall = Stall(agent, port)
                stall.wait(timeout=90)
                print(stall.report("1 GiB backlog, defaults"))
                agent.kill()
    finally:
        backlog.unlink(missing_ok=True)
    assert stall.read < size / 4, "the agent read far beyond its in-flight bound"
    assert stall.peak < RSS_LIMIT, stall.report("RSS over 150 MiB")


def test_everything_arrives_once_the_output_resumes(tmp_path: Path) -> None:
    """A ~15 MB backlog with max_in_flight_bytes 4 MiB: the agent stalls during the outage (the
    1 GB backlog above would take minutes to deliver), then delivers every record once."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    backlog = logs / "app.log"
    with open(backlog, "wb") as f:
        for start in range(0, RESUME_BACKLOG_RECORDS, 10_000):
            f.write(lines.block(range(start, min(start + 10_000, RESUME_BACKLOG_RECORDS))))
    size = backlog.stat().st_size
    in_flight = 4 << 20
    port = free_port()
    with LogstoreProcess() as store:
        outage = 20.0  # start-up, the stall and its RSS samples fit within it
        store.outage(outage)
        outage_started = time.monotonic()
        config = agent_config(logs, store.output(), port, max_in_flight_bytes=in_flight)
        with Agent(tmp_path, config) as agent:
            agent.start(env=store.env())
            stall = Stall(agent, port)
            stall.wait(timeout=outage - (time.monotonic() - outage_started))
            print(stall.report(f"{size / 2**20:.0f} MiB backlog, {in_flight >> 20} MiB in flight"))
            assert stall.read < size / 2, "the agent read the whole backlog into memory"
            wait_for(store.reachable, outage + 10, "the end of the outage")
            resumed = time.monotonic()
            wait_for(lambda: store.accepted_logs() >= RESUME_BACKLOG_RECORDS, 60, "every record")
            delivered = time.monotonic() - resumed
            after_peak = rss_of(agent.proc.pid) if agent.proc else 0
            assert agent.stop() == 0
        counts = ids_in_records(store.records())
    print(
        f"resumed {resumed - outage_started:.0f} s after the outage began; "
        f"{len(counts)} records delivered in {delivered:.1f} s; RSS after {after_peak >> 20} MiB"
    )
    assert set(counts) == set(range(RESUME_BACKLOG_RECORDS))
    assert max(counts.values()) == 1, "nothing was stored before the outage: no duplicates"
    assert stall.peak < RSS_LIMIT, stall.report("RSS over 150 MiB")
