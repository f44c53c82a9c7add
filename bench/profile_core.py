"""One engine Stream over the first MB of a log, in process: the core's cost per record alone.

    python bench/profile_core.py bench/data/bulk-100M.log --mb 100 [--wire ndjson]
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
        python bench/profile_core.py bench/data/bulk-100M.log --mb 8
    callgrind_annotate --inclusive=yes /tmp/cg.out | grep llmtail_core

No reader thread, watcher, sink or metrics: just `Stream.feed` over 1 MiB chunks, with the
engine `run` builds from the config (default: config.example.yaml, masking and LLM aggregates
on), so the figures isolate framing, parsing, masking, encoding and the batch hand-over.
callgrind counts instructions, which a busy machine does not disturb: divide the inclusive
count of `Stream::__pymethod_feed__` by the records to compare two builds.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmtail.agent.config import load_config  # noqa: E402
from llmtail.agent.modes.pipeline import build_engine  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--mb", type=int, default=8, help="read this many MiB of the file")
    ap.add_argument("--wire", choices=("loggroup", "ndjson", "count"), default="loggroup")
    ap.add_argument("--engine", choices=("core", "python"), default="core")
    ap.add_argument("--config", type=Path, default=ROOT / "config.example.yaml")
    args = ap.parse_args()
    engine = build_engine(load_config(args.config), wire=args.wire, engine=args.engine)
    stream = engine.open(str(args.path), str(args.path), 0, 0)
    limit, read, records = args.mb << 20, 0, 0
    start = time.process_time()
    with open(args.path, "rb", buffering=0) as f:
        while read < limit and (chunk := f.read(min(1 << 20, limit - read))):
            read += len(chunk)
            records += sum(b.records for b in stream.feed(chunk, 0.0, 1.0))
    records += sum(b.records for b in stream.drain(1.0))
    cpu = time.process_time() - start
    print(
        f"{args.engine}/{args.wire}: {records:,} records, {read / 1e6:.1f} MB in {cpu:.2f} CPU s:"
        f" {records / cpu:,.0f} records/s, {cpu / (read / 1e6):.4f} CPU s/MB"
    )


if __name__ == "__main__":
    main()
