"""File descriptors: a real `llmtail run` under a real fd limit, while files keep rotating.

Issue 14, item 3: with every rotated file held open while nothing could be delivered, a
128-fd limit ran out; reads and every checkpoint save failed with "Too many open files" and,
once the output was back, nothing was delivered and the process never recovered. Here the
agent runs under `prlimit`, the local Logstore refuses every PutLogs (a 500 fault, then a wrong
credential) while the application rotates its file again and again, and the test shows that
delivery resumes by itself with no record missing, and that checkpoints never failed.
"""

from __future__ import annotations

import os
import re
import resource
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.agentproc import Agent, LogstoreProcess, StampedLines, ids_in_records, wait_for

ZONE = "Asia/Shanghai"
PER_FILE = 50
FAST = {
    "poll_interval": 0.05,
    "rescan_interval": 0.5,
    "multiline_flush": 0.5,
    "rotate_wait": 0.5,
}
UNIT = Path(__file__).resolve().parent.parent / "systemd" / "llmtail.service"

pytestmark = pytest.mark.skipif(shutil.which("prlimit") is None, reason="needs prlimit")


def config_for(logs: Path, output: dict[str, Any], **tail: Any) -> dict[str, Any]:
    return {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "parser": {"timezone": ZONE},
        "output": output,
        "tail": {**FAST, **tail},
        "batch": {"linger": 0.1, "max_records": 250},
        "max_in_flight_bytes": 1024 * 1024,  # the outage soon stops reading: files are the buffer
        "shutdown_timeout": 5,
    }


def rotate_many(agent: Agent, logs: Path, lines: StampedLines, rotations: int) -> int:
    """Write PER_FILE records to app.log, rename it out of the globs, `rotations` times, then
    leave a last active file; each generation is seen by the agent before it is renamed.
    Returns how many records were written."""
    app = logs / "app.log"
    opened = f"reading {app} from offset 0"
    seq = 0
    for generation in range(rotations + 1):
        app.write_bytes(lines.block(range(seq, seq + PER_FILE)))
        seq += PER_FILE
        wait_for(
            lambda g=generation: agent.logs().count(opened) > g, 60, f"generation {generation}"
        )
        assert agent.running(), agent.logs()[-2000:]
        if generation < rotations:
            os.rename(app, logs / f"app.log.{generation}")  # like logback's FixedWindow
    return seq


def wait_delivered(store: LogstoreProcess, written: int, what: str) -> None:
    """Wait until every record arrived; on timeout, say which are missing."""
    try:
        wait_for(lambda: set(ids_in_records(store.records())) >= set(range(written)), 120, what)
    except AssertionError:
        missing = sorted(set(range(written)) - set(ids_in_records(store.records())))
        files = sorted({seq // PER_FILE for seq in missing})
        raise AssertionError(f"{what}: {len(missing)} missing, from generations {files}") from None


def unit_limit() -> int:
    """LimitNOFILE of the shipped systemd unit."""
    found = re.search(r"^LimitNOFILE=(\d+)$", UNIT.read_text(), re.MULTILINE)
    assert found is not None, f"{UNIT} sets no LimitNOFILE"
    return int(found.group(1))


def test_200_rotations_during_an_outage_under_128_fds_deliver_everything_after(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    with LogstoreProcess() as store:
        store.fault("error", code="InternalServerError", status=500, seconds=3600)
        output = store.output(max_backoff=0.5)
        with Agent(tmp_path, config_for(logs, output)) as agent:
            agent.start(env=store.env(), prefix=["prlimit", "--nofile=128", "--"])
            written = rotate_many(agent, logs, lines, rotations=200)
            assert agent.open_fds() < 128
            assert store.accepted_logs() == 0
            store.clear_faults()  # the output is back
            wait_delivered(store, written, "every record after the outage")
            assert agent.running()
            assert agent.stop() == 0
        log = agent.logs()
        delivered = ids_in_records(store.records())
    assert "Too many open files" not in log
    assert "cannot save checkpoints" not in log
    assert log.count("closed and reopened in turn") == 1, "said once"
    assert set(delivered) == set(range(written))
    # Each lifecycle line once per file (they were written twice, by the watcher and the loop).
    assert log.count(f"reading {logs / 'app.log'} from offset 0") == 201
    assert len(re.findall(r" finished \S+ at offset \d+", log)) == 200


def test_a_credential_hold_with_many_rotations_keeps_fds_bounded_under_the_units_limit(
    tmp_path: Path,
) -> None:
    """The unit's LimitNOFILE (capped at this host's hard limit), a wrong secret for a while,
    and more rotations than max_open_files: fds stay bounded, and after the fix all arrive."""
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = min(unit_limit(), hard)
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    creds = tmp_path / "credentials.yaml"
    with LogstoreProcess() as store:

        def write_credentials(secret: str) -> None:
            tmp = tmp_path / "credentials.tmp"
            tmp.write_text(
                yaml.safe_dump({"access_key_id": store.access_key_id, "access_key_secret": secret})
            )
            tmp.chmod(0o600)
            tmp.replace(creds)

        write_credentials("not-the-secret-1234")
        output = store.output(credentials_file=str(creds), hold_probe_interval=0.5)
        config = config_for(logs, output, max_open_files=16)
        with Agent(tmp_path, config) as agent:
            agent.start(prefix=["prlimit", f"--nofile={limit}", "--"])
            baseline = agent.open_fds()
            written = rotate_many(agent, logs, lines, rotations=80)
            wait_for(lambda: "SignatureNotMatch" in agent.logs(), 30, "the loud error")
            held_fds = agent.open_fds()
            assert store.accepted_logs() == 0
            write_credentials(store.access_key_secret)
            wait_delivered(store, written, "every record after the fix")
            assert agent.stop() == 0
        log = agent.logs()
        delivered = ids_in_records(store.records())
    # 81 files were held; at most max_open_files of them had an fd (plus the sockets' churn).
    assert held_fds <= baseline + 16 + 8, (baseline, held_fds)
    assert log.count("closed and reopened in turn") == 1
    assert set(delivered) == set(range(written))
