"""`llmtail report`: the dashboard's questions answered from local files, sending nothing.

Calls, errors and their distribution, tokens, latency p50/p95/p99, QPM and TPM (mean and peak
minute of the records' own time), negative-feedback rate: overall and per chosen dimensions.
Everything goes through one aggregate (the same numbers `/metrics` shows; with the core engine
merged in Rust and read once at the end as an `LlmAggregate`). Latency
percentiles are interpolated inside the OpenTelemetry GenAI duration buckets exactly as
Prometheus' `histogram_quantile` does, so the report and a Grafana panel agree; they are
estimates within one bucket.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.llm_aggregate import (
    DEFAULT_MAX_MINUTE_CELLS,
    DURATION_BOUNDS,
    DURATION_SLOTS,
    LABEL_NAMES,
    LOCAL_LABEL_SETS,
    Aggregate,
    LlmAggregate,
    bucket_counts,
    empty_like,
    failed,
    negative_rating,
    per_minute,
    quantile,
)
from llmtail.agent.engine.stream import SealedBatch
from llmtail.agent.ops.llm_metrics import error_type
from llmtail.agent.reading.wholefile import DamagedFileError, read_chunks

QUANTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99))
TOP_ERRORS = 10
_RELATIVE = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


class ReportError(Exception):
    """A report option the user must fix; the message is one line."""


def parse_since(text: str, timezone: str | None, now: float) -> float:
    """`90m`, `1h`, `2d` (before now) or a time like `2025-07-09 14:00` in the parser's zone."""
    m = _RELATIVE.match(text.strip())
    if m:
        return now - int(m[1]) * _UNIT[m[2]]
    try:
        when = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ReportError(
            f"--since {text!r}: expected a duration like 30m, 1h, 2d or a time like "
            "2025-07-09 14:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=ZoneInfo(timezone)) if timezone else when.astimezone()
    return when.timestamp()


def parse_by(text: str | None) -> tuple[str, ...]:
    """`model,workspace` -> the dimensions, each one of LABEL_NAMES."""
    if not text:
        return ()
    dims = tuple(d.strip() for d in text.split(",") if d.strip())
    unknown = [d for d in dims if d not in LABEL_NAMES]
    if unknown:
        raise ReportError(f"--by {unknown[0]!r}: expected some of {', '.join(LABEL_NAMES)}")
    return dims


@dataclass
class LlmReport:
    """Aggregates records of some files; `to_dict` for scripts, `render` for a person."""

    by: tuple[str, ...] = ()
    since: float | None = None
    timezone: str | None = None
    # Label sets kept; calls of sets beyond count under "other" (build the engine with the same).
    max_label_sets: int = LOCAL_LABEL_SETS
    # The batches' aggregates merged, of their kind (Python or core); made by the first one.
    total: Aggregate | None = None
    files: int = 0
    records: int = 0
    skipped: int = 0  # records before --since
    damaged: list[str] = field(default_factory=list)
    _read: LlmAggregate | None = field(default=None, repr=False, compare=False)

    @property
    def aggregate(self) -> LlmAggregate:
        """The merged numbers as Python values, read once after the last batch."""
        if self._read is None:
            self._read = (
                LlmAggregate(max_label_sets=self.max_label_sets)
                if self.total is None
                else self.total.snapshot()
            )
        return self._read

    def read(self, paths: Sequence[str], engine: Engine, input_of: Callable[[str], int]) -> None:
        """Drive the engine over the files (plain, rotated, .gz) and merge the LLM aggregate
        of every sealed batch: the same numbers the daemon's /metrics counts."""
        engine = engine.windowed(self.since, None)
        for path in paths:
            self.files += 1
            stream = engine.open(path, path, 0, input_of(path))
            wall = time.time()
            try:
                for chunk in read_chunks(path):
                    self._count(stream.feed(chunk, 0.0, wall))
            except DamagedFileError as exc:
                self.damaged.append(str(exc))
            self._count(stream.drain(wall))

    def _count(self, batches: list[SealedBatch]) -> None:
        for batch in batches:
            self.records += batch.records
            self.skipped += batch.skipped_before
            if batch.llm is not None:
                if self.total is None:
                    self.total = empty_like(
                        batch.llm, self.max_label_sets, DEFAULT_MAX_MINUTE_CELLS
                    )
                self.total.merge(batch.llm)
                self._read = None

    def to_dict(self) -> dict[str, Any]:
        a = self.aggregate
        everything = range(len(a.keys))
        out = _figures(a, everything, self._span(), self._minute)
        out["errors_by_type"] = self._errors_by_type()
        out["feedback"] = self._feedback()
        minutes = sorted(per_minute(a))
        out["time_range"] = {
            "first_minute": self._minute(minutes[0]) if minutes else None,
            "last_minute": self._minute(minutes[-1]) if minutes else None,
        }
        out["files"] = self.files
        out["records"] = self.records
        out["skipped_before_since"] = self.skipped
        out["damaged_files"] = list(self.damaged)
        out["label_sets_over_limit_calls"] = a.dropped_calls
        out["by"] = list(self.by)
        out["breakdown"] = self._breakdown() if self.by else []
        return out

    def render(self) -> str:
        d = self.to_dict()
        tokens = d["tokens"]
        lines = [
            f"files: {d['files']}   records: {d['records']:,}   llm calls: {d['calls']:,}   "
            f"errors: {d['errors']:,} ({_pct(d['error_rate'])})",
            f"tokens: input {tokens['input']:,}   output {tokens['output']:,}   "
            f"total {tokens['total']:,}",
            "latency: " + _latency(d["latency_seconds"]) + "  (within the GenAI duration buckets)",
            f"QPM: {_rate(d['qpm'])}",
            f"TPM: {_rate(d['tpm'])}",
        ]
        if d["errors_by_type"]:
            top = ", ".join(f"{k} {n:,}" for k, n in d["errors_by_type"].items())
            lines.append(f"errors by type: {top}")
        fb = d["feedback"]
        if fb["count"]:
            lines.append(
                f"feedback: {fb['count']:,}   negative {fb['negative']:,} "
                f"({_pct(fb['negative_rate'])})"
            )
        span = d["time_range"]
        if span["first_minute"]:
            lines.append(f"time range: {span['first_minute']} .. {span['last_minute']}")
        if self.since is not None:
            lines.append(f"before --since (left out): {d['skipped_before_since']:,}")
        lines += [f"damaged: {x}" for x in d["damaged_files"]]
        if d["label_sets_over_limit_calls"]:
            lines.append(
                f"label sets over {self.max_label_sets:,}: "
                f"{d['label_sets_over_limit_calls']:,} calls counted as 'other'"
            )
        if d["breakdown"]:
            lines.append("")
            lines += _table(self.by, d["breakdown"])
        return "\n".join(lines)

    # -- pieces -------------------------------------------------------------------------

    def _span(self) -> int:
        """Minutes from the first to the last record-time minute, both included."""
        minutes = per_minute(self.aggregate)
        return max(minutes) - min(minutes) + 1 if minutes else 0

    def _minute(self, minute: int) -> str:
        zone = ZoneInfo(self.timezone) if self.timezone else None
        return datetime.fromtimestamp(minute * 60, zone).strftime("%Y-%m-%d %H:%M")

    def _errors_by_type(self) -> dict[str, int]:
        a = self.aggregate
        counts: dict[str, int] = {}
        for i, key in enumerate(a.keys):
            if failed(key):
                kind = error_type(key)
                counts[kind] = counts.get(kind, 0) + a.calls[i]
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:TOP_ERRORS]
        return dict(top)

    def _feedback(self) -> dict[str, Any]:
        ratings = self.aggregate.feedback
        count = sum(ratings.values())
        negative = sum(n for r, n in ratings.items() if negative_rating(r))
        return {
            "count": count,
            "negative": negative,
            "negative_rate": round(negative / count, 6) if count else None,
            "by_rating": dict(sorted(ratings.items())),
        }

    def _breakdown(self) -> list[dict[str, Any]]:
        a = self.aggregate
        positions = [LABEL_NAMES.index(d) for d in self.by]
        groups: dict[tuple[str, ...], list[int]] = {}
        for i, key in enumerate(a.keys):
            groups.setdefault(tuple(key[p] for p in positions), []).append(i)
        span = self._span()
        rows = []
        for values, indexes in groups.items():
            row: dict[str, Any] = dict(zip(self.by, values, strict=True))
            row.update(_figures(a, indexes, span, self._minute))
            rows.append(row)
        rows.sort(key=lambda r: (-r["calls"], [r[d] for d in self.by]))
        return rows


