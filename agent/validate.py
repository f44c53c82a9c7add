"""The dry-run report: what a parse of some files found, for a person or a script.

Nothing is sent anywhere. The exit status follows the parse-error rate so that `validate` can
gate a deployment of a new logging pattern.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.reading import DamagedFileError, read_chunks
from parsers.multiline import Frame
from parsers.record import Record, RecordParser

ERROR_EXAMPLES = 20
TOP = 5


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
    models: Counter[str] = field(default_factory=Counter)
    workspaces: Counter[str] = field(default_factory=Counter)
    apps: Counter[str] = field(default_factory=Counter)
    status_codes: Counter[str] = field(default_factory=Counter)
    error_codes: Counter[str] = field(default_factory=Counter)
    first: tuple[float, str] | None = None
    last: tuple[float, str] | None = None

    @property
    def error_rate(self) -> float:
        return self.parse_errors / self.records if self.records else 0.0

    def ok(self, max_error_rate: float) -> bool:
        """A file that could not be read whole is never OK, whatever was parsed of it."""
        return self.error_rate <= max_error_rate and not self.damaged

    def add(self, record: Record, path: str, line: int) -> None:
        fields = record.fields
        self.records += 1
        self.events[str(fields.get("event", "raw"))] += 1
        reason = fields.get("parse_error")
        if reason is not None:
            self.parse_errors += 1
            if len(self.problems) < ERROR_EXAMPLES:
                self.problems.append(ParseProblem(path, line, str(reason)))
        if fields.get("event") == "llm_call":
            self.models[str(fields.get("model"))] += 1
            self.workspaces[str(fields.get("workspace"))] += 1
            self.apps[str(fields.get("app"))] += 1
            self.status_codes[str(fields.get("status_code"))] += 1
            if fields.get("error_code"):
                self.error_codes[str(fields["error_code"])] += 1
        if record.time is not None:
            stamp = (record.time + record.time_ns / 1e9, str(fields.get("time", "")))
            if self.first is None or stamp[0] < self.first[0]:
                self.first = stamp
            if self.last is None or stamp[0] > self.last[0]:
                self.last = stamp

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
        verdict = "OK" if self.ok(max_error_rate) else "FAIL"
        damaged = f", {len(self.damaged)} damaged" if self.damaged else ""
        lines.append(
            f"result: {verdict} (parse-error rate {self.error_rate:.3%}, "
            f"allowed {max_error_rate:.3%}{damaged})"
        )
        return "\n".join(lines)


def validate_files(
    paths: list[str],
    parser: RecordParser,
    on_record: Callable[[Record, str], None] | None = None,
) -> Report:
    """Parse every file to its end; `on_record` sees each record (for `--records`)."""
    report = Report()
    for path in paths:
        report.files += 1
        assembler = parser.assembler(0)
        tail = b"\n"
        try:
            for chunk in read_chunks(path):
                report.bytes += len(chunk)
                report.lines += chunk.count(b"\n")
                tail = chunk[-1:]
                _consume(assembler.feed(chunk, 0.0), parser, report, path, on_record)
        except DamagedFileError as exc:
            report.damaged.append(str(exc))
        if tail != b"\n":
            report.lines += 1  # a last line without its newline is still a line
        _consume(assembler.drain(), parser, report, path, on_record)
    return report


def _consume(
    frames: list[Frame],
    parser: RecordParser,
    report: Report,
    path: str,
    on_record: Callable[[Record, str], None] | None,
) -> None:
    for frame in frames:
        record = parser.parse(frame)
        report.add(record, path, frame.line_no)
        if on_record is not None:
            on_record(record, path)
