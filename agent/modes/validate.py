"""The dry-run report: what a parse of some files found, for a person or a script.

Nothing is sent anywhere. The exit status follows the parse-error rate so that `validate` can
gate a deployment of a new logging pattern.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from llmtail.agent.engine.engine import Engine
from llmtail.agent.engine.llm_aggregate import (
    LOCAL_LABEL_SETS,
    Aggregate,
    LabelKey,
    LlmAggregate,
    empty_like,
)
from llmtail.agent.engine.stream import SealedBatch
from llmtail.agent.reading.newlines import count_lines
from llmtail.agent.reading.wholefile import DamagedFileError, read_chunks

ERROR_EXAMPLES = 20
TOP = 5
NONE = "(none)"  # how an absent value (an empty status code, say) is shown


@dataclass(slots=True)
class ParseProblem:
    path: str
    line: int
    reason: str


@dataclass
class Report:
    files: int = 0
    lines: int = 0
    bytes: int = 0
    records: int = 0
    events: Counter[str] = field(default_factory=Counter)
    parse_errors: int = 0
    problems: list[ParseProblem] = field(default_factory=list)
    damaged: list[str] = field(default_factory=list)
    # Calls by label set (app, module, model, workspace, status, error), summed over batches
    # into one aggregate of the batches' kind (the core's: merged in Rust); the top-N counters
    # are made from it at the end. At most `max_label_sets` sets: the calls of sets beyond are
    # counted under "other" (and in `label_sets_over_limit_calls`), so a file of endless
    # distinct labels costs bounded memory.
    max_label_sets: int = LOCAL_LABEL_SETS
    llm: Aggregate | None = None
    _read: LlmAggregate | None = field(default=None, repr=False, compare=False)
    _label_calls: dict[LabelKey, int] | None = field(default=None, repr=False, compare=False)
    first: tuple[int, str] | None = None  # (epoch ns, the record's `time` text)
    last: tuple[int, str] | None = None

    def _aggregate(self) -> LlmAggregate:
        """The total as Python values, read once after the last batch, not per property."""
        if self._read is None:
            self._read = LlmAggregate() if self.llm is None else self.llm.snapshot()
        return self._read

    @property
    def label_calls(self) -> dict[LabelKey, int]:
        """Calls by label set, in the order the sets were first seen with calls."""
        if self._label_calls is None:  # five counters read it: made once after the last batch
            a = self._aggregate()
            self._label_calls = {k: n for k, n in zip(a.keys, a.calls, strict=True) if n}
        return self._label_calls

    def _by(self, index: int, absent: str | None = NONE) -> Counter[str]:
        """Calls by one label (`absent`: how an empty value is shown; None: not counted)."""
        out: Counter[str] = Counter()
        for key, n in self.label_calls.items():
            value = key[index]
            if value:
                out[value] += n
            elif absent is not None:
                out[absent] += n
        return out

    @property
    def models(self) -> Counter[str]:
        return self._by(2)

    @property
    def workspaces(self) -> Counter[str]:
        return self._by(3)

    @property
    def apps(self) -> Counter[str]:
        return self._by(0)

    @property
    def status_codes(self) -> Counter[str]:
        return self._by(4)

    @property
    def error_codes(self) -> Counter[str]:
        return self._by(5, absent=None)

    @property
    def over_limit_calls(self) -> int:
        """Calls whose label set came after `max_label_sets` others (counted as "other")."""
        return self._aggregate().dropped_calls

    @property
    def error_rate(self) -> float:
        return self.parse_errors / self.records if self.records else 0.0

    def ok(self, max_error_rate: float) -> bool:
        """A file that could not be read whole is never OK, whatever was parsed of it."""
        return self.error_rate <= max_error_rate and not self.damaged

    def add(self, batch: SealedBatch, path: str) -> None:
        """Count one sealed batch of `path`."""
        self.records += batch.records
        self.events.update(batch.events)
        self.parse_errors += batch.parse_errors
        for line, reason in batch.error_examples:
            if len(self.problems) < ERROR_EXAMPLES:
                self.problems.append(ParseProblem(path, line, reason))
        llm = batch.llm
        if llm is not None:
            if self.llm is None:
                self.llm = empty_like(llm, self.max_label_sets, 0)
            self.llm.merge(llm, minutes=False)
            self._read = self._label_calls = None
        if batch.first is not None:
            ns, text = batch.first
            if self.first is None or ns < self.first[0]:
                self.first = (ns, text)
        if batch.last is not None:
            ns, text = batch.last
            if self.last is None or ns > self.last[0]:
                self.last = (ns, text)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "lines": self.lines,
            "bytes": self.bytes,
            "records": self.records,
            "events": dict(self.events.most_common()),
            "parse_errors": self.parse_errors,
            "error_rate": round(self.error_rate, 6),
            "error_examples": [
                {"path": p.path, "line": p.line, "reason": p.reason} for p in self.problems
            ],
            "damaged_files": self.damaged,
            "time_range": {
                "first": self.first[1] if self.first else None,
                "last": self.last[1] if self.last else None,
            },
            "top": {
                "models": dict(self.models.most_common(TOP)),
                "workspaces": dict(self.workspaces.most_common(TOP)),
                "apps": dict(self.apps.most_common(TOP)),
                "status_codes": dict(self.status_codes.most_common(TOP)),
                "error_codes": dict(self.error_codes.most_common(TOP)),
            },
            "label_sets_over_limit_calls": self.over_limit_calls,
        }

    def render(self, max_error_rate: float) -> str:
        lines = [
            f"files: {self.files}   lines: {self.lines:,}   bytes: {self.bytes:,}",
            f"records: {self.records:,}  ("
            + ", ".join(f"{kind} {n:,}" for kind, n in self.events.most_common())
            + ")",
            f"parse errors: {self.parse_errors:,} ({self.error_rate:.3%})",
        ]
        lines += [f"  {p.path}:{p.line}: {p.reason}" for p in self.problems]
        if self.parse_errors > len(self.problems):
            lines.append(f"  ... and {self.parse_errors - len(self.problems):,} more")
        lines += [f"damaged: {d}" for d in self.damaged]
        if self.first and self.last:
            lines.append(f"time range: {self.first[1]} .. {self.last[1]}")
        for title, counter in (
            ("models", self.models),
            ("workspaces", self.workspaces),
            ("apps", self.apps),
            ("status codes", self.status_codes),
            ("error codes", self.error_codes),
        ):
            if counter:
                top = ", ".join(f"{k} {n:,}" for k, n in counter.most_common(TOP))
                lines.append(f"top {title}: {top}")
        if self.over_limit_calls:
            lines.append(
                f"label sets over {self.max_label_sets:,}: {self.over_limit_calls:,} calls "
                "counted as 'other'"
            )
        verdict = "OK" if self.ok(max_error_rate) else "FAIL"
        damaged = f", {len(self.damaged)} damaged" if self.damaged else ""
        lines.append(
            f"result: {verdict} (parse-error rate {self.error_rate:.3%}, "
            f"allowed {max_error_rate:.3%}{damaged})"
        )
        return "\n".join(lines)


def validate_files(
    paths: list[str],
    engine: Engine,
    input_of: Callable[[str], int] = lambda _path: 0,
    on_batch: Callable[[SealedBatch], None] | None = None,
    max_label_sets: int = LOCAL_LABEL_SETS,
) -> Report:
    """Drive the engine over every file to its end; `on_batch` sees each sealed batch (for
    `--records`: exactly what the outputs would receive). Build the engine with the same
    `max_label_sets`, or its batches fold sets into "other" at the config's smaller cap."""
    report = Report(max_label_sets=max_label_sets)
    for path in paths:
        report.files += 1
        stream = engine.open(path, path, 0, input_of(path))
        wall = time.time()
        tail = b"\n"
        try:
            for chunk in read_chunks(path):
                report.bytes += len(chunk)
                report.lines += count_lines(chunk)
                tail = bytes(memoryview(chunk)[-1:])
                _consume(stream.feed(chunk, 0.0, wall), report, path, on_batch)
        except DamagedFileError as exc:
            report.damaged.append(str(exc))
        if tail != b"\n":
            report.lines += 1  # a last line without its newline is still a line
        _consume(stream.drain(wall), report, path, on_batch)
        engine.close(path, stream)
    return report


def _consume(
    batches: list[SealedBatch],
    report: Report,
    path: str,
    on_batch: Callable[[SealedBatch], None] | None,
) -> None:
    for batch in batches:
        report.add(batch, path)
        if on_batch is not None:
            on_batch(batch)