def _figures(
    a: LlmAggregate, indexes: Iterable[int], span: int, minute_text: Any
) -> dict[str, Any]:
    """calls, errors, tokens, rates, latency and QPM/TPM of the label sets at `indexes`."""
    chosen = list(indexes)
    calls = sum(a.calls[i] for i in chosen)
    errors = sum(a.calls[i] for i in chosen if failed(a.keys[i]))
    counts = bucket_counts(a.duration_buckets, chosen, DURATION_SLOTS)
    minutes = per_minute(a, chosen)
    return {
        "calls": calls,
        "errors": errors,
        "tokens": {
            "input": sum(a.input_tokens[i] for i in chosen),
            "output": sum(a.output_tokens[i] for i in chosen),
            "total": sum(a.total_tokens[i] for i in chosen),
        },
        "success_rate": round((calls - errors) / calls, 6) if calls else None,
        "error_rate": round(errors / calls, 6) if calls else None,
        "latency_seconds": {
            name: _round(quantile(q, DURATION_BOUNDS, counts)) for name, q in QUANTILES
        },
        "qpm": _level(minutes, 0, span, minute_text),
        "tpm": _level(minutes, 1, span, minute_text),
    }


def _level(
    minutes: dict[int, tuple[int, int]], column: int, span: int, minute_text: Any
) -> dict[str, Any]:
    """Mean per minute over the report's span, and the peak minute (the earliest on a tie)."""
    if not minutes or span == 0:
        return {"mean": None, "peak": None, "peak_minute": None}
    total = sum(cell[column] for cell in minutes.values())
    peak_minute = min(minutes, key=lambda m: (-minutes[m][column], m))
    return {
        "mean": round(total / span, 3),
        "peak": minutes[peak_minute][column],
        "peak_minute": minute_text(peak_minute),
    }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.2%}"


