"""`llmtail run` as a real process, following real files into the real file output.

Every record carries a unique id; the checks are the ones users care about: none missing after
rotations, truncations, deletions and crashes, and duplicates only where at-least-once allows.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.agentproc import Agent, ids_in_output, record_line, wait_for

FAST = {
    "poll_interval": 0.05,
    "rescan_interval": 0.5,
    "multiline_flush": 0.5,
    "partial_line_flush": 1.0,
}


def config_for(log_dir: Path, **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"paths": [str(log_dir / "*.log")], "start_at": "beginning"}],
        "tail": FAST,
        "batch": {"linger": 0.1, "max_records": 500},
        **extra,
    }


def write_records(path: Path, ids: range, extra_lines: int = 0) -> None:
    with open(path, "ab") as f:
        for seq in ids:
            f.write(record_line(seq, extra_lines))


def all_arrived(agent: Agent, expected: set[int]) -> bool:
    return expected <= set(ids_in_output(agent.output))


def test_records_arrive_once_through_rename_rotation_under_continuous_writing(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    total, per_file = 20_000, 2_500
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        # Logback's rename rotation: the old file moves out of the glob, a new one starts at
        # the same path while the agent may still be reading the old one. Each generation
        # lives about half a second under the watched name.
        writer = RotatingWriter(logs, total, per_file, seconds=4, rotated="app.{n}.log.old")
        writer.run()
        wait_for(lambda: all_arrived(agent, set(range(total))), 60, "every record")
        assert agent.stop() == 0
    counts = ids_in_output(agent.output)
    assert set(counts) == set(range(total))
    assert max(counts.values()) == 1, "no crash happened, so nothing may arrive twice"
    assert "rotated" in agent.logs()


def test_a_new_file_that_reuses_the_inode_is_read_from_the_start(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    with Agent(tmp_path, config_for(logs)) as agent:
        write_records(app, range(0, 300))
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(300))), 30, "the first file")
        old_inode = app.stat().st_ino
        app.unlink()
        write_records(app, range(300, 350))  # shorter than the old file: no offset to trust
        reused = app.stat().st_ino == old_inode
        wait_for(lambda: all_arrived(agent, set(range(350))), 30, "the new file")
        assert agent.stop() == 0
    counts = ids_in_output(agent.output)
    assert set(counts) == set(range(350)) and max(counts.values()) == 1
    print(f"inode reused by the new file: {reused}")


def test_copytruncate_restarts_at_zero(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    with Agent(tmp_path, config_for(logs)) as agent:
        write_records(app, range(0, 1000))
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(1000))), 30, "records before rotation")
        logrotate = shutil.which("logrotate")
        if logrotate:
            conf = tmp_path / "logrotate.conf"
            conf.write_text(f"{app} {{\n  copytruncate\n  rotate 3\n  missingok\n}}\n")
            subprocess.run(
                [logrotate, "-f", "-s", str(tmp_path / "logrotate.state"), str(conf)],
                check=True,
            )
        else:  # what logrotate's copytruncate does: copy, then truncate in place
            shutil.copyfile(app, logs / "app.log.1")
            os.truncate(app, 0)
        assert app.stat().st_size == 0
        write_records(app, range(1000, 1100))
        wait_for(lambda: all_arrived(agent, set(range(1100))), 30, "records after truncation")
        assert agent.stop() == 0
    counts = ids_in_output(agent.output)
    assert set(counts) == set(range(1100)) and max(counts.values()) == 1
    assert "truncated" in agent.logs()


def test_a_file_deleted_while_open_is_read_to_its_end(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    total = 60_000
    write_records(app, range(total))
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        wait_for(lambda: bool(ids_in_output(agent.output)), 30, "reading to start")
        app.unlink()  # the agent holds the fd: the rest must still arrive
        wait_for(lambda: all_arrived(agent, set(range(total))), 60, "the deleted file's end")
        assert agent.stop() == 0
    assert set(ids_in_output(agent.output)) == set(range(total))


def test_many_files_are_all_followed(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    files, per_file = 150, 40
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        for n in range(files):
            write_records(logs / f"svc{n}.log", range(n * per_file, (n + 1) * per_file))
        expected = set(range(files * per_file))
        wait_for(lambda: all_arrived(agent, expected), 60, "every file")
        assert agent.stop() == 0
    counts = ids_in_output(agent.output)
    assert set(counts) == expected and max(counts.values()) == 1


def test_start_at_end_skips_history_but_reads_new_files_from_zero(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_records(logs / "old.log", range(0, 100))
    config = config_for(logs)
    config["inputs"][0]["start_at"] = "end"
    with Agent(tmp_path, config) as agent:
        agent.start()
        wait_for((tmp_path / "state" / "checkpoints.json").exists, 30, "a checkpoint")
        write_records(logs / "old.log", range(100, 110))
        write_records(logs / "new.log", range(200, 220))
        expected = set(range(100, 110)) | set(range(200, 220))
        wait_for(lambda: all_arrived(agent, expected), 30, "new lines")
        assert agent.stop() == 0
    assert set(ids_in_output(agent.output)) == expected


def test_the_last_line_without_newline_ships_after_the_idle_flush(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    write_records(app, range(5))
    with open(app, "ab") as f:
        f.write(record_line(5).rstrip(b"\n"))  # a writer that never ends its last line
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(6))), 30, "the unterminated last line")
        assert agent.stop() == 0


def test_restart_after_sigterm_sends_nothing_twice(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    write_records(app, range(3000), extra_lines=1)
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(3000))), 30, "first run")
        assert agent.stop() == 0
        write_records(app, range(3000, 3500))
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(3500))), 30, "second run")
        assert agent.stop() == 0
    counts = ids_in_output(agent.output)
    assert set(counts) == set(range(3500)) and max(counts.values()) == 1


class RotatingWriter(threading.Thread):
    """Appends records at a steady pace and rotates by rename every `per_file` records."""

    def __init__(self, logs: Path, total: int, per_file: int, seconds: float, rotated: str) -> None:
        super().__init__(daemon=True)
        self.logs, self.total, self.per_file, self.rotated = logs, total, per_file, rotated
        self.pause = seconds / (total / 500)

    def run(self) -> None:
        active = self.logs / "app.log"
        f = open(active, "ab")  # noqa: SIM115 (reopened at every rotation)
        for seq in range(self.total):
            f.write(record_line(seq, extra_lines=1 if seq % 7 == 0 else 0))
            if seq % self.per_file == self.per_file - 1:
                f.close()
                os.rename(active, self.logs / self.rotated.format(n=seq // self.per_file))
                f = open(active, "ab")  # noqa: SIM115
            if seq % 500 == 499:
                f.flush()
                time.sleep(self.pause)
        f.close()


@pytest.mark.slow
def test_kill_9_at_random_moments_loses_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    total, kills = 200_000, 12
    rng = random.Random(20261127)
    # Rotated names stay inside the glob (logback's app.DATE.N.log): a generation that is born
    # and rotated while the agent is down is then still found, and read from its start.
    writer = RotatingWriter(logs, total, 15_000, seconds=20, rotated="app.{n:03d}.log")
    config = config_for(logs)
    config["batch"] = {"linger": 0.2, "max_records": 2000}
    in_flight = 1 << 20
    config["max_in_flight_bytes"] = in_flight
    with Agent(tmp_path, config) as agent:
        agent.start()
        writer.start()
        for _ in range(kills):
            time.sleep(rng.uniform(0.6, 2.0))
            agent.kill()
            agent.start()
        writer.join()
        wait_for(lambda: all_arrived(agent, set(range(total))), 120, "every record")
        assert agent.stop() == 0
    counts = ids_in_output(agent.output)
    missing = set(range(total)) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    print(f"kill -9 x{kills}: {total} records, {len(missing)} missing, {duplicates} duplicates")
    assert not missing
    # Only what was in flight at a kill may arrive twice: what the buffer holds, plus what was
    # delivered since the last checkpoint (0.2 s) and the batches the batcher had open.
    per_record = len(record_line(0))
    assert duplicates <= kills * (2 * in_flight // per_record + 2 * 2000)


def test_a_user_mistake_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("inputs:\n  - paths: ['/x/*.log']\n    encodng: gbk\n")
    command = [sys.executable, "-m", "llmtail", "run", "-c", str(bad)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1
    assert "inputs.0.encodng: unknown key" in result.stderr
    assert "Traceback" not in result.stderr


def test_sigterm_exits_zero_and_commits_what_was_delivered(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_records(logs / "app.log", range(1000))
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        assert "(engine: core)" in agent.logs(), "the compiled core is the default engine"
        wait_for(lambda: all_arrived(agent, set(range(1000))), 30, "records")
        agent.signal(signal.SIGTERM)
        assert agent.proc is not None
        assert agent.proc.wait(20) == 0
        agent.proc = None
    checkpoint = (tmp_path / "state" / "checkpoints.json").read_bytes()
    size = (logs / "app.log").stat().st_size
    assert f'"offset":{size}'.encode() in checkpoint


def test_metrics_and_status_tell_what_was_read_and_shipped(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    app.write_bytes(b"a banner line before the first record\n")  # its own record, flagged
    write_records(app, range(500))
    config = config_for(logs)
    config["metrics"] = {"listen": "127.0.0.1:0"}
    with Agent(tmp_path, config) as agent:
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(500))), 30, "records")
        match = re.search(r"metrics on http://([\d.]+:\d+)/metrics", agent.logs())
        assert match, agent.logs()
        address = match.group(1)

        def scrape() -> dict[tuple[str, str], float]:
            with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
                text = answer.read().decode()
            return {
                (s.name, ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))): s.value
                for family in text_string_to_metric_families(text)
                for s in family.samples
            }

        wait_for(
            lambda: scrape().get(("llmtail_parse_errors_total", "")) == 1, 30, "the parse error"
        )
        got = scrape()
        assert got[("llmtail_records_total", "event=llm_call")] == 500
        assert got[("llmtail_bytes_read_total", "")] == app.stat().st_size
        assert got[("llmtail_batches_total", "outcome=delivered")] >= 1
        llm_calls = [v for (name, _), v in got.items() if name == "llmtail_llm_calls_total"]
        assert sum(llm_calls) == 500  # each read once, whatever the batches' fate
        for path in ("/health", "/ready"):
            with urllib.request.urlopen(f"http://{address}{path}", timeout=5) as answer:
                assert answer.status == 200
        status_config = tmp_path / "status.yaml"
        status_config.write_text(yaml.safe_dump({**agent.config, "metrics": {"listen": address}}))
        shown = subprocess.run(
            [sys.executable, "-m", "llmtail", "status", "-c", str(status_config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert str(app) in shown.stdout
        assert agent.stop() == 0


def test_a_damaged_checkpoint_entry_means_reading_again_not_a_crash(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    write_records(logs / "app.log", range(100))
    with Agent(tmp_path, config_for(logs)) as agent:
        agent.start()
        wait_for(lambda: all_arrived(agent, set(range(100))), 30, "records")
        assert agent.stop() == 0
        checkpoint = tmp_path / "state" / "checkpoints.json"
        doc = orjson.loads(checkpoint.read_bytes())
        doc["checkpoints"][0]["identity"]["dev"] = "not a device"
        checkpoint.write_bytes(orjson.dumps(doc))
        agent.start()
        wait_for(lambda: ids_in_output(agent.output)[0] == 2, 30, "records read again")
        assert agent.stop() == 0
    assert "ignored" in agent.logs()
    assert set(ids_in_output(agent.output)) == set(range(100))
