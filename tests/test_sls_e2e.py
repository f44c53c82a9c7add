"""End to end through the SLS output: files -> `llmtail run` -> the real SDK -> a Logstore.

The agent is a real process and the local Logstore another one (`python -m tests.logstore`), so
every record crosses loopback as a signed, lz4-compressed PutLogs, exactly as it would reach SLS.
Credentials reach the agent through the standard ALIBABA_CLOUD_* environment variables. Records
are stamped with today's times (SLS refuses logs older than 7 days), each with a unique request
id so that the checks can say: none missing, and how many arrived twice.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from datetime import datetime
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson
import pytest

from llmtail.parsers.record import ParserSettings, RecordParser
from tests.agentproc import (
    Agent,
    LogstoreProcess,
    StampedLines,
    free_port,
    ids_in_records,
    wait_for,
)

ZONE = "Asia/Shanghai"  # the JVM's zone in the config; not the test host's (UTC)
# A long outage proves that retries go on past the backoff cap and resume by themselves once
# the Logstore is back; with the cap at 0.5 s, 5 s of outage are ten capped retries.
OUTAGE_SECONDS = 5
MAX_BACKOFF = 0.5
FAST = {"poll_interval": 0.05, "rescan_interval": 0.5, "multiline_flush": 0.5}


def config_for(logs: Path, output: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "parser": {"timezone": ZONE},
        "output": output,
        "tail": FAST,
        "batch": {"linger": 0.1, "max_records": 250},
        **extra,
    }


def varied_records(lines: StampedLines, ids: range) -> bytes:
    """Seed-format records of every shape the parser types differently, one timestamp each."""
    out = []
    for seq in ids:
        stamp = lines.stamp(seq)
        kind = seq % 6
        if kind == 0:
            text = (
                f"{stamp} ERROR [traceId:] [c.a.c.d.DashScopeClient#?():?] [] - "
                f"DashScope 调用失败, will retry {seq}\n"
                "java.net.SocketTimeoutException: Read timed out\n"
                "\tat okhttp3.internal.http1.Http1ExchangeCodec.read(Http1ExchangeCodec.kt:180)\n"
                "\t... 42 common frames omitted\n"
            )
        elif kind == 1:
            text = (
                f"{stamp} DEBUG [traceId:ab{seq:x}] [c.a.c.s.i.ChatServiceImpl#lambda$chat$0():-1]"
                f" [pool 2 [worker] {seq}] - prompt: 请用三句话总结下面的文章\n"
                f"second line {seq}\n"
            )
        elif kind == 2:
            text = (
                f"{stamp} WARN  [traceId:t{seq}] [o.a.c.c.C.[.[.[/]#log():12] [main] - "
                f"chatbot,qa,qwen-max,ws-2,req-{seq:010d},429,88,12,,12,Throttling.RateQuota,"
                "Requests rate limit exceeded, please try again later.\n"
            )
        else:
            text = lines.line(seq, extra_lines=seq % 3).decode()
        out.append(text)
    return "".join(out).encode()


def expected_logs(data: bytes) -> dict[str, tuple[int, int, list[list[str]]]]:
    """What SLS must hold for each record, by its `time` text: Time, Time_ns and contents."""
    parser = RecordParser(ParserSettings(timezone=ZONE))
    asm = parser.assembler()
    out = {}
    for frame in [*asm.feed(data, 0.0), *asm.drain()]:
        record = parser.parse(frame)
        assert "parse_error" not in record.fields, record.fields
        assert record.time is not None
        contents = [[k, str(v)] for k, v in record.fields.items() if v is not None]
        out[str(record.fields["time"])] = (record.time, record.time_ns, contents)
    return out


def epoch_of(text: str) -> tuple[int, int]:
    """Epoch seconds and nanoseconds of a `%d` text read in ZONE (an oracle apart from parsers)."""
    when = datetime.strptime(text, "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=ZoneInfo(ZONE))
    return int(when.timestamp()), when.microsecond * 1000


def checkpoint_offsets(state_dir: Path) -> dict[str, int]:
    path = state_dir / "checkpoints.json"
    if not path.exists():
        return {}
    doc = orjson.loads(path.read_bytes())
    return {c["path"]: c["offset"] for c in doc["checkpoints"]}


def test_every_record_arrives_with_its_fields_time_topic_source_and_tags(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    files = {logs / "a.log": range(0, 1500), logs / "b.log": range(1500, 2700)}
    expected: dict[str, dict[str, tuple[int, int, list[list[str]]]]] = {}
    for path, ids in files.items():
        data = varied_records(lines, ids)
        path.write_bytes(data)
        expected[str(path)] = expected_logs(data)
    total = sum(len(ids) for ids in files.values())
    tags = {"env": "e2e", "team": "llm-platform"}
    with LogstoreProcess() as store:
        output = store.output(topic="chat-service", source="10.9.8.7", tags=tags)
        with Agent(tmp_path, config_for(logs, output)) as agent:
            agent.start(env=store.env())
            wait_for(lambda: store.accepted_logs() >= total, 60, "every record")
            assert agent.stop() == 0
        groups = store.groups()
        assert store.stats()["rejected"] == {}
    hostname = socket.gethostname()
    seen: Counter[tuple[str, str]] = Counter()
    pack_ids: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for group in groups:
        assert (group["topic"], group["source"]) == ("chat-service", "10.9.8.7")
        assert group["compress_type"] == "lz4"
        names = [t[0] for t in group["tags"]]
        assert names == ["__hostname__", "__path__", "__pack_id__", "env", "team"]
        tag = dict(group["tags"])
        path = tag["__path__"]
        assert tag["__hostname__"] == hostname
        assert (tag["env"], tag["team"]) == ("e2e", "llm-platform")
        prefix, seq = tag["__pack_id__"].split("-")
        assert prefix == prefix.upper() and len(prefix) == 16
        first_time = group["logs"][0]["contents"][0][1]
        pack_ids[path].append((int(seq, 16), prefix + "|" + first_time))
        for log in group["logs"]:
            contents = log["contents"]
            assert contents[0][0] == "time"
            when, when_ns, want = expected[path][contents[0][1]]
            assert contents == want
            assert (log["time"], log["time_ns"]) == (when, when_ns)
            assert (when, when_ns) == epoch_of(contents[0][1])
            seen[(path, contents[0][1])] += 1
    assert len(seen) == total and max(seen.values()) == 1
    # __pack_id__: one prefix per file, different files differ; the sequence counts LogGroups
    # from 0 without gaps (its order is checked by the next test).
    prefixes = {path: {p.split("|")[0] for _, p in packs} for path, packs in pack_ids.items()}
    assert all(len(p) == 1 for p in prefixes.values())
    assert len({next(iter(p)) for p in prefixes.values()}) == len(files)
    for packs in pack_ids.values():
        assert sorted(seq for seq, _ in packs) == list(range(len(packs)))
    print(f"{total} records in {len(groups)} LogGroups from {len(files)} files")


def test_pack_id_sequence_follows_the_file_order_with_several_senders(tmp_path: Path) -> None:
    """The SLS console's context view orders a file's LogGroups by the `__pack_id__` sequence,
    so a higher sequence must hold later records of the file, whichever sender thread posts it.
    """
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    (logs / "app.log").write_bytes(lines.block(range(6000)))
    with LogstoreProcess() as store:
        config = config_for(logs, store.output(concurrency=4))
        config["batch"] = {"linger": 0.1, "max_records": 100}
        with Agent(tmp_path, config) as agent:
            agent.start(env=store.env())
            wait_for(lambda: store.accepted_logs() >= 6000, 60, "every record")
            assert agent.stop() == 0
        groups = store.groups()
    by_seq = sorted(
        (
            int(dict(g["tags"])["__pack_id__"].split("-")[1], 16),
            min(ids_in_records([dict(log["contents"]) for log in g["logs"]])),
        )
        for g in groups
    )
    assert [seq for seq, _ in by_seq] == list(range(len(groups)))
    first_ids = [first for _, first in by_seq]
    out_of_order = sum(a > b for a, b in pairwise(first_ids))
    print(f"{len(groups)} LogGroups, {out_of_order} with a lower sequence than the one before")
    assert first_ids == sorted(first_ids), "a later __pack_id__ holds earlier records"


class Writer(threading.Thread):
    """Appends `ids` to a file in small steady pieces, as a service does."""

    def __init__(self, lines: StampedLines, path: Path, ids: range, seconds: float) -> None:
        super().__init__(daemon=True)
        self.lines, self.path, self.ids, self.seconds = lines, path, ids, seconds

    def run(self) -> None:
        pieces = 20
        step = max(1, len(self.ids) // pieces)
        with open(self.path, "ab") as f:
            for start in range(self.ids.start, self.ids.stop, step):
                f.write(self.lines.block(range(start, min(start + step, self.ids.stop))))
                f.flush()
                time.sleep(self.seconds / pieces)


def test_faults_and_a_long_outage_lose_nothing(tmp_path: Path) -> None:
    """5xx bursts, 403 quota storms, dropped connections (before and after the server stored
    the data) and an outage of OUTAGE_SECONDS: every record arrives; duplicates are whole
    LogGroups re-sent after a lost answer, no more than were in flight when answers were lost."""
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE, minutes_ago=60)
    batch, concurrency = 250, 4
    delivered: set[int] = set()

    def arrived(store: LogstoreProcess, ids: range) -> bool:
        if store.accepted_logs() < ids.stop:  # cheap; duplicates only make it larger
            return False
        delivered.update(ids_in_records(store.records()))
        return set(ids) <= delivered

    def phase(store: LogstoreProcess, ids: range, path: Path, what: str) -> None:
        started = time.monotonic()
        Writer(lines, path, ids, seconds=1.0).run()
        wait_for(lambda: arrived(store, ids), 90, what)
        print(f"{what}: delivered in {time.monotonic() - started:.1f} s")

    with LogstoreProcess() as store:
        output = store.output(concurrency=concurrency, max_backoff=MAX_BACKOFF)
        config = config_for(logs, output, batch={"linger": 0.1, "max_records": batch})
        with Agent(tmp_path, config) as agent:
            agent.start(env=store.env())
            phase(store, range(0, 2000), logs / "a.log", "no faults")

            store.fault(code="InternalServerError", count=15)
            store.fault(code="ServerBusy", count=10)
            store.fault(code="RequestTimeout", count=5)
            phase(store, range(2000, 6000), logs / "a.log", "5xx burst")

            store.fault(code="WriteQuotaExceed", seconds=3)
            store.fault(code="ShardWriteQuotaExceed", probability=0.5, seconds=6)
            phase(store, range(6000, 10000), logs / "b.log", "403 quota storm")

            drops_after_store = 6
            store.fault(kind="drop", count=6)
            store.fault(kind="drop_after_store", count=drops_after_store)
            phase(store, range(10000, 14000), logs / "a.log", "dropped connections")
            stats = store.stats()
            assert stats["dropped_connections"] == 12

            # The outage starts while records are being written and lasts past the writing.
            writer = Writer(lines, logs / "b.log", range(14000, 20000), seconds=4.0)
            writer.start()
            # The outage starts once this phase's first records were delivered: mid-writing.
            wait_for(lambda: store.accepted_logs() > 14000, 30, "the last phase to start")
            store.outage(OUTAGE_SECONDS)
            outage_started = time.monotonic()
            writer.join()
            wait_for(store.reachable, OUTAGE_SECONDS + 10, "the end of the outage")
            print(f"outage: {time.monotonic() - outage_started:.0f} s")
            # Back within a capped backoff: no wait for a retry that was scheduled long ago.
            wait_for(lambda: arrived(store, range(20000)), 60, "every record after the outage")
            print(f"after the outage: delivered in {time.monotonic() - outage_started:.0f} s")
            assert agent.stop() == 0
            agent_log = agent.logs()
        stats = store.stats()
        groups = store.groups()
    counts = ids_in_records([dict(log["contents"]) for g in groups for log in g["logs"]])
    missing = set(range(20000)) - set(counts)
    duplicates = sum(n - 1 for n in counts.values())
    by_pack: Counter[str] = Counter()
    size: dict[str, int] = {}
    for g in groups:
        pack = dict(g["tags"])["__pack_id__"]
        by_pack[pack] += 1
        size[pack] = len(g["logs"])
    resent = {pack: n - 1 for pack, n in by_pack.items() if n > 1}
    resent_logs = sum(n * size[pack] for pack, n in resent.items())
    print(
        f"faults: {len(counts)} records, {len(missing)} missing, {duplicates} duplicates in "
        f"{sum(resent.values())} re-sent LogGroups; server: {stats['rejected']}, "
        f"{stats['dropped_connections']} dropped connections"
    )
    assert not missing
    assert stats["rejected"].get("InternalServerError") == 15
    assert stats["rejected"].get("WriteQuotaExceed", 0) >= 1
    # drop_after_store stores the LogGroup and loses the answer: the agent must send it again.
    assert duplicates >= drops_after_store
    # Every duplicate is a whole LogGroup sent again under the same __pack_id__; at most the
    # drops after store plus the requests in flight when the outage reset the connections.
    assert duplicates == resent_logs
    assert sum(resent.values()) <= drops_after_store + concurrency
    assert duplicates <= (drops_after_store + concurrency) * batch
    assert "request failed, retrying" in agent_log
    assert "write quota exceeded" in agent_log
    assert "delivering again" in agent_log


def test_a_missing_logstore_holds_the_data_until_it_is_created(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    lines = StampedLines(ZONE)
    app.write_bytes(lines.block(range(600)))
    with LogstoreProcess() as store:
        # A held output is probed every hold_probe_interval (default 30 s); 2 s keeps it short.
        output = store.output(logstore="created-later", hold_probe_interval=2)
        with Agent(tmp_path, config_for(logs, output)) as agent:
            agent.start(env=store.env())
            wait_for(lambda: "LogStoreNotExist" in agent.logs(), 30, "the loud error")
            (line,) = [x for x in agent.logs().splitlines() if "LogStoreNotExist" in x]
            assert " ERROR " in line and "holding the data" in line, line
            # Offsets stay where they were while the data is held: nothing was delivered.
            wait_for(lambda: bool(checkpoint_offsets(tmp_path / "state")), 10, "a checkpoint")
            time.sleep(0.5)  # several checkpoint intervals (0.2 s)
            assert checkpoint_offsets(tmp_path / "state") == {str(app): 0}
            assert store.accepted_logs() == 0
            store.admin(
                "POST", "logstores", {"project": store.project, "logstore": "created-later"}
            )
            created = time.monotonic()
            wait_for(lambda: store.accepted_logs() >= 600, 15, "delivery after creation")
            print(f"delivered {time.monotonic() - created:.1f} s after the logstore was created")
            size = app.stat().st_size
            wait_for(
                lambda: checkpoint_offsets(tmp_path / "state") == {str(app): size},
                10,
                "the offset to move",
            )
            assert agent.stop() == 0
        counts = ids_in_records(store.records())
    assert set(counts) == set(range(600)) and max(counts.values()) == 1


def test_a_wrong_secret_is_said_loudly_and_everything_arrives_after_the_fix(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    app = logs / "app.log"
    lines = StampedLines(ZONE)
    app.write_bytes(lines.block(range(400)))
    wrong = "not-the-secret-1234"
    port = free_port()
    metrics = {"listen": f"127.0.0.1:{port}"}
    with LogstoreProcess() as store:
        with Agent(tmp_path, config_for(logs, store.output(), metrics=metrics)) as agent:
            agent.start(env=store.env(secret=wrong))
            wait_for(lambda: "SignatureNotMatch" in agent.logs(), 30, "the loud error")
            (line,) = [x for x in agent.logs().splitlines() if "SignatureNotMatch" in x]
            assert " ERROR " in line, line
            # Held until someone fixes the key: not ready, for a load balancer or an orchestrator.
            wait_for(lambda: http_status(port, "/ready") == 503, 10, "/ready to say held")
            assert http_status(port, "/health") == 200
            assert store.accepted_logs() == 0
            assert agent.stop() == 0
            assert checkpoint_offsets(tmp_path / "state") == {str(app): 0}
            agent.start(env=store.env())
            wait_for(lambda: store.accepted_logs() >= 400, 30, "delivery with the right secret")
            wait_for(lambda: http_status(port, "/ready") == 200, 10, "/ready again")
            assert agent.stop() == 0
            for secret in (wrong, store.access_key_secret):
                assert secret not in agent.logs()
        counts = ids_in_records(store.records())
        assert store.stats()["rejected"].get("SignatureNotMatch", 0) >= 1
    assert set(counts) == set(range(400)) and max(counts.values()) == 1


def http_status(port: int, path: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        return conn.getresponse().status
    except OSError:
        return 0
    finally:
        conn.close()


def check_output(agent: Agent, env: dict[str, str]) -> tuple[int, list[str]]:
    command = [sys.executable, "-m", "llmtail", "check-output", "-c", str(agent.config_path)]
    result = subprocess.run(
        command, capture_output=True, text=True, env={**os.environ, **env}, timeout=60, check=False
    )
    return result.returncode, (result.stdout + result.stderr).splitlines()


@pytest.mark.skipif(
    subprocess.run(
        [sys.executable, "-m", "llmtail", "check-output", "--help"],
        capture_output=True,
        check=False,
    ).returncode
    != 0,
    reason="llmtail check-output is not wired yet",
)
def test_check_output_says_in_one_line_what_works_and_what_is_wrong(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    with LogstoreProcess() as store:
        agent = Agent(tmp_path, config_for(logs, store.output()))
        code, out = check_output(agent, store.env())
        assert code == 0 and len(out) == 1 and out[0].startswith("OK"), out
        code, out = check_output(agent, store.env(secret="a-wrong-secret"))
        assert code == 1 and len(out) == 1 and "SignatureNotMatch" in out[0], out
        assert "a-wrong-secret" not in out[0]
        agent.write_config(config_for(logs, store.output(logstore="nope")))
        code, out = check_output(agent, store.env())
        assert code == 1 and len(out) == 1 and "LogStoreNotExist" in out[0], out
        assert store.accepted_logs() == 0
