"""A real `llmtail run` and a file truncated to a smaller size, then appended past its old size
(issue 14, item 4: 593 of 800 new records never shipped, with no warning). The head and the
growth look like ordinary appends; the offset marker is what tells."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.agentproc import Agent, ids_in_output, record_line, wait_for

FAST = {"poll_interval": 0.5, "rescan_interval": 0.5, "multiline_flush": 0.5}


def config_for(logs: Path) -> dict[str, Any]:
    return {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "tail": FAST,
        "batch": {"linger": 0.1, "max_records": 500},
    }


def records(ids: range) -> bytes:
    return b"".join(record_line(seq) for seq in ids)


def test_truncated_to_a_smaller_size_and_appended_past_it_while_running(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    app.write_bytes(records(range(200)))
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        wait_for(lambda: set(ids_in_output(agent.output)) >= set(range(200)), 30, "the first")
        # One write after the truncate: the next poll sees a larger file with the same head.
        fd = os.open(app, os.O_WRONLY)
        try:
            os.ftruncate(fd, len(records(range(100))))
            os.pwrite(fd, records(range(1000, 1800)), len(records(range(100))))
        finally:
            os.close(fd)
        assert app.stat().st_size > len(records(range(200)))
        wanted = set(range(1000, 1800))
        wait_for(lambda: set(ids_in_output(agent.output)) >= wanted, 30, "every new record")
        assert agent.stop() == 0
        log = agent.logs()
    assert log.count("was truncated") == 1, "said once"


def test_truncated_and_rewritten_past_its_checkpoint_while_stopped(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    app.write_bytes(records(range(200)))
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        wait_for(lambda: set(ids_in_output(agent.output)) >= set(range(200)), 30, "the first")
        assert agent.stop() == 0
        with app.open("r+b") as f:
            f.truncate(len(records(range(100))))
        with app.open("ab") as f:
            f.write(records(range(1000, 1800)))
        agent.start()
        wanted = set(range(1000, 1800))
        wait_for(lambda: set(ids_in_output(agent.output)) >= wanted, 30, "every new record")
        assert agent.stop() == 0
        log = agent.logs()
    assert log.count("was truncated") == 1
