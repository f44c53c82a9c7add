"""`llmtail backfill` as a real process over a generated month of rotated logs, half gzipped.

What users rely on: every record arrives once, oldest first, at the file output and at the
Logstore (old times restamped, the original kept); a kill -9 plus a rerun loses nothing and
re-sends at most what was in flight; a rerun of a finished backfill sends nothing; renamed and
later-gzipped files are recognised; damaged .gz files are named and the rest goes on.
"""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml
from typer.testing import CliRunner

from llmtail.agent.cli import app
from llmtail.agent.modes.backfill import run_backfill
from llmtail.agent.modes.pipeline import UserError
from llmtail.agent.reading.wholefile import read_chunks
from llmtail.agent.state.checkpoint import Checkpointer, StateDirLock
from tests.agentproc import ids_in_output, wait_for
from tests.logstore import LocalLogstore
from tests.test_backfill_logs import DAY, Month, write_day, write_month

DAYS, PER_DAY = 30, 500


@pytest.fixture(scope="module")
def month(tmp_path_factory: pytest.TempPathFactory) -> Month:
    """30 daily files x 500 records ending a few minutes ago; read-only for the tests."""
    logs = tmp_path_factory.mktemp("month")
    return write_month(logs, time.time(), DAYS, PER_DAY)


def glob_of(month: Month) -> str:
    return str(month.files[0].parent / "app*")


def write_config(workdir: Path, **extra: Any) -> Path:
    config = {
        "state_dir": str(workdir / "state"),
        "output": {"type": "file", "path": str(workdir / "out.ndjson")},
        "parser": {"timezone": "UTC"},
        "batch": {"max_records": 500},
        "max_in_flight_bytes": 1 << 20,
        "metrics": {"listen": None},
        **extra,
    }
    path = workdir / "llmtail.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def backfill(
    config: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmtail", "backfill", "-c", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
        check=False,
    )


def sls_output(logstore: LocalLogstore, **extra: Any) -> dict[str, Any]:
    return {
        "type": "sls",
        "endpoint": logstore.endpoint,
        "project": logstore.project,
        "logstore": logstore.logstore,
        "source": "10.0.0.1",
        "concurrency": 2,
        **extra,
    }


def backfill_here(config: Path, *paths: str, **options: str) -> tuple[int, str]:
    """The same command in this process (no interpreter start-up): exit status and summary."""
    out = io.StringIO()
    code = run_backfill(str(config), list(paths), out=out, **options)
    return code, out.getvalue()


def lines_in(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


def times_in_output(path: Path) -> list[int]:
    return [orjson.loads(line)["__time__"] for line in path.read_bytes().splitlines()]


@pytest.mark.slow
def test_a_month_arrives_once_oldest_first_and_a_rerun_sends_nothing(
    tmp_path: Path, month: Month
) -> None:
    config = write_config(tmp_path)
    first = backfill(config, glob_of(month))
    assert first.returncode == 0, first.stderr
    out = tmp_path / "out.ndjson"
    counts = ids_in_output(out)
    assert set(counts) == month.ids, "every record, the partial last line of app.log included"
    assert max(counts.values()) == 1
    # Name order is not time order (app.log.9 is older than app.log.1): content order wins.
    times = times_in_output(out)
    assert times == sorted(times)
    assert f"files: {DAYS}" in first.stdout
    assert f"records sent: {DAYS * PER_DAY:,}" in first.stdout
    # A multi-line record keeps its stack trace.
    traced = [orjson.loads(x) for x in out.read_bytes().splitlines() if b"req-0000000097" in x]
    assert "Frame2.call" in traced[0]["message"]

    size = out.stat().st_size
    code, summary = backfill_here(config, glob_of(month))
    assert code == 0
    assert out.stat().st_size == size
    assert "nothing to send" in summary
    assert "records sent: 0" in summary


@pytest.mark.slow
def test_the_month_reaches_the_logstore_once_with_old_times_restamped(
    tmp_path: Path, month: Month, logstore: LocalLogstore
) -> None:
    config = write_config(tmp_path, output=sls_output(logstore))
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": logstore.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": logstore.access_key_secret,
    }
    result = backfill(config, glob_of(month), env=env)
    assert result.returncode == 0, result.stderr
    logs = logstore.logs()
    ids = Counter(int(dict(log.contents)["request_id"][4:]) for log in logs)
    assert set(ids) == month.ids and max(ids.values()) == 1
    week_ago = time.time() - 7 * DAY
    restamped = 0
    for log in logs:
        fields = dict(log.contents)
        own = month.times[int(fields["request_id"][4:])]
        if "original_time" in fields:  # too old for the Logstore: sent now, own time kept
            assert fields["original_time"] == str(own)
            assert own < week_ago + 3600, "only times near or past the edge are restamped"
            assert log.time > week_ago
            restamped += 1
        else:
            assert own > week_ago
            assert log.time == own
    assert restamped >= 22 * PER_DAY
    assert (
        f"restamped (too old for the Logstore; original time in field original_time): {restamped:,}"
        in result.stdout
    )


