"""The reading loop's pauses: held back by the output, it waits for a batch to finish, not a timer.

The poll interval is set to an hour in these tests, so a loop that slept it while the output
was the limit would stall for all that time instead of a few milliseconds: the outcomes below
cannot be reached by chance. (With the default 0.25 s, the same stalls left the reader and the
output idle together about a third of the time while a backlog was caught up: bench/README.md.)
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from tests.agentproc import Agent, LogstoreProcess, StampedLines, free_port, scrape, wait_for

ZONE = "Asia/Shanghai"
RECORDS = 30_000  # ~5 MB of log: many times the 1 MiB in-flight bound
PER_BATCH = 1_000
AN_HOUR = 3600.0
BOUND = 1 << 20


def write_log(logs: Path) -> None:
    logs.mkdir()
    (logs / "app.log").write_bytes(StampedLines(ZONE).block(range(RECORDS)))


def request_ids(output: Path) -> Counter[str]:
    if not output.exists():
        return Counter()
    lines = output.read_bytes().splitlines()
    return Counter(json.loads(line)["request_id"] for line in lines if line.strip())


def test_a_backlog_bigger_than_the_bound_is_read_on_as_each_batch_is_acknowledged(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    write_log(logs)
    config = {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "parser": {"timezone": ZONE},
        "tail": {"poll_interval": AN_HOUR},
        "batch": {"max_records": PER_BATCH},
        "max_in_flight_bytes": BOUND,
    }
    with Agent(tmp_path, config) as agent:
        agent.start()
        # The last record waits for its multi-line flush and its batch for the linger, both
        # driven by turns that come once a poll: every full batch before them arrives.
        expected = (RECORDS - 1) // PER_BATCH * PER_BATCH
        wait_for(
            lambda: sum(request_ids(agent.output).values()) >= expected,
            120,
            f"{expected} records through a {BOUND >> 20} MiB bound",
        )
        assert agent.stop() == 0
    ids = request_ids(agent.output)
    assert len(ids) >= expected
    assert max(ids.values()) == 1


def test_a_stop_is_acted_on_at_once_while_the_reader_waits_for_room(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    write_log(logs)
    port = free_port()
    with LogstoreProcess() as store:
        store.outage(120)  # every PutLogs refused: nothing in flight ever finishes
        config = {
            "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
            "parser": {"timezone": ZONE},
            "output": store.output(),
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "tail": {"poll_interval": AN_HOUR},
            "max_in_flight_bytes": BOUND,
            "shutdown_timeout": 1,
        }
        with Agent(tmp_path, config) as agent:
            agent.start(env=store.env())
            # Charged past the bound: the turn that read it is over, the next is held back.
            wait_for(
                lambda: scrape(port).get("llmtail_buffer_bytes", 0.0) >= BOUND,
                60,
                "the in-flight bound to fill",
            )
            assert agent.stop(timeout=30) == 0  # not an hour
            assert "deadline reached with batches in flight" in agent.logs()
