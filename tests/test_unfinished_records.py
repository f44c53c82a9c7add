"""Unfinished records are memory too: many files each holding a long record that never ends must
not grow the agent beyond its bound; the records are shipped as they are, never dropped."""

from __future__ import annotations

import time
from pathlib import Path

from tests.agentproc import Agent, ids_in_output, record_line, rss_of, wait_for

FILES = 1000
RECORD_BYTES = 500_000
IN_FLIGHT = 32 << 20
# Unfinished records may hold half the in-flight bound on top of it (config.py); a slow output
# fills the in-flight bound itself. The rest: the interpreter and a thousand files' state (~57
# MiB before a byte is read), one read budget, and the allocator's slack between trims.
BOUND = IN_FLIGHT + IN_FLIGHT // 2
MARGIN = 96 << 20


def test_a_thousand_files_with_unfinished_records_stay_within_the_bound(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    for i in range(FILES):
        line = record_line(i).rstrip(b"\n")  # ends with the empty error message
        padding = b" pad" * ((RECORD_BYTES - len(line)) // 4)
        # A record whose line never gets its newline: the writer is still writing it.
        (logs / f"app-{i:04d}.log").write_bytes(line + padding)
    config = {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "max_in_flight_bytes": IN_FLIGHT,
        # The bound ships the largest unfinished records as soon as they hold more than it; the
        # last few, under the bound, go by the partial-line timeout: 15 s, not the default 60.
        "tail": {"poll_interval": 0.05, "partial_line_flush": 15.0},
    }
    with Agent(tmp_path, config) as agent:
        agent.start()
        assert agent.proc is not None
        pid, peak = agent.proc.pid, 0
        out = tmp_path / "out" / "records.ndjson"

        def all_shipped() -> bool:
            nonlocal peak
            peak = max(peak, rss_of(pid))
            return len(ids_in_output(out)) >= FILES

        started = time.monotonic()
        wait_for(all_shipped, 300, "the unfinished records to be shipped")
        print(f"{FILES} files: peak RSS {peak >> 20} MiB in {time.monotonic() - started:.0f} s")
        assert agent.stop() == 0
        log = agent.log_path.read_text()
    assert peak < BOUND + MARGIN, f"peak RSS {peak >> 20} MiB"
    assert "unfinished records hold" in log
