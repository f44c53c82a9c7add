"""`llmtail validate --mask-report`: what masking would do to some files, before a rollout.

Per rule, how many values it would replace, and a few examples. Examples are cut from the
masked text (every enabled rule applied), so a report can be pasted into a ticket; a rule the
config switches off leaves its values visible here exactly as it would in the Logstore.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from llmtail.agent.reading.wholefile import DamagedFileError, read_chunks
from llmtail.parsers.mask import Hit, Masker, text_fields
from llmtail.parsers.multiline import Frame
from llmtail.parsers.record import RecordParser

EXAMPLES_PER_RULE = 3
CONTEXT = 32  # characters shown on each side of a replacement


@dataclass(slots=True)
class Example:
    path: str
    line: int  # first line of the record
    field: str
    text: str  # masked, newlines shown as \n


@dataclass
class MaskReport:
    files: int = 0
    records: int = 0
    records_masked: int = 0
    rules: tuple[str, ...] = ()
    counts: Counter[str] = field(default_factory=Counter)
    by_field: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[Example]] = field(default_factory=dict)
    damaged: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "records": self.records,
            "records_masked": self.records_masked,
            "rules": list(self.rules),
            "masked": {rule: self.counts[rule] for rule in self.rules},
            "fields": dict(self.by_field.most_common()),
            "examples": {
                rule: [
                    {"path": e.path, "line": e.line, "field": e.field, "text": e.text}
                    for e in examples
                ]
                for rule, examples in self.examples.items()
            },
            "damaged_files": self.damaged,
        }

    def render(self) -> str:
        lines = [
            f"files: {self.files}   records: {self.records:,}   "
            f"records with masked values: {self.records_masked:,}",
            "values masked per rule:",
        ]
        width = max((len(r) for r in self.rules), default=0)
        for rule in self.rules:
            lines.append(f"  {rule:<{width}}  {self.counts[rule]:>9,}")
            lines += [
                f"      {e.path}:{e.line} {e.field}: {e.text}" for e in self.examples.get(rule, [])
            ]
        if not self.rules:
            lines.append("  (masking is switched off: mask.enabled is false)")
        lines += [f"damaged: {d}" for d in self.damaged]
        return "\n".join(lines)


def mask_report(paths: list[str], parser: RecordParser, masker: Masker) -> MaskReport:
    """Parse every file to its end and mask each record's text fields, counting."""
    report = MaskReport(rules=masker.rule_names)
    for path in paths:
        report.files += 1
        assembler = parser.assembler(0)
        try:
            for chunk in read_chunks(path):
                # The reference's assembler keeps slices of what it is fed: bytes of its own.
                _consume(assembler.feed(bytes(chunk), 0.0), parser, masker, report, path)
        except DamagedFileError as exc:
            report.damaged.append(str(exc))
        _consume(assembler.drain(), parser, masker, report, path)
    return report


def _consume(
    frames: list[Frame], parser: RecordParser, masker: Masker, report: MaskReport, path: str
) -> None:
    for frame in frames:
        fields = parser.parse(frame).fields
        report.records += 1
        masked_any = False
        for name in text_fields(fields.get("event")):
            value = fields.get(name)
            if not isinstance(value, str) or not value:
                continue
            masked, counts, hits = masker.mask_text(value)
            if not counts:
                continue
            masked_any = True
            report.counts.update(counts)
            report.by_field[name] += sum(counts.values())
            for hit in hits:
                shown = report.examples.setdefault(hit.rule, [])
                if len(shown) < EXAMPLES_PER_RULE:
                    shown.append(Example(path, frame.line_no, name, _snippet(masked, hit)))
        report.records_masked += masked_any


def _snippet(masked: str, hit: Hit) -> str:
    start = max(0, hit.start - CONTEXT)
    end = min(len(masked), hit.end + CONTEXT)
    text = masked[start:end].replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return ("..." if start else "") + text + ("..." if end < len(masked) else "")
