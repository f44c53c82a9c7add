"""One engine Stream over the first MB of a log, in process: the core's cost per record alone.

    python bench/profile_core.py bench/data/bulk-100M.log --mb 100 [--wire ndjson] [--send]
    python bench/profile_core.py bench/data/bulk-100M.log --mb 40 --send --lz4 python|core
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out \
        python bench/profile_core.py bench/data/bulk-100M.log --mb 8
    callgrind_annotate --inclusive=yes /tmp/cg.out | grep llmtail_core

No reader thread, watcher, sink or metrics: just `Stream.feed` over 1 MiB chunks, with the
engine `run` builds from the config (default: config.example.yaml, masking and LLM aggregates
on), so the figures isolate framing, parsing, masking, encoding and the batch hand-over.
callgrind counts instructions, which a busy machine does not disturb: divide the inclusive
count of `Stream::__pymethod_feed__` by the records to compare two builds.

`--send` adds what a sender does with each batch before it lets go of it (lz4, MD5 of the body),
under the agent's malloc settings (agent/ops/malloc.py): the hand-over's copies and page faults
then count as they do in `llmtail run`; minor page faults per MB are printed too. `--metrics`
counts each batch's LLM aggregate into `/metrics`' totals (`LlmMetrics.count`), as `run` does:
the merge's cost then shows under `LlmAggregate::merge_window`. `--lz4` picks
the compressor: the core's `lz4_block` (what the agent uses on the core, the default with
`--engine core`) or python-lz4 (`--engine python`'s); the CPU seconds of compression alone and
the ratio are printed after the total.
"""

from __future__ import annotations

import argparse
import hashlib
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from llmtail.agent.config import load_config  # noqa: E402
from llmtail.agent.delivery.sls_client import python_lz4  # noqa: E402
from llmtail.agent.engine.corestream import lz4_block  # noqa: E402
from llmtail.agent.engine.stream import Encoded, SealedBatch  # noqa: E402
from llmtail.agent.modes.pipeline import build_engine  # noqa: E402
from llmtail.agent.ops.llm_metrics import LlmMetrics  # noqa: E402
from llmtail.agent.ops.malloc import tune_malloc  # noqa: E402


class Sender:
    """What SlsClient.put does with each batch's bytes; the batches are let go of after. Counts
    the CPU seconds of compression alone and the bytes in and out."""

    def __init__(self, compress: Callable[[Encoded], Encoded]) -> None:
        self.compress = compress
        self.cpu = 0.0
        self.raw = 0
        self.packed = 0

    def __call__(self, batches: list[SealedBatch]) -> int:
        records = 0
        for b in batches:
            start = time.process_time()
            body = self.compress(b.data)
            self.cpu += time.process_time() - start
            self.raw += len(b.data)
            self.packed += len(body)
            hashlib.md5(body).hexdigest()
            del body
            records += b.records
        return records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("path", type=Path)
    ap.add_argument("--mb", type=int, default=8, help="read this many MiB of the file")
    ap.add_argument("--wire", choices=("loggroup", "ndjson", "count"), default="loggroup")
    ap.add_argument("--engine", choices=("core", "python"), default="core")
    ap.add_argument("--config", type=Path, default=ROOT / "config.example.yaml")
    ap.add_argument("--send", action="store_true", help="also lz4 and MD5 each batch, as sent")
    ap.add_argument("--lz4", choices=("core", "python"), help="--send's lz4 (default: engine's)")
    ap.add_argument(
        "--metrics", action="store_true", help="also count each batch's LLM aggregate, as run"
    )
    args = ap.parse_args()
    if args.send:
        tune_malloc()
    core_lz4 = lz4_block(senders=4) if (args.lz4 or args.engine) == "core" else None
    sender = Sender(core_lz4 or python_lz4)
    handle = sender if args.send else lambda batches: sum(b.records for b in batches)
    metrics = LlmMetrics()

    def count(batches: list[SealedBatch]) -> int:
        """The batches' records, after what `--send` and `--metrics` ask of each."""
        if args.metrics:
            for b in batches:
                if b.llm is not None:
                    metrics.count(b.llm)
        return handle(batches)

    engine = build_engine(load_config(args.config), wire=args.wire, engine=args.engine)
    stream = engine.open(str(args.path), str(args.path), 0, 0)
    limit, read, records = args.mb << 20, 0, 0
    start, faults = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    with open(args.path, "rb", buffering=0) as f:
        while read < limit and (chunk := f.read(min(1 << 20, limit - read))):
            read += len(chunk)
            records += count(stream.feed(chunk, 0.0, 1.0))
    records += count(stream.drain(1.0))
    cpu = time.process_time() - start
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    mb = read / 1e6
    sent = f"+send({'core' if core_lz4 else 'python'}-lz4)" if args.send else ""
    sent += "+metrics" if args.metrics else ""
    print(
        f"{args.engine}/{args.wire}{sent}: {records:,} records, {mb:.1f} MB in {cpu:.2f} CPU s:"
        f" {records / cpu:,.0f} records/s, {cpu / mb:.4f} CPU s/MB, {faults / mb:,.0f} faults/MB"
    )
    if args.send and sender.packed:
        print(
            f"  lz4 alone: {sender.cpu / mb:.4f} CPU s/MB of log,"
            f" ratio {sender.raw / sender.packed:.4f} ({sender.raw:,} -> {sender.packed:,} bytes)"
        )


if __name__ == "__main__":
    main()
