"""The backfill's small parts without processes: rate parsing and the token bucket, the progress
line, --since/--until parsing (the window itself: test_stream), state matched by content
head."""

from __future__ import annotations

import gzip
import io
import os
import time
from pathlib import Path

import pytest

from llmtail.agent.config import parse_config
from llmtail.agent.modes.backfill_plan import parse_when, plan
from llmtail.agent.modes.pipeline import UserError, build_engine
from llmtail.agent.modes.ratelimit import Rate, TokenBucket, parse_rate
from llmtail.agent.ops.progress import Progress, Snapshot
from llmtail.agent.state.backfill_state import BackfillState
from llmtail.agent.state.checkpoint import CheckpointError
from tests.test_backfill_logs import DAY, Month, write_day


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("5000", Rate(5000, "records")),
        ("2.5", Rate(2.5, "records")),
        ("10MB", Rate(10e6, "bytes")),
        ("10mb/s", Rate(10e6, "bytes")),
        ("512KB", Rate(512e3, "bytes")),
        ("1MiB", Rate(1 << 20, "bytes")),
    ],
)
def test_max_rate_reads_records_or_bytes_per_second(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "0", "-5", "10 GB", "5000/m"])
def test_a_max_rate_that_means_nothing_is_refused(text: str) -> None:
    with pytest.raises(ValueError, match="--max-rate"):
        parse_rate(text)


def test_the_bucket_holds_the_long_run_rate_after_one_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1000, clock=clock)
    assert bucket.take(1000) == 0.0  # a second's worth saved up goes at once
    sent, waited = 0, 0.0
    for _ in range(100):  # then 50 chunks of 200: the caller waits what the bucket says
        delay = bucket.take(200)
        clock.now += delay
        waited += delay
        sent += 200
    assert waited == pytest.approx(sent / 1000)


def test_the_bucket_does_not_save_up_more_than_its_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(100, burst=100, clock=clock)
    clock.now += 3600  # idle for an hour
    assert bucket.take(100) == 0.0
    assert bucket.take(100) == pytest.approx(1.0)


def test_progress_on_a_terminal_redraws_one_line_with_rate_and_eta() -> None:
    clock = FakeClock()
    out = io.StringIO()
    progress = Progress(out, tty=True, clock=clock)
    clock.now += 10
    progress.update(Snapshot(1, 4, 50_000, 25_000_000, 100_000_000))
    progress.update(Snapshot(1, 4, 50_001, 25_000_001, 100_000_000))  # too soon: not drawn
    progress.close()
    text = out.getvalue()
    assert text.count("\r") == 1 and text.endswith("\x1b[K\n")
    assert "files 1/4" in text and "5,000/s" in text and "25%" in text and "ETA 30s" in text


def test_progress_without_a_terminal_is_a_plain_line_every_ten_seconds() -> None:
    clock = FakeClock()
    out = io.StringIO()
    progress = Progress(out, tty=False, clock=clock)
    for second in range(1, 31):
        clock.now += 1
        progress.update(Snapshot(0, 1, second * 100, second, 30))
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and all(x.startswith("backfill: files 0/1") for x in lines)
    assert "\r" not in out.getvalue()


@pytest.mark.parametrize(
    ("text", "epoch"),
    [
        ("2025-07-09", 1752019200 - 8 * 3600),
        ("2025-07-09 14:00", 1752069600 - 8 * 3600),
        ("2025-07-09T14:00:00", 1752069600 - 8 * 3600),
        ("2025-07-09T14:00:00+00:00", 1752069600),  # an explicit offset wins
    ],
)
def test_since_and_until_are_read_in_the_parser_timezone(text: str, epoch: int) -> None:
    assert parse_when(text, "Asia/Shanghai", "--since") == epoch


def test_a_since_that_is_not_a_time_is_a_user_error() -> None:
    with pytest.raises(UserError, match="--since 'yesterday'"):
        parse_when("yesterday", "UTC", "--since")


def test_state_recognises_content_by_its_head_whatever_the_path(tmp_path: Path) -> None:
    state = BackfillState(tmp_path)
    small = state.add("/logs/app.log", b"2025-07-09 first line\n")
    small.offset, small.done = 22, True
    state.save()
    again = BackfillState(tmp_path)
    again.load()
    grown = b"2025-07-09 first line\n2025-07-09 second line\n"
    found = again.find(grown)  # the same file, grown and renamed since
    assert found is not None and found.key == small.key and found.offset == 22
    assert again.find(b"2025-07-10 another file\n") is None


def test_a_state_file_of_another_kind_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "backfill.json").write_text(
        '{"version": 1, "checkpoints": [{"key": "k", "path": "p", "offset": 0, "identity": {}}]}'
    )
    with pytest.raises(CheckpointError, match="not a backfill entry"):
        BackfillState(tmp_path).load()


def test_files_are_read_in_the_order_of_their_content_and_timeless_ones_by_mtime(
    tmp_path: Path,
) -> None:
    m = Month()
    now = time.time()
    write_day(tmp_path / "app.log.1", 0, now - DAY, 10, gz=False, month=m)
    write_day(tmp_path / "app.log.10.gz", 10, now - 10 * DAY, 10, gz=True, month=m)
    write_day(tmp_path / "app.log.2", 20, now - 2 * DAY, 10, gz=False, month=m)
    banner = tmp_path / "banner.txt"  # no record header at all: placed by its mtime
    banner.write_bytes(b"  .   ____          _\n :: Spring Boot ::\n")
    os.utime(banner, (now - 5 * DAY, now - 5 * DAY))
    config = parse_config({"parser": {"timezone": "UTC"}})
    paths = sorted(str(p) for p in tmp_path.iterdir())
    ordered = plan(paths, config, build_engine(config), None)
    assert [Path(f.path).name for f in ordered] == [
        "app.log.10.gz",
        "banner.txt",
        "app.log.2",
        "app.log.1",
    ]
    gz = ordered[0]
    assert gz.content_size == len(gzip.decompress(Path(gz.path).read_bytes()))