def test_with_time_policy_reject_old_records_are_counted_named_and_exit_1(
    tmp_path: Path, logstore: LocalLogstore, monkeypatch: pytest.MonkeyPatch
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    now = time.time()
    write_day(logs / "app.log.2.gz", 0, now - 10 * DAY, 300, gz=True, month=m)
    write_day(logs / "app.log.1", 300, now - DAY, 300, gz=False, month=m)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_ID", logstore.access_key_id)
    monkeypatch.setenv("ALIBABA_CLOUD_ACCESS_KEY_SECRET", logstore.access_key_secret)
    config = write_config(tmp_path, output=sls_output(logstore, time_policy="reject"))
    code, summary = backfill_here(config, str(logs / "*"))
    assert code == 1
    ids = {int(r["request_id"][4:]) for r in logstore.records()}
    assert ids == set(range(300, 600)), "the recent day only"
    assert "not delivered (refused or time_policy reject): 300" in summary
    assert f"not delivered (refused by the output): {logs / 'app.log.2.gz'}" in summary


@pytest.mark.slow
def test_kill_9_midway_and_a_rerun_lose_nothing_and_resend_at_most_what_was_in_flight(
    tmp_path: Path, month: Month
) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "out.ndjson"
    total = DAYS * PER_DAY
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmtail",
            "backfill",
            "-c",
            str(config),
            "--max-rate",
            "5000",
            glob_of(month),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for(lambda: lines_in(out) >= total // 3, 60, "a third of the month")
        proc.kill()  # kill -9: no drain, no last state save
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = ids_in_output(out)
    assert len(before) < total, "the kill came too late to test anything"
    rerun = backfill(config, glob_of(month))
    assert rerun.returncode == 0, rerun.stderr
    counts = ids_in_output(out)
    assert set(counts) == month.ids, "nothing lost"
    duplicates = sum(n - 1 for n in counts.values())
    print(f"kill -9 after {len(before):,} of {total:,} records: {duplicates:,} sent twice")
    # At most what was in flight (max_in_flight_bytes: 1 MiB of records, plus the open batch)
    # and what was acknowledged in the last state-save interval (0.1 s; the bucket's first
    # second goes at full speed, a few thousand records/s on this machine).
    head = next(read_chunks(str(month.files[0])))[:1000]  # decompressed: files may be .gz
    smallest = min(len(line) for line in head.splitlines() if line)
    assert duplicates <= (1 << 20) // smallest + 500 + 3000
    assert "already delivered, skipped" in rerun.stdout

    size = out.stat().st_size
    code, summary = backfill_here(config, glob_of(month))
    assert code == 0 and out.stat().st_size == size
    assert "nothing to send" in summary


def test_sigint_delivers_what_is_in_flight_saves_and_exits_130(
    tmp_path: Path, month: Month
) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "out.ndjson"
    files = [str(p) for p in month.files[:10]]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "llmtail",
            "backfill",
            "-c",
            str(config),
            # 5,000 records at 1,000/s (after a one-second burst): SIGINT lands mid-run even
            # on a slow machine, never after the end (which would be a clean exit 0).
            "--max-rate",
            "1000",
            *files,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: lines_in(out) >= 1500, 60, "some records")
        proc.send_signal(signal.SIGINT)
        stdout, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130
    assert "interrupted by SIGINT" in stdout
    rerun = backfill(config, *files)
    assert rerun.returncode == 0
    counts = ids_in_output(out)
    expected = {i for p in month.files[:10] for i in month.by_file[p]}
    assert set(counts) == expected
    assert max(counts.values()) == 1, "a clean stop re-sends nothing"


def test_sigterm_exits_143_and_the_rerun_finishes_without_duplicates(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    write_day(logs / "app.log", 0, time.time() - DAY, 8000, gz=False, month=m)
    config = write_config(tmp_path)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM))
    timer.start()  # the handler is this process's for the run, then restored
    try:
        code, summary = backfill_here(config, str(logs / "app.log"), max_rate="5000")
    finally:
        timer.cancel()
    assert code == 143
    assert "interrupted by SIGTERM" in summary and f"not finished: {logs / 'app.log'}" in summary
    code, summary = backfill_here(config, str(logs / "app.log"))
    assert code == 0
    counts = ids_in_output(tmp_path / "out.ndjson")
    assert set(counts) == m.ids and max(counts.values()) == 1


