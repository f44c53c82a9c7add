"""Parse-only throughput of llmtail's parser against a naive script, in the same run.

    python bench/gen_logs.py /tmp/app.log --size 200M --multiline 0.1
    python bench/bench_parse.py /tmp/app.log [--chunk 1M] [--profile]
    python bench/bench_parse.py /tmp/app.log --validate core,python

"llmtail" does what `validate` does per record: frame, parse, count events and errors. The
baseline is what a user writes instead: `re.match` per line, continuation lines appended,
`split(',')` of the message. Both run on one core in this process; the ratio is
llmtail / baseline.

`--validate core,python` also times `llmtail validate --engine ENGINE` itself, in process
(`validate_files` with the engine the command builds: default config, the count wire (nothing
encoded, as `validate` without `--records`), default masking, LLM aggregates), so the compiled
core, the Python engine and the naive script are measured in one run.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gen_logs import parse_size
from llmtail.agent.config import Config
from llmtail.agent.engine.engine import EngineKind
from llmtail.agent.modes.pipeline import build_engine
from llmtail.agent.modes.validate import validate_files
from llmtail.parsers.record import ParserSettings, RecordParser

_NAIVE = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) +(\w+) +\[traceId:(.*?)\] "
    r"\[(.*?)#(.*?)\(\):(.*?)\] \[(.*?)\] - (.*)$"
)


def run_llmtail(path: Path, chunk: int) -> tuple[int, Counter[str]]:
    parser = RecordParser(ParserSettings(timezone="Asia/Shanghai"))
    asm = parser.assembler()
    parse = parser.parse
    events: Counter[str] = Counter()
    records = 0
    with open(path, "rb", buffering=0) as f:
        while data := f.read(chunk):
            for frame in asm.feed(data, 0.0):
                fields = parse(frame).fields
                events[fields.get("event") or "parse_error"] += 1  # type: ignore[index]
                records += 1
    for frame in asm.drain():
        fields = parse(frame).fields
        events[fields.get("event") or "parse_error"] += 1  # type: ignore[index]
        records += 1
    return records, events


def run_validate(path: Path, engine: str) -> tuple[int, Counter[str]]:
    """What `llmtail validate --engine ENGINE PATH` does, without the CLI's start-up."""
    kind: EngineKind = "core" if engine == "core" else "python"
    built = build_engine(Config(), wire="count", engine=kind)  # as validate without --records
    report = validate_files([str(path)], built)
    events = Counter(report.events)
    if report.parse_errors:
        events["parse_error"] = report.parse_errors
    return report.records, events


def run_naive(path: Path, chunk: int) -> tuple[int, Counter[str]]:
    events: Counter[str] = Counter()
    records = 0
    current: list[str] | None = None

    def finish(rec: list[str]) -> None:
        message = "\n".join(rec[7:])
        parts = message.split(",")
        events["llm_call" if len(parts) >= 12 else "log"] += 1

    with open(path, encoding="utf-8", errors="replace", buffering=chunk) as f:
        for line in f:
            m = _NAIVE.match(line.rstrip("\n"))
            if m:
                if current is not None:
                    finish(current)
                    records += 1
                current = list(m.groups())
            elif current is not None:
                current.append(line.rstrip("\n"))
    if current is not None:
        finish(current)
        records += 1
    return records, events


def measure(
    name: str, fn: Callable[[], tuple[int, Counter[str]]], size: int, repeat: int = 1
) -> float:
    """Best of `repeat` runs by CPU time (other processes on the host only slow runs down);
    the median is printed too: on a shared VM the same run varies by up to 2x."""
    cpus: list[float] = []
    wall = float("inf")
    for _ in range(repeat):
        start_cpu, start = time.process_time(), time.perf_counter()
        records, events = fn()
        cpus.append(time.process_time() - start_cpu)
        wall = min(wall, time.perf_counter() - start)
    cpu, median = min(cpus), sorted(cpus)[len(cpus) // 2]
    rate = records / cpu if cpu else 0.0
    spread = f" (median {records / median:,.0f})" if repeat > 1 and median else ""
    print(
        f"{name:>9}: {records:,} records in {wall:.1f} s wall / {cpu:.1f} s CPU: "
        f"{rate:,.0f} records/s{spread}, {size / cpu / 1e6:.1f} MB/s (CPU)  "
        f"{dict(events.most_common(5))}"
    )
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="parse-only throughput vs a naive script")
    ap.add_argument("path", type=Path)
    ap.add_argument("--chunk", default="1M", help="read size, e.g. 64K, 1M")
    ap.add_argument("--profile", action="store_true", help="cProfile the llmtail run only")
    ap.add_argument("--no-baseline", action="store_true")
    ap.add_argument("--repeat", type=int, default=1, help="best of N runs (by CPU time)")
    ap.add_argument(
        "--validate",
        default="",
        help="also time `validate` with these engines, e.g. core,python",
    )
    ap.add_argument("--no-parsers", action="store_true", help="skip the parsers/ loop")
    args = ap.parse_args(argv)
    try:
        size = args.path.stat().st_size
        chunk = parse_size(args.chunk)
    except (OSError, ValueError) as exc:
        print(f"bench_parse: {exc}", file=sys.stderr)
        return 2
    print(f"{args.path}: {size / 1e6:.1f} MB, chunk {chunk} bytes, python {sys.version.split()[0]}")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run_llmtail, args.path, chunk)
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return 0
    rates: dict[str, float] = {}
    for engine in filter(None, args.validate.split(",")):
        if engine not in ("core", "python"):
            print(f"bench_parse: --validate takes core and python, not {engine!r}", file=sys.stderr)
            return 2
        rates[engine] = measure(
            engine, lambda e=engine: run_validate(args.path, e), size, args.repeat
        )
    if not args.no_parsers:
        rates["llmtail"] = measure(
            "llmtail", lambda: run_llmtail(args.path, chunk), size, args.repeat
        )
    if not args.no_baseline:
        naive = measure("naive", lambda: run_naive(args.path, chunk), size, args.repeat)
        for name, rate in rates.items():
            print(f"    ratio: {name} / naive = {rate / naive:.2f}x" if naive else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
