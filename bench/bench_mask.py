"""CPU cost of default masking per MB of log, next to the parsing it is added to.

    python bench/bench_mask.py [--size 20M] [--prompts 0.1] [--secrets 0.05] [--repeat 3]

Writes a seed-format log (bench/gen_logs records) in which `--prompts` of the records are
`prompt:`/`result:` records and `--secrets` of those carry planted values (phone, ID and card
numbers, email, API and AccessKeys, a password pair), then times, on one core, in this process:
parse only (what every engine does anyway), and parse + `Masker.mask_fields` with the default
rules. Reports CPU ms per MB of file for each, the difference, and that difference against the
end-to-end figure of bench/README.md (`--e2e-cpu-per-mb`, CPU s per MB of `llmtail run`).
Checks that every planted value was masked, so a fast but broken masker cannot look good.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.gen_logs import _Writer, parse_size
from llmtail.parsers.mask import Masker, MaskSettings
from llmtail.parsers.record import ParserSettings, RecordParser

PLANTED = (
    "我的手机号是13812345678，请联系我",
    "身份证号11010519491231002X，卡号6200000000000005",
    "邮箱 zhang.san@example.com 密码：hunter2",
    'config {"api_key": "sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c"}',
    "AccessKeyId LTAI5tQ8mZ3xYk9Wv2Rb7Nc1 leaked",
)
SECRET_VALUES = (
    "13812345678",
    "11010519491231002X",
    "6200000000000005",
    "zhang.san",
    "hunter2",
    "3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c",
    "5tQ8mZ3xYk9Wv2Rb7Nc1",
)


def write_log(path: Path, size: int, prompts: float, secrets: float, seed: int) -> int:
    """Records from gen_logs with the prompt/result share set to `prompts`; returns records."""
    rng = random.Random(seed)
    writer = _Writer(rng, datetime(2025, 7, 9, 8), 0.1)
    written = records = 0
    with open(path, "w", encoding="utf-8") as out:
        while written < size:
            text, _ = writer.record()
            is_prompt = " - prompt: " in text or " - result: " in text
            if is_prompt != (rng.random() < prompts):
                continue  # draw again until the record has the kind the share asks for
            if is_prompt and rng.random() < secrets:
                text = text.rstrip("\n") + " " + rng.choice(PLANTED) + "\n"
            out.write(text)
            written += len(text.encode())
            records += 1
    return records


def time_run(path: Path, masker: Masker | None) -> tuple[float, int, dict[str, int]]:
    parser = RecordParser(ParserSettings(timezone="Asia/Shanghai"))
    data = path.read_bytes()
    totals: dict[str, int] = {}
    leaks = 0
    start = time.process_time()
    asm = parser.assembler()
    frames = asm.feed(data, 0.0) + asm.drain()
    for frame in frames:
        fields = parser.parse(frame).fields
        if masker is not None:
            for rule, n in masker.mask_fields(fields).items():
                totals[rule] = totals.get(rule, 0) + n
    elapsed = time.process_time() - start
    if masker is not None:
        for frame in frames:  # outside the clock: nothing planted may survive
            fields = parser.parse(frame).fields
            masker.mask_fields(fields)
            text = " ".join(str(v) for v in fields.values())
            leaks += any(value in text for value in SECRET_VALUES)
    return elapsed, leaks, totals


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", default="20M", help="bytes of log to write: 20M, 100M")
    ap.add_argument("--prompts", type=float, default=0.1, help="share of prompt/result records")
    ap.add_argument("--secrets", type=float, default=0.05, help="share of those with secrets")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--e2e-cpu-per-mb", type=float, default=0.235, help="from bench/README.md")
    args = ap.parse_args(argv)
    size = parse_size(args.size)
    masker = Masker.from_config(MaskSettings())
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "app.log"
        records = write_log(path, size, args.prompts, args.secrets, args.seed)
        mb = path.stat().st_size / 2**20
        plain, masked = [], []
        for _ in range(args.repeat):
            plain.append(time_run(path, None)[0])
            seconds, leaks, totals = time_run(path, masker)
            masked.append(seconds)
    if leaks:
        print(f"bench_mask: {leaks} records still hold a planted value", file=sys.stderr)
        return 1
    p, m = statistics.median(plain), statistics.median(masked)
    cost = (m - p) / mb
    print(f"{mb:.1f} MB, {records:,} records, {args.prompts:.0%} prompt/result, masked: {totals}")
    print(f"parse only       {p / mb * 1000:7.1f} CPU ms/MB (median of {args.repeat})")
    print(f"parse + masking  {m / mb * 1000:7.1f} CPU ms/MB")
    print(
        f"masking          {cost * 1000:7.1f} CPU ms/MB = {cost / (p / mb):.1%} of parsing, "
        f"{cost / args.e2e_cpu_per_mb:.1%} of the end-to-end {args.e2e_cpu_per_mb} CPU s/MB"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