def _latency(q: dict[str, float | None]) -> str:
    return "   ".join(f"{k} {'-' if v is None else f'{v:.3f} s'}" for k, v in q.items())


def _rate(level: dict[str, Any]) -> str:
    if level["mean"] is None:
        return "-"
    return f"mean {level['mean']:,}   peak {level['peak']:,} at {level['peak_minute']}"


def _table(by: tuple[str, ...], rows: list[dict[str, Any]]) -> list[str]:
    head = [*by, "calls", "errors", "err%", "p50 s", "p95 s", "p99 s", "QPM", "QPM peak",
            "TPM", "TPM peak", "tokens"]  # fmt: skip
    body = []
    for r in rows:
        lat = r["latency_seconds"]
        body.append(
            [
                *(str(r[d]) or "-" for d in by),
                f"{r['calls']:,}",
                f"{r['errors']:,}",
                _pct(r["error_rate"]),
                *("-" if lat[k] is None else f"{lat[k]:.3f}" for k in ("p50", "p95", "p99")),
                _num(r["qpm"]["mean"]),
                _num(r["qpm"]["peak"]),
                _num(r["tpm"]["mean"]),
                _num(r["tpm"]["peak"]),
                f"{r['tokens']['total']:,}",
            ]
        )
    widths = [max(len(row[c]) for row in [head, *body]) for c in range(len(head))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [head, *body]]  # fmt: skip


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:,}"