def test_a_file_renamed_and_gzipped_after_the_fact_is_recognised(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    now = time.time()
    write_day(logs / "app.log.1", 0, now - 2 * DAY, 500, gz=False, month=m)
    config = write_config(tmp_path)
    assert backfill_here(config, str(logs / "app.log*"))[0] == 0
    # logrotate's next turn: .1 becomes .2.gz, a new .1 appears.
    (logs / "app.log.2.gz").write_bytes(gzip.compress((logs / "app.log.1").read_bytes()))
    (logs / "app.log.1").unlink()
    write_day(logs / "app.log.1", 500, now - DAY, 300, gz=False, month=m)
    code, summary = backfill_here(config, str(logs / "app.log*"))
    assert code == 0
    counts = ids_in_output(tmp_path / "out.ndjson")
    assert set(counts) == m.ids and max(counts.values()) == 1
    assert "files: 2 (1 complete before this run)" in summary


def test_since_and_until_load_a_window_and_count_the_rest(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    # Three days in UTC: 2025-07-08, -09, -10, 1,000 records each from 10:00.
    for d in range(3):
        start = 1751968800 + d * DAY  # 2025-07-08 10:00:00 UTC
        write_day(logs / f"app.log.{3 - d}", d * 1000, start, 1000, gz=d == 1, month=m)
    config = write_config(tmp_path)
    code, summary = backfill_here(
        config, str(logs / "*"), since="2025-07-09", until="2025-07-10 10:00:30"
    )
    assert code == 0
    got = set(ids_in_output(tmp_path / "out.ndjson"))
    # --since is inclusive, --until exclusive: day 2 whole, 20 records of day 3 (1.5 s apart).
    assert got == set(range(1000, 2020))
    assert "skipped by time window: 1,980 (1,000 before --since, 980 after --until)" in summary


def test_max_rate_limits_records_per_second(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    write_day(logs / "app.log", 0, time.time() - DAY, 12_000, gz=False, month=m)
    config = write_config(tmp_path)
    started = time.monotonic()
    code = run_backfill(str(config), [str(logs / "app.log")], max_rate="5000", out=io.StringIO())
    elapsed = time.monotonic() - started
    assert code == 0
    assert set(ids_in_output(tmp_path / "out.ndjson")) == m.ids
    # One second's worth may go at once (the bucket's burst); the rest at the rate.
    rate = (12_000 - 5000) / elapsed
    print(f"--max-rate 5000: {12_000:,} records in {elapsed:.2f} s, {rate:,.0f}/s after the burst")
    assert rate <= 5000 * 1.1
    assert elapsed < 12_000 / 5000 * 4, "generous: a loaded machine is slower, not faster"


def ids_loosely(path: Path) -> Iterator[int]:
    for line in path.read_bytes().splitlines():
        request_id = orjson.loads(line).get("request_id", "")
        if isinstance(request_id, str) and request_id[4:].isdigit():
            yield int(request_id[4:])


def corrupt(data: bytes) -> bytes:
    bad = bytearray(data)
    for i in range(len(bad) // 2, len(bad) // 2 + 64):
        bad[i] ^= 0x55
    return bytes(bad)


def test_truncated_and_corrupt_gz_are_named_with_what_was_recovered_and_the_rest_goes_on(
    tmp_path: Path,
) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    now = time.time()
    write_day(logs / "app.log.3.gz", 0, now - 3 * DAY, 3000, gz=True, month=m)
    write_day(logs / "app.log.2.gz", 3000, now - 2 * DAY, 3000, gz=True, month=m)
    write_day(logs / "app.log.1", 6000, now - DAY, 3000, gz=False, month=m)
    truncated, broken = logs / "app.log.3.gz", logs / "app.log.2.gz"
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size * 2 // 3])
    broken.write_bytes(corrupt(broken.read_bytes()))
    config = write_config(tmp_path)
    result = backfill(config, str(logs / "*"))
    assert result.returncode == 1, "not everything could be delivered"
    # What a corrupt deflate stream yields before its CRC fails may be garbage (the reason is
    # in the summary), so only the truncated and the healthy files' ids are exact.
    counts = Counter(i for i in ids_loosely(tmp_path / "out.ndjson"))
    assert all(counts[i] == 1 for i in range(6000, 9000)), "the healthy file, whole and once"
    recovered_ids = sorted(i for i in counts if i < 3000)
    assert recovered_ids == list(range(len(recovered_ids))) and recovered_ids, "a prefix"
    assert max(counts[i] for i in recovered_ids) == 1
    lines = result.stdout.splitlines()
    assert any(x.startswith(f"damaged: {truncated}: recovered ") for x in lines)
    assert any(x.startswith(f"damaged: {broken}: recovered ") for x in lines)
    # A rerun sends nothing and still names them (the verdict of the same command is stable).
    code, summary = backfill_here(config, str(logs / "*"))
    assert code == 1
    assert f"damaged: {truncated}" in summary
    assert "records sent: 0" in summary


def test_runs_beside_the_live_agent_without_touching_its_checkpoints(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    write_day(logs / "app.log.1", 0, time.time() - DAY, 200, gz=False, month=m)
    config = write_config(tmp_path)
    state = tmp_path / "state"
    live = Checkpointer(state)
    live.save({})
    before = live.path.read_bytes()
    with StateDirLock(state):  # `llmtail run` holds the state_dir
        code = run_backfill(str(config), [str(logs / "app.log.1")], out=io.StringIO())
    assert code == 0
    assert live.path.read_bytes() == before
    assert (state / "backfill.json").exists()
    assert set(ids_in_output(tmp_path / "out.ndjson")) == m.ids


def test_a_second_backfill_on_the_same_state_dir_is_refused_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "app.log").write_bytes(b"x\n")
    config = write_config(tmp_path)
    with StateDirLock(tmp_path / "state", "backfill.lock"), pytest.raises(UserError) as caught:
        run_backfill(str(config), [str(tmp_path / "app.log")], out=io.StringIO())
    message = str(caught.value)
    assert "another llmtail backfill" in message and "wait for it to finish" in message


def test_dry_run_reports_and_sends_nothing(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    m = Month()
    write_day(logs / "app.log.1", 0, time.time() - DAY, 200, gz=True, month=m)
    config = write_config(tmp_path)
    out = io.StringIO()
    assert run_backfill(str(config), [str(logs / "*")], dry_run=True, out=out) == 0
    assert "records: 200  (llm_call 200)" in out.getvalue()
    assert "nothing was sent" in out.getvalue()
    assert not (tmp_path / "out.ndjson").exists()
    assert not (tmp_path / "state" / "backfill.json").exists()


@pytest.fixture
def cli() -> Iterator[CliRunner]:
    yield CliRunner()


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["{logs}/nope.log"], "nope.log: no such file"),
        (["--since", "last tuesday", "{logs}/app.log"], "--since 'last tuesday': expected"),
        (["--max-rate", "fast", "{logs}/app.log"], "--max-rate 'fast': expected"),
    ],
)
def test_a_usage_mistake_is_one_line_and_exit_2(
    tmp_path: Path, cli: CliRunner, args: list[str], says: str
) -> None:
    (tmp_path / "app.log").write_bytes(b"x\n")
    config = write_config(tmp_path)
    argv = [a.format(logs=tmp_path) for a in args]
    result = cli.invoke(app, ["backfill", "-c", str(config), *argv])
    assert result.exit_code == 2
    message = result.output.strip()
    assert message.count("\n") == 0 and says in message and "Traceback" not in message


def test_a_missing_path_from_a_real_process_is_one_line_and_exit_2(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = backfill(config, str(tmp_path / "missing.log.gz"))
    assert result.returncode == 2
    assert result.stderr.strip() == f"llmtail: {tmp_path / 'missing.log.gz'}: no such file"
