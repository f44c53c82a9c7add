"""LLM water levels end to end: a known set of records in real files (plain, rotated, .gz) gives
exact numbers on /metrics (scraped over HTTP, parsed by prometheus_client's parser), the same
numbers from `llmtail report --json`, and the right records from `llmtail trace`."""

from __future__ import annotations

import gzip
import http.client
import math
import os
import random
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.utils import floatToGoString

from llmtail.agent.engine.llm_aggregate import DURATION_BOUNDS, TOKEN_BOUNDS, LlmAggregate, quantile
from llmtail.agent.modes.scan import scan
from llmtail.agent.ops.metrics import AgentMetrics, MetricsServer, Registry
from llmtail.parsers.record import ParserSettings, RecordParser
from tests.sizes import deep_size

START = datetime(2026, 11, 26, 3, 0, tzinfo=UTC).timestamp()
LIVE = datetime(2026, 11, 26, 9, 0, tzinfo=UTC).timestamp()
MODELS = ("qwen-max", "qwen-plus", "deepseek-r1")
WORKSPACES = ("ws-a", "ws-b")
FAILURES = (
    (429, "Throttling.RateQuota", "Requests rate limit exceeded, please try again later."),
    (500, "InternalError.Algo", "An internal error has occured, please try again later."),
    (None, "NetworkError", "Read timed out"),
    (503, "", "Service Unavailable"),
)
DURATIONS_MS = (10, 11, 20, 640, 1280, 2347, 5120, 30_000, 81_920, 95_000)  # bounds and beyond
TOKENS = (0, 1, 4, 5, 1000, 70_000_000)
BATCH = 37  # records per sealed batch, as the engine would cut them


@dataclass
class Call:
    time: float
    trace_id: str
    fields: dict[str, Any]
    lines: list[str] = field(default_factory=list)  # every record of its trace, as written


@dataclass
class Logs:
    files: list[Path]  # newest first, as a glob of app.log* lists them
    calls: list[Call]
    config: Path
    split_trace: str  # a trace whose prompt is in app.log.1 and its call in app.log
    gz_call: Call  # a call inside the gzipped backlog


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def header(t: float, level: str, trace_id: str, method: str) -> str:
    return (
        f"{stamp(t)} {level:<5} [traceId:{trace_id}] "
        f"[c.a.c.s.i.ChatServiceImpl#{method}():104] [http-nio-8080-exec-1] - "
    )


def make_call(rng: random.Random, n: int, t: float) -> Call:
    trace_id = f"{n:016x}"
    model, workspace = rng.choice(MODELS), rng.choice(WORKSPACES)
    status, code, message = (200, "", "") if rng.random() < 0.7 else rng.choice(FAILURES)
    inp, out = rng.choice(TOKENS), rng.choice(TOKENS)
    fields = {
        "app": rng.choice(("chat-app", "rag-app")),
        "module": "support",
        "model": model,
        "workspace": workspace,
        "request_id": f"{n:08x}-1b3c-4d5e-9a8d-{n:012x}",
        "status_code": status,
        "duration_ms": rng.choice(DURATIONS_MS),
        "input_tokens": inp,
        "output_tokens": out,
        "total_tokens": inp + out,
        "error_code": code,
        "error_message": message,
    }
    payload = ",".join(
        "" if fields[k] is None else str(fields[k])
        for k in ("app", "module", "model", "workspace", "request_id", "status_code",
                  "duration_ms", "input_tokens", "output_tokens", "total_tokens", "error_code",
                  "error_message")
    )  # fmt: skip
    call = Call(t, trace_id, fields)
    call.lines.append(header(t - 1.5, "DEBUG", trace_id, "chat") + f"prompt: question {n}\nline 2")
    text = header(t, "INFO" if status == 200 else "ERROR", trace_id, "chat") + payload
    if status != 200:
        text += "\njava.io.IOException: boom\n\tat com.x.Client.call(Client.java:42)"
    call.lines.append(text)
    call.lines.append(header(t + 0.001, "DEBUG", trace_id, "lambda$chat$0") + f"result: ok {n}")
    return call


