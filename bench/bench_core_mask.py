"""CPU cost of default masking per MB in the compiled core, next to the core's whole Stream.

    python bench/bench_core_mask.py [--size 20M] [--prompts 0.1] [--secrets 0.05] [--repeat 3]

The log of bench/bench_mask.py (the same planted secrets) goes through the core's Stream
(`engine: core`, LogGroup wire, 1 MiB chunks) with masking off and with the default rules,
alternately; reports the best CPU s per MB of each and the difference. Checks that no planted
value is left in the encoded batches, so a fast but broken masker cannot look good.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.bench_mask import SECRET_VALUES, write_log
from bench.gen_logs import parse_size
from llmtail.agent.engine.corestream import open_stream, parser
from llmtail.agent.engine.stream import StreamSettings
from llmtail.parsers.mask import MaskSettings
from llmtail.parsers.record import ParserSettings

CHUNK = 1 << 20


def time_run(data: bytes, mask: MaskSettings | None) -> tuple[float, bytes, int]:
    """CPU seconds of one Stream over `data`, the encoded bytes, and the values masked."""
    s = StreamSettings(parser=ParserSettings(timezone="Asia/Shanghai"), wire="loggroup", mask=mask)
    stream = open_stream(s, parser(s), "k", "/var/log/app.log", 0, "AB", 0)
    start = time.process_time()
    batches = []
    for at in range(0, len(data), CHUNK):
        batches += stream.feed(data[at : at + CHUNK], 0.0, 1.0)
    batches += stream.drain(1.0)
    elapsed = time.process_time() - start
    masked = sum(n for b in batches for n in b.masked.values())
    return elapsed, b"".join(b.data for b in batches), masked


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", default="20M", help="bytes of log to write: 20M, 100M")
    ap.add_argument("--prompts", type=float, default=0.1, help="share of prompt/result records")
    ap.add_argument("--secrets", type=float, default=0.05, help="share of those with secrets")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.log"
        records = write_log(path, parse_size(args.size), args.prompts, args.secrets, args.seed)
        data = path.read_bytes()
    mb = len(data) / 1e6
    off: list[float] = []
    on: list[float] = []
    for _ in range(args.repeat):
        off.append(time_run(data, None)[0])
        elapsed, encoded, masked = time_run(data, MaskSettings())
        on.append(elapsed)
        leaks = [v for v in SECRET_VALUES if v.encode() in encoded]
        if leaks:
            print(f"planted values left unmasked: {leaks}", file=sys.stderr)
            return 1
    best_off, best_on = min(off) / mb, min(on) / mb
    print(f"{records} records, {mb:.1f} MB, {masked} values masked, best of {args.repeat}")
    print(f"core Stream, masking off: {best_off * 1000:.1f} CPU ms/MB")
    print(f"core Stream, default masking: {best_on * 1000:.1f} CPU ms/MB")
    print(
        f"masking costs {1000 * (best_on - best_off):.1f} CPU ms/MB ({best_on / best_off - 1:+.0%})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
