"""`llmtail backfill` of gzipped history into the local Logstore: MB/s and CPU seconds per MB.

    PYTHONPATH=. python bench/bench_backfill.py [--size 1G] [--files 10] [--engine core]

Generates `--size` of seed-format log (bench/gen_logs.py, 10% multi-line, stamped in the last
hours so SLS's 7-day window accepts every record), cuts it at record boundaries into `--files`
rotated files and gzips them (`gzip -6`, what logrotate does), all once under bench/data/ (ignored
by git). Then `taskset -c 0 python -m llmtail backfill` ships them to the local Logstore
(`--count-only`, pinned to CPU 1); the clock and the rusage (wait4) cover the whole command,
start-up included, and the run counts only if the Logstore acknowledged every record.
"""

from __future__ import annotations

import argparse
import gzip
import json
import multiprocessing
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import yaml  # noqa: E402

from bench.gen_logs import generate, parse_size  # noqa: E402
from tests.agentproc import LogstoreProcess  # noqa: E402

DATA = REPO / "bench" / "data"


def history(size: int, files: int) -> tuple[list[Path], int, int]:
    """The gzipped files, oldest first; (paths, records, uncompressed bytes). Made once."""
    folder = DATA / f"history-{size}-{files}"
    meta = folder / "meta.json"
    if meta.exists():
        m = json.loads(meta.read_text())
        if datetime.now(UTC) - datetime.fromisoformat(m["start"]) < timedelta(days=6):
            return [folder / name for name in m["files"]], m["records"], m["bytes"]
    folder.mkdir(parents=True, exist_ok=True)
    plain = folder / "all.log"
    span = timedelta(seconds=size / 215 * 0.010 * 1.3)  # gen_logs: ~215 bytes, ~10 ms a record
    start = datetime.now(UTC) - span - timedelta(minutes=30)
    print(f"generating {size / 1e6:.0f} MB of history ...", flush=True)
    stats = generate(plain, size, multiline=0.1, seed=11, start=start.replace(tzinfo=None))
    data = plain.read_bytes()
    plain.unlink()
    names: list[str] = []
    at = 0
    for n in range(files):
        end = len(data) if n == files - 1 else _record_start(data, len(data) * (n + 1) // files)
        name = f"app.log.{files - n}.gz"  # logrotate's numbering: the highest is the oldest
        with gzip.open(folder / name, "wb", compresslevel=6) as out:
            out.write(data[at:end])
        names.append(name)
        at = end
    meta.write_text(
        json.dumps(
            {"files": names, "records": stats.records, "bytes": len(data), "start": str(start)}
        )
    )
    return [folder / name for name in names], stats.records, len(data)


def history_apart(size: int, files: int) -> tuple[list[Path], int, int]:
    """`history`, made in a child process. A parent that had held the gigabyte passed its RSS on
    to the agent it started: a child's ru_maxrss counts the memory it had before its exec (the
    first run after generating once reported 1,197 MiB for an agent that peaks at ~80)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(history, (size, files))


def _record_start(data: bytes, near: int) -> int:
    """The first line at or after `near` that starts a record (a timestamp at its start)."""
    at = data.index(b"\n", near) + 1
    while not data[at : at + 4].isdigit():
        at = data.index(b"\n", at) + 1
    return at


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", default="1G")
    ap.add_argument("--files", type=int, default=10)
    ap.add_argument("--engine", choices=("core", "python"), default="core")
    ap.add_argument("--tree", type=Path, default=REPO, help="the checkout whose agent runs")
    args = ap.parse_args(argv)
    paths, records, size = history_apart(parse_size(args.size), args.files)
    gz = sum(p.stat().st_size for p in paths)
    print(f"{len(paths)} files, {size / 1e6:.0f} MB of log ({gz / 1e6:.0f} MB gzipped), {records}")
    work = DATA / "run-backfill"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    work.mkdir(parents=True)
    with LogstoreProcess(count_only=True, cpu=1) as store:
        config = {
            "inputs": [{"paths": [str(work / "unused.log")]}],
            "parser": {"timezone": "UTC"},
            "output": store.output(),
            "state_dir": str(work / "state"),
            "engine": args.engine,
        }
        (work / "llmtail.yaml").write_text(yaml.safe_dump(config))
        command = ["taskset", "-c", "0", sys.executable, "-m", "llmtail", "backfill"]
        command += ["-c", str(work / "llmtail.yaml"), *map(str, paths)]
        env = {**os.environ, **store.env(), "PYTHONPATH": str(args.tree.resolve())}
        started = time.perf_counter()
        with open(work / "backfill.log", "wb") as log:
            proc = subprocess.Popen(command, stdout=log, stderr=log, env=env)
            _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        accepted = store.accepted_logs()
    code = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    print(
        f"backfill ({args.engine}, {args.tree}): exit {code}, {accepted}/{records} acknowledged, "
        f"{wall:.1f} s: {size / 1e6 / wall:.1f} MB/s of log, {cpu:.1f} CPU s = "
        f"{cpu / (size / 1e6):.3f} CPU s/MB, peak RSS {usage.ru_maxrss / 1024:.0f} MiB"
    )
    return 0 if code == 0 and accepted == records else 1


if __name__ == "__main__":
    raise SystemExit(main())