@pytest.fixture(scope="module")
def logs(tmp_path_factory: pytest.TempPathFactory) -> Logs:
    """A backlog of three hours in app.log.2.gz, then half an hour in app.log.1, then app.log."""
    d = tmp_path_factory.mktemp("levels")
    rng = random.Random(20261126)
    calls: list[Call] = []
    n = 0
    parts: list[list[str]] = [[], [], []]
    # gz: 200 calls over three hours; .1: 150 over 09:00-09:30; live: 150 in ten minutes.
    for part, (begin, span, count) in enumerate(
        ((START, 3 * 3600, 200), (LIVE, 1800, 150), (LIVE + 1800, 600, 150))
    ):
        for k in range(count):
            n += 1
            t = begin + 2 + span * k / count
            call = make_call(rng, n, t)
            calls.append(call)
            if part == 0:
                parts[0] += call.lines
            elif part == 1 and k == count - 1:
                parts[1] += call.lines[:1]  # its prompt before the rotation, the rest after
                parts[2] += call.lines[1:]
            else:
                parts[part] += call.lines
    split = calls[349]
    assert split.lines[0] in parts[1] and split.lines[1] in parts[2]
    banner = "  .   ____          _\n :: Spring Boot ::   (v3.3.0)\n"
    gz = d / "app.log.2.gz"
    with gzip.open(gz, "wb") as f:
        f.write(("\n".join(parts[0]) + "\n").encode())
    (d / "app.log.1").write_text(banner + "\n".join(parts[1]) + "\n", encoding="utf-8")
    (d / "app.log").write_text("\n".join(parts[2]) + "\n", encoding="utf-8")
    config = d / "config.yaml"
    config.write_text("parser:\n  timezone: UTC\n", encoding="utf-8")
    return Logs(
        files=[d / "app.log", d / "app.log.1", gz],
        calls=calls,
        config=config,
        split_trace=split.trace_id,
        gz_call=calls[57],
    )


def parser() -> RecordParser:
    return RecordParser(ParserSettings(timezone="UTC"))


def batches(files: list[Path]) -> Iterator[LlmAggregate]:
    """Per sealed batch of BATCH records, its aggregate: what the engine hands the metrics."""
    damaged: list[str] = []
    for path in files:
        batch = LlmAggregate()
        size = 0
        for item in scan(str(path), parser(), damaged):
            batch.add(item.fields, item.time)
            size += 1
            if size == BATCH:
                yield batch
                batch, size = LlmAggregate(), 0
        yield batch
    assert damaged == []


def error_type(f: dict[str, Any]) -> str:
    if f["status_code"] == 200:
        return ""
    return f["error_code"] or (str(f["status_code"]) if f["status_code"] else "_OTHER")


def label_set(f: dict[str, Any]) -> dict[str, str]:
    return {
        "app": f["app"],
        "module": f["module"],
        "model": f["model"],
        "workspace": f["workspace"],
        "status_code": "" if f["status_code"] is None else str(f["status_code"]),
        "error_code": f["error_code"],
    }


def key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def scrape(port: int, only: str = "") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed by prometheus_client's parser; `only`: just the families so named."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("GET", "/metrics")
    resp = conn.getresponse()
    assert resp.status == 200
    body = resp.read().decode()
    conn.close()
    if only:
        body = "".join(
            line for line in body.splitlines(keepends=True)
            if line.removeprefix("# HELP ").removeprefix("# TYPE ").startswith(only)
        )  # fmt: skip
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(body):
        for s in family.samples:
            out[(s.name, key(s.labels))] = s.value
    return out


