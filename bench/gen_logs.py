"""Write a realistic seed-format LLM application log (the documented logback pattern).

    python bench/gen_logs.py /tmp/app.log --size 1G --multiline 0.1 [--seed 7] [--start ...]

Mostly llm_call INFO records (12-field payload), DEBUG prompt:/result: records, WARN/ERROR
records with Java stack traces (Caused by, "... N common frames omitted"), AsyncAppender
records without caller data (`?():?`), empty trace ids, DashScope error messages with commas and
some Chinese text. `--multiline` is the fraction of records that span several lines. The output
is deterministic for a seed. Other benchmarks and tests import `generate`.
"""

from __future__ import annotations

import argparse
import random
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
_LOGGERS = (
    ("c.a.c.s.i.ChatServiceImpl", ("chat", "lambda$chat$0", "stream")),
    ("c.a.c.d.DashScopeClient", ("call", "doPost", "lambda$call$1")),
    ("c.a.c.w.ChatController", ("completions", "health")),
    ("o.a.c.c.C.[.[.[/]", ("log",)),
)
_THREADS = ("http-nio-8080-exec-{n}", "pool-2-thread-{n}", "async-{n}", "", "main")
_MODELS = ("qwen-max", "qwen-plus", "qwen-turbo", "deepseek-r1", "qwen2.5-72b-instruct")
_APPS = ("chat-app", "rag-service", "agent-gw")
_MODULES = ("chat", "embedding", "rerank", "summary")
_ERRORS = (
    ("Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    ("DataInspectionFailed", "Input data may contain inappropriate content., request id: x"),
    ("InvalidParameter", "Range of input length should be [1, 30720]"),
    (
        "InternalError.Timeout",
        "An internal error has occured, please try again later or contact service support.",
    ),
)
_PROMPTS = (
    "You are a helpful assistant.",
    "请用三句话总结下面的文章，并给出关键词。",  # noqa: RUF001 - real Chinese text
    "Translate to English: 今天天气很好, 我们去公园散步吧。",
    "Summarize the following ticket, list actions, owners, deadlines.",
)
_TRACE = (
    "java.net.SocketTimeoutException: Read timed out",
    "\tat java.base/sun.nio.ch.NioSocketImpl.timedRead(NioSocketImpl.java:288)",
    "\tat java.base/java.net.Socket$SocketInputStream.read(Socket.java:1099)",
    "\tat okhttp3.internal.http1.Http1ExchangeCodec.readResponseHeaders(Http1ExchangeCodec.kt:180)",
    "\tat com.alibaba.dashscope.protocol.okhttp.OkHttpHttpClient.send(OkHttpHttpClient.java:97)",
    "Caused by: java.io.IOException: connection reset, peer closed",
    "\tat java.base/sun.nio.ch.SocketDispatcher.read0(Native Method)",
    "\t... 42 common frames omitted",
)


@dataclass
class GenStats:
    records: int = 0
    multiline: int = 0
    bytes: int = 0


def parse_size(text: str) -> int:
    """`1G`, `200M`, `64K` or bytes."""
    clean = text.strip().upper().removesuffix("B")
    unit = clean[-1:] if clean[-1:] in _UNITS else ""
    try:
        return int(float(clean[: len(clean) - len(unit)]) * _UNITS[unit])
    except ValueError:
        raise ValueError(f"bad size {text!r} (use e.g. 64K, 200M or 1G)") from None


def _request_id(rng: random.Random) -> str:
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class _Writer:
    def __init__(self, rng: random.Random, start: datetime, multiline: float) -> None:
        self.rng = rng
        self.now = start
        self.multiline = multiline

    def record(self) -> tuple[str, bool]:
        rng = self.rng
        self.now += timedelta(microseconds=rng.randrange(0, 20_000))  # ~100 records/s
        stamp = self.now.strftime("%Y-%m-%d %H:%M:%S.") + f"{self.now.microsecond // 1000:03d}"
        logger, methods = rng.choice(_LOGGERS)
        method = rng.choice(methods)
        line: str = str(rng.randrange(20, 400))
        if rng.random() < 0.05:
            method, line = "?", "?"  # AsyncAppender: no caller data
        thread = rng.choice(_THREADS).format(n=rng.randrange(1, 200))
        trace = "" if rng.random() < 0.1 else f"{rng.getrandbits(64):016x}"
        multi = rng.random() < self.multiline
        level, message = self._message(multi)
        head = f"{stamp} {level:<5} [traceId:{trace}] [{logger}#{method}():{line}] [{thread}] - "
        return head + message + "\n", multi

    def _multiline(self) -> tuple[str, str]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.4:
            lines = rng.sample(_PROMPTS, k=rng.randrange(2, 4))
            return "DEBUG", "prompt: " + "\n".join(lines)
        if kind < 0.7:
            body = "\n".join(
                f"{i + 1}. " + rng.choice(_PROMPTS) for i in range(rng.randrange(2, 6))
            )
            return "DEBUG", "result: " + body
        depth = rng.randrange(3, len(_TRACE) + 1)
        return "ERROR", "DashScope call failed, will retry\n" + "\n".join(_TRACE[:depth])

    def _message(self, multi: bool) -> tuple[str, str]:
        rng = self.rng
        if multi:
            return self._multiline()
        roll = rng.random()
        if roll < 0.7:
            return "INFO", self._payload()
        if roll < 0.8:
            return "DEBUG", "prompt: " + rng.choice(_PROMPTS)
        if roll < 0.9:
            return "DEBUG", "result: " + rng.choice(_PROMPTS)
        return (
            "WARN",
            f"slow upstream response: {rng.randrange(3000, 30000)} ms for {rng.choice(_MODELS)}",
        )

    def _payload(self) -> str:
        rng = self.rng
        failed = rng.random() < 0.08
        code, text = rng.choice(_ERRORS) if failed else ("", "")
        tokens_in, tokens_out = rng.randrange(10, 8000), rng.randrange(0, 2000)
        status = rng.choice((429, 400, 500)) if failed else 200
        return (
            f"{rng.choice(_APPS)},{rng.choice(_MODULES)},{rng.choice(_MODELS)},"
            f"ws-{rng.randrange(1, 20)},{_request_id(rng)},{status},{rng.randrange(80, 20000)},"
            f"{tokens_in},{tokens_out},{tokens_in + tokens_out},{code},{text}"
        )


def generate(
    path: str | Path,
    size: int,
    multiline: float = 0.1,
    seed: int = 7,
    start: datetime | None = None,
) -> GenStats:
    """Write whole records to `path` until at least `size` bytes; returns what was written."""
    rng = random.Random(seed)
    writer = _Writer(rng, start or datetime(2025, 7, 9, 8, 0, 0), multiline)
    stats = GenStats()
    with open(path, "wb") as out:
        while stats.bytes < size:
            batch = []
            for _ in range(200):
                text, multi = writer.record()
                batch.append(text)
                stats.records += 1
                stats.multiline += multi
            data = "".join(batch).encode()
            out.write(data)
            stats.bytes += len(data)
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("path", help="file to write (outside the repo, e.g. /tmp/app.log)")
    ap.add_argument("--size", default="100M", help="at least this many bytes: 1G, 200M, 64K")
    ap.add_argument("--multiline", type=float, default=0.1, help="fraction of multi-line records")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--start", default="2025-07-09T08:00:00", help="first timestamp (ISO)")
    args = ap.parse_args(argv)
    try:
        size = parse_size(args.size)
        start = datetime.fromisoformat(args.start)
    except ValueError as exc:
        print(f"gen_logs: {exc}", file=sys.stderr)
        return 2
    if not 0.0 <= args.multiline <= 1.0:
        print("gen_logs: --multiline must be between 0 and 1", file=sys.stderr)
        return 2
    repo = Path(__file__).resolve().parent.parent
    target = Path(args.path).resolve()
    if target.is_relative_to(repo) and not target.is_relative_to(repo / "bench" / "data"):
        print(
            f"gen_logs: {args.path} is inside the repo; write to /tmp or bench/data/",
            file=sys.stderr,
        )
        return 2
    try:
        stats = generate(args.path, size, args.multiline, args.seed, start)
    except OSError as exc:
        print(f"gen_logs: cannot write {args.path}: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"{args.path}: {stats.bytes} bytes, {stats.records} records, "
        f"{stats.multiline} multi-line ({stats.multiline / max(stats.records, 1):.1%})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
