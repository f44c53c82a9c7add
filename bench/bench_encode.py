"""SLS encoding throughput: parsed records -> LogGroup bytes -> lz4, against the SDK's way.

    python bench/gen_logs.py /tmp/app.log --size 200M --multiline 0.1
    python bench/bench_encode.py /tmp/app.log [--records 200000] [--repeat 3] [--profile]

The records are parsed first (not timed). "llmtail" is what the `sls` output does per batch:
`LogEncoder.encode_log` per record, `pack` into LogGroups of <= 4096 logs, `SerializeToString`
and the lz4 block compression PutLogs sends. The baseline is what `put_logs` with `LogItem`s
does: a protobuf `LogGroup` built content by content (the SDK's generated classes), serialized
and compressed the same way. Both run on one core in this process; rates are by CPU time.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import lz4.block
from aliyun.log.log_logs_pb2 import LogGroup  # type: ignore[attr-defined]

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmtail.agent.engine.loggroup import LogEncoder, encode_trailer, pack
from llmtail.parsers.record import ParserSettings, Record, RecordParser

Fields = Mapping[str, str | int | None]
_TAGS = (("__hostname__", "bench-host"), ("__path__", "/var/log/app/app.log"))


def load(path: Path, limit: int) -> list[Record]:
    parser = RecordParser(ParserSettings(timezone="Asia/Shanghai"))
    asm = parser.assembler()
    records: list[Record] = []
    with open(path, "rb") as f:
        while len(records) < limit and (data := f.read(1 << 20)):
            records += map(parser.parse, asm.feed(data, 0.0))
    records += map(parser.parse, asm.drain())
    return records[:limit]


def run_llmtail(records: list[Record]) -> int:
    """Encoded, packed, serialized and compressed bytes of all records."""
    encode = LogEncoder().encode_log
    trailer = encode_trailer("", "10.0.0.1", (*_TAGS, ("__pack_id__", "ABCDEF-1")))
    total = 0
    for start in range(0, len(records), 4096):
        logs = [encode(r.fields, r.time or 0, r.time_ns) for r in records[start : start + 4096]]
        for group in pack(logs, trailer):
            total += len(lz4.block.compress(group.SerializeToString(), store_size=False))
    return total


def run_sdk(records: list[Record]) -> int:
    """What `LogClient.put_logs` does with LogItems: one protobuf object per content."""
    total = 0
    for start in range(0, len(records), 4096):
        group = LogGroup()
        for r in records[start : start + 4096]:
            log = group.Logs.add()
            log.Time = r.time or 0
            for key, value in r.fields.items():
                if value is None:
                    continue
                content = log.Contents.add()
                content.Key = key
                content.Value = str(value).encode("utf-8")
        group.Source = "10.0.0.1"
        for key, value in (*_TAGS, ("__pack_id__", "ABCDEF-1")):
            tag = group.LogTags.add()
            tag.Key, tag.Value = key, value
        total += len(lz4.block.compress(group.SerializeToString(), store_size=False))
    return total


def measure(name: str, fn: Callable[[], int], records: int, repeat: int) -> float:
    """Best of `repeat` runs by CPU time (other processes on the host only slow runs down)."""
    cpu = float("inf")
    size = 0
    for _ in range(repeat):
        start = time.process_time()
        size = fn()
        cpu = min(cpu, time.process_time() - start)
    rate = records / cpu if cpu else 0.0
    print(
        f"{name:>9}: {records:,} records in {cpu:.2f} s CPU: {rate:,.0f} records/s, "
        f"{cpu / records * 1e6:.2f} us/record, {size / 1e6:.1f} MB lz4"
    )
    return rate


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="LogGroup encoding throughput vs the SDK")
    ap.add_argument("path", type=Path)
    ap.add_argument("--records", type=int, default=200_000, help="records to encode")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs (by CPU time)")
    ap.add_argument("--profile", action="store_true", help="cProfile the llmtail run only")
    ap.add_argument("--no-baseline", action="store_true")
    args = ap.parse_args(argv)
    try:
        records = load(args.path, args.records)
    except OSError as exc:
        print(f"bench_encode: {exc}", file=sys.stderr)
        return 2
    print(f"{args.path}: {len(records):,} records, python {sys.version.split()[0]}")
    if args.profile:
        prof = cProfile.Profile()
        prof.runcall(run_llmtail, records)
        pstats.Stats(prof).sort_stats("tottime").print_stats(12)
        return 0
    ours = measure("llmtail", lambda: run_llmtail(records), len(records), args.repeat)
    if not args.no_baseline:
        sdk = measure("sdk", lambda: run_sdk(records), len(records), args.repeat)
        print(f"    ratio: llmtail / sdk = {ours / sdk:.2f}x" if sdk else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