@pytest.fixture(scope="module")
def scraped(logs: Logs) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    last_minute = int(max(c.time for c in logs.calls) // 60)
    clock = [(last_minute + 1) * 60 + 30.0]  # half a minute into the next minute
    registry = Registry()
    metrics = AgentMetrics.register(registry, output="sls", clock=lambda: clock[0])
    for aggregate in batches(logs.files):
        metrics.count_sealed(aggregate)
    server = MetricsServer(registry, "127.0.0.1:0")
    server.start()
    try:
        return scrape(server.address[1])
    finally:
        server.close()


def test_calls_and_tokens_per_label_set_are_exact(logs: Logs, scraped: Any) -> None:
    calls: Counter[tuple[tuple[str, str], ...]] = Counter()
    tokens: Counter[tuple[tuple[str, str], ...]] = Counter()
    for c in logs.calls:
        labels = label_set(c.fields)
        calls[key(labels)] += 1
        for kind in ("input", "output", "total"):
            tokens[key({**labels, "token_type": kind})] += c.fields[f"{kind}_tokens"]
    got_calls = {k: v for (n, k), v in scraped.items() if n == "llmtail_llm_calls_total"}
    got_tokens = {k: v for (n, k), v in scraped.items() if n == "llmtail_llm_tokens_total"}
    assert got_calls == calls
    assert got_tokens == tokens
    assert sum(got_calls.values()) == 500
    assert scraped[("llmtail_llm_label_sets_dropped_total", ())] == 0


def test_genai_histograms_have_the_conventions_buckets_and_exact_counts(
    logs: Logs, scraped: Any
) -> None:
    duration: dict[tuple[tuple[str, str], ...], list[float]] = defaultdict(list)
    usage: dict[tuple[tuple[str, str], ...], list[int]] = defaultdict(list)
    for c in logs.calls:
        f = c.fields
        base = {"gen_ai_operation_name": "chat", "gen_ai_request_model": f["model"],
                "app": f["app"], "module": f["module"], "workspace": f["workspace"]}  # fmt: skip
        duration[key({**base, "error_type": error_type(f)})].append(f["duration_ms"] / 1000)
        usage[key({**base, "gen_ai_token_type": "input"})].append(f["input_tokens"])
        usage[key({**base, "gen_ai_token_type": "output"})].append(f["output_tokens"])
    for name, series, bounds in (
        ("gen_ai_client_operation_duration_seconds", duration, DURATION_BOUNDS),
        ("gen_ai_client_token_usage", usage, TOKEN_BOUNDS),
    ):
        got_series = {k for (n, k), _ in scraped.items() if n == f"{name}_count"}
        assert got_series == set(series)
        for labels, values in series.items():
            assert scraped[(f"{name}_count", labels)] == len(values)
            assert scraped[(f"{name}_sum", labels)] == pytest.approx(sum(values))
            for bound in (*bounds, math.inf):
                le = "+Inf" if bound == math.inf else _go(bound)
                expected = sum(v <= bound for v in values)
                assert scraped[(f"{name}_bucket", key({**dict(labels), "le": le}))] == expected
    # The slow calls beyond the last bound (95 s) are only in +Inf.
    assert any(c.fields["duration_ms"] == 95_000 for c in logs.calls)


def test_qpm_and_tpm_come_from_the_records_own_minutes_so_the_backlog_does_not_count(
    logs: Logs, scraped: Any
) -> None:
    last_minute = int(max(c.time for c in logs.calls) // 60)
    qpm: Counter[tuple[tuple[str, str], ...]] = Counter()
    tpm: Counter[tuple[tuple[str, str], ...]] = Counter()
    for c in logs.calls:
        if int(c.time // 60) == last_minute:
            labels = key({"model": c.fields["model"], "workspace": c.fields["workspace"]})
            qpm[labels] += 1
            tpm[labels] += c.fields["total_tokens"]
    got_qpm = {k: v for (n, k), v in scraped.items() if n == "llmtail_llm_calls_per_minute"}
    got_tpm = {k: v for (n, k), v in scraped.items() if n == "llmtail_llm_tokens_per_minute"}
    assert sum(got_qpm.values()) == sum(qpm.values()) > 0  # 500 records read, ~15 this minute
    assert {k: v for k, v in got_qpm.items() if v} == qpm
    assert {k: v for k, v in got_tpm.items() if v} == {k: v for k, v in tpm.items() if v}


def test_report_json_gives_the_same_numbers(logs: Logs, scraped: Any) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmtail", "report", "-c", str(logs.config), "--json",
         "--by", "model,workspace", *map(str, logs.files)],
        capture_output=True, check=False, env={**os.environ, "TZ": "Asia/Shanghai"},
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)
    calls = logs.calls
    assert list(report)[:3] == ["calls", "errors", "tokens"]
    assert report["calls"] == len(calls) == 500
    assert report["errors"] == sum(c.fields["status_code"] != 200 for c in calls)
    assert report["tokens"] == {
        kind: sum(c.fields[f"{kind}_tokens"] for c in calls)
        for kind in ("input", "output", "total")
    }
    scraped_calls = sum(v for (n, _), v in scraped.items() if n == "llmtail_llm_calls_total")
    assert report["calls"] == scraped_calls
    # Per model and workspace: the same calls, errors and tokens as the label sets on /metrics.
    for row in report["breakdown"]:
        mine = [c for c in calls if (c.fields["model"], c.fields["workspace"]) == (row["model"],
                row["workspace"])]  # fmt: skip
        assert row["calls"] == len(mine)
        assert row["errors"] == sum(c.fields["status_code"] != 200 for c in mine)
        assert row["tokens"]["total"] == sum(c.fields["total_tokens"] for c in mine)
    assert sum(r["calls"] for r in report["breakdown"]) == 500
    # QPM: per minute of the records' own time, read in the parser's zone (UTC), not TZ's.
    per_minute = Counter(int(c.time // 60) for c in calls)
    peak = min(per_minute, key=lambda m: (-per_minute[m], m))
    span = max(per_minute) - min(per_minute) + 1
    assert report["qpm"]["peak"] == per_minute[peak]
    assert report["qpm"]["peak_minute"] == stamp(peak * 60)[:16]
    assert report["qpm"]["mean"] == round(500 / span, 3)
    # Latency: what histogram_quantile makes of the scraped buckets, for the same calls.
    counts = [0] * (len(DURATION_BOUNDS) + 1)
    for c in calls:
        s = c.fields["duration_ms"] / 1000
        counts[
            next((i for i, b in enumerate(DURATION_BOUNDS) if s <= b), len(DURATION_BOUNDS))
        ] += 1
    for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
        expected = quantile(q, DURATION_BOUNDS, counts)
        assert expected is not None
        assert report["latency_seconds"][name] == pytest.approx(expected, abs=1e-4)
    errors = Counter(error_type(c.fields) for c in calls if c.fields["status_code"] != 200)
    assert report["errors_by_type"] == dict(errors)


def test_report_since_leaves_the_backlog_out(logs: Logs) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "llmtail", "report", "-c", str(logs.config), "--json",
         "--since", "2026-11-26 09:00", *map(str, logs.files)],
        capture_output=True, check=False,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = orjson.loads(out.stdout)
    assert report["calls"] == sum(c.time >= LIVE for c in logs.calls) == 300
    # Every record before --since is left out: each backlog call's prompt, call and result.
    assert report["skipped_before_since"] == 3 * 200


def test_report_table_and_user_mistakes(logs: Logs, tmp_path: Path) -> None:
    table = subprocess.run(
        [sys.executable, "-m", "llmtail", "report", "-c", str(logs.config), "--by", "model",
         *map(str, logs.files)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert table.returncode == 0
    assert "llm calls: 500" in table.stdout and "qwen-max" in table.stdout
    assert "None" not in table.stdout
    for args, says in (
        (["--by", "colour"], "--by 'colour'"),
        (["--since", "yesterday"], "--since 'yesterday'"),
        ([str(tmp_path / "missing.log")], "no such file"),
    ):
        bad = subprocess.run(
            [sys.executable, "-m", "llmtail", "report", *args, str(logs.files[0])],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert bad.returncode == 2
        assert says in bad.stderr and "Traceback" not in bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1


def trace(logs: Logs, ident: str, *extra: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "llmtail", "trace", "-c", str(logs.config), *extra, ident,
         *map(str, logs.files)],
        capture_output=True, check=False,
    )  # fmt: skip


def test_trace_prints_a_request_as_written_in_time_order_from_inside_a_gz(logs: Logs) -> None:
    call = logs.gz_call
    out = trace(logs, call.trace_id)
    assert out.returncode == 0, out.stderr
    assert out.stdout.decode() == "\n".join(call.lines) + "\n"
    by_request = trace(logs, call.fields["request_id"])  # a request id finds its whole trace
    assert by_request.stdout == out.stdout


def test_trace_follows_a_request_across_a_rotation(logs: Logs) -> None:
    call = next(c for c in logs.calls if c.trace_id == logs.split_trace)
    out = trace(logs, logs.split_trace, "--json")
    assert out.returncode == 0, out.stderr
    records = [orjson.loads(line) for line in out.stdout.splitlines()]
    assert [r["path"].rsplit("/", 1)[1] for r in records] == ["app.log.1", "app.log", "app.log"]
    assert [r["event"] for r in records] == ["prompt", "llm_call", "result"]
    assert records[1]["request_id"] == call.fields["request_id"]


def test_trace_of_an_unknown_id_exits_1(logs: Logs) -> None:
    out = trace(logs, "ffffffffffffffff")
    assert out.returncode == 1
    assert out.stdout == b""
    assert b"no record of ffffffffffffffff" in out.stderr


def _go(bound: float) -> str:
    """A bound as prometheus_client writes `le` (Go's float formatting)."""
    return str(floatToGoString(bound))


def test_the_cardinality_guard_holds_under_100000_distinct_workspaces() -> None:
    registry = Registry()
    metrics = AgentMetrics.register(registry, max_label_sets=2000, clock=lambda: LIVE)
    for b in range(100):  # 100 sealed batches of 1,000 calls, each from a new workspace
        batch = LlmAggregate()
        for n in range(b * 1000, (b + 1) * 1000):
            batch.add(
                {"event": "llm_call", "app": "chat-app", "module": "support",
                 "model": "qwen-max", "workspace": f"ws-{n}", "status_code": 200,
                 "duration_ms": 700, "input_tokens": 3, "output_tokens": 2},
                LIVE - 30,
            )  # fmt: skip
        metrics.count_sealed(batch)
    held = deep_size(metrics.llm)
    assert held < 8 * 1024 * 1024, held  # 2,000 label sets' numbers, not 100,000
    server = MetricsServer(registry, "127.0.0.1:0")
    server.start()
    try:
        got = scrape(server.address[1], only="llmtail_llm_")  # its 2,000 histograms: 20 MB
    finally:
        server.close()
    calls = {k: v for (n, k), v in got.items() if n == "llmtail_llm_calls_total"}
    assert len(calls) == 2000
    assert sum(calls.values()) == 100_000  # nothing lost: the rest is under "other"
    other = key(dict.fromkeys(("app", "module", "model", "workspace", "status_code",
                               "error_code"), "other"))  # fmt: skip
    assert calls[other] == 100_000 - 1999
    assert got[("llmtail_llm_label_sets_dropped_total", ())] == 100_000 - 1999
    assert got[("llmtail_llm_label_sets", ())] == 2000
    assert len([k for (n, k), _ in got.items() if n == "llmtail_llm_calls_per_minute"]) <= 2000
