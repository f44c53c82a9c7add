"""(No tests here: named test_backfill_* to stay among the backfill's own files.)

Generated rotated logs for the backfill tests: a month of days, half gzipped, written under a
test's tmp_path (never committed). Every record carries a unique request id (`req-%010d`), so
`tests.agentproc.ids_in_output` counts what arrived; times are UTC and end just before `now`.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

DAY = 86400
STEP = 1.5  # seconds between records: a busy service, like the parser benchmarks assume


def line(seq: int, when: float, extra_lines: int = 0) -> bytes:
    stamp = datetime.fromtimestamp(when, UTC)
    text = (
        f"{stamp:%Y-%m-%d %H:%M:%S}.{stamp.microsecond // 1000:03d} INFO  [traceId:t{seq}] "
        f"[c.a.c.s.i.ChatServiceImpl#chat():88] [main] - "
        f"chatbot,qa,qwen-plus,ws-1,req-{seq:010d},200,120,10,20,30,,\n"
    )
    for i in range(extra_lines):
        text += f"\tat com.example.Frame{i}.call(Frame.java:{i})\n"
    return text.encode()


@dataclass
class Month:
    files: list[Path] = field(default_factory=list)
    times: dict[int, int] = field(default_factory=dict)  # id -> epoch seconds
    by_file: dict[Path, list[int]] = field(default_factory=dict)

    @property
    def ids(self) -> set[int]:
        return set(self.times)


def write_day(
    path: Path, first_id: int, start: float, count: int, *, gz: bool, month: Month
) -> None:
    parts = []
    ids = []
    for i in range(count):
        seq = first_id + i
        when = start + i * STEP
        # A few multi-line records (stack traces), as real files have.
        parts.append(line(seq, when, extra_lines=3 if seq % 97 == 0 else 0))
        month.times[seq] = int(when)
        ids.append(seq)
    data = b"".join(parts)
    path.write_bytes(gzip.compress(data, compresslevel=1) if gz else data)
    month.files.append(path)
    month.by_file[path] = ids


def write_month(directory: Path, now: float, days: int = 30, per_day: int = 2000) -> Month:
    """Rotated files named so that name order is not time order:

    - even days: Logback's `app.YYYY-MM-DD.0.log.gz` (gzipped);
    - odd days: logrotate's `app.log.N` (plain, N counts back from today);
    - the newest day: the active `app.log`, its last line without a newline (a partial line).
    """
    month = Month()
    for d in range(days):
        start = now - (days - d) * DAY
        first = d * per_day
        age = days - 1 - d  # 0: today
        if age == 0:
            path = directory / "app.log"
        elif d % 2 == 0:
            path = directory / f"app.{datetime.fromtimestamp(start, UTC):%Y-%m-%d}.0.log.gz"
        else:
            path = directory / f"app.log.{age}"
        write_day(path, first, start, per_day, gz=path.suffix == ".gz", month=month)
    active = directory / "app.log"
    active.write_bytes(active.read_bytes().rstrip(b"\n"))
    return month
