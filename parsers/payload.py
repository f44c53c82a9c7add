"""The payload of `llm_call` records: a fixed list of fields joined by a separator.

The payload is the first line of the message; its last field takes the rest of that line,
separators included (DashScope error messages contain commas). Continuation lines (a stack
trace logged with the call) stay in `message` only, so `error_message` groups cleanly.

A message is *payload-shaped* when its first line has at least N-1 separators and its first
field holds no whitespace; prose with commas ("loaded: a, b, c") fails that test and stays a
plain `log`. A payload-shaped message whose int field is not an integer is malformed: the caller
turns it into a raw record with the reason, never a silent `log`. An empty int field (no status
when a call failed before HTTP) is null.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

PayloadValue = str | int | None

DEFAULT_FIELDS: tuple[tuple[str, str], ...] = (
    ("app", "str"),
    ("module", "str"),
    ("model", "str"),
    ("workspace", "str"),
    ("request_id", "str"),
    ("status_code", "int"),
    ("duration_ms", "int"),
    ("input_tokens", "int"),
    ("output_tokens", "int"),
    ("total_tokens", "int"),
    ("error_code", "str"),
    ("error_message", "str"),
)

FEEDBACK_PREFIX = "feedback:"
DEFAULT_FEEDBACK_FIELDS: tuple[tuple[str, str], ...] = (
    ("request_id", "str"),
    ("rating", "str"),
    ("comment", "str"),
)


@dataclass(frozen=True, slots=True)
class PayloadError:
    """A payload-shaped message that does not fit the schema."""

    reason: str


class PayloadParser:
    """Splits messages by one schema; built once per parser."""

    def __init__(self, separator: str = ",", fields: tuple[tuple[str, str], ...] = DEFAULT_FIELDS):
        if not separator:
            raise ValueError("payload separator must not be empty")
        if not fields:
            raise ValueError("payload needs at least one field")
        if len({name for name, _ in fields}) != len(fields):
            raise ValueError("payload field names must be unique")
        for name, kind in fields:
            if kind not in ("str", "int"):
                raise ValueError(f"payload field {name!r}: type must be str or int, not {kind!r}")
        self._sep = separator
        self._names = tuple(name for name, _ in fields)
        self._ints = tuple(
            (index, name) for index, (name, kind) in enumerate(fields) if kind == "int"
        )
        self._splits = len(fields) - 1
        self._int_names = tuple(name for _, name in self._ints)
        self._regex = _payload_regex(separator, fields)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def parse(self, message: str) -> dict[str, PayloadValue] | PayloadError | None:
        """The fields; None when the message is not payload-shaped; PayloadError if malformed."""
        if self._regex is not None:
            m = self._regex.match(message)
            if m is not None:
                values: dict[str, PayloadValue] = m.groupdict()
                for name in self._int_names:
                    text = values[name]
                    values[name] = int(text) if isinstance(text, str) and text else None
                return values
        return self.split(message)

    @property
    def regex(self) -> re.Pattern[str] | None:
        """The well-formed payload as one regex (None: only `split` applies)."""
        return self._regex

    @property
    def int_names(self) -> tuple[str, ...]:
        return self._int_names

    def split(self, message: str) -> dict[str, PayloadValue] | PayloadError | None:
        """The slow path, which also says why a payload-shaped message is malformed."""
        newline = message.find("\n")
        line = message if newline < 0 else message[:newline]
        if line.count(self._sep) < self._splits:
            return None
        parts = line.split(self._sep, self._splits)
        if len(parts) <= self._splits:
            return None
        first = parts[0]
        if not first or " " in first or "\t" in first:
            return None
        values: list[PayloadValue] = list(parts)
        for index, name in self._ints:
            text = parts[index]
            if not text:
                values[index] = None
            elif text.isascii() and (text.isdigit() or (text[0] == "-" and text[1:].isdigit())):
                values[index] = int(text)
            else:
                return PayloadError(f"payload field {name} is not an integer: {text[:40]!r}")
        return dict(zip(self._names, values, strict=True))


def _payload_regex(separator: str, fields: tuple[tuple[str, str], ...]) -> re.Pattern[str] | None:
    """One regex for the well-formed case (a single-character separator only)."""
    if len(separator) != 1 or any(not name.isidentifier() for name, _ in fields):
        return None
    sep = re.escape(separator)
    cls = "\\" + separator if separator in "]\\^-" else separator
    # Every run is possessive: it stops at the separator (or the line end), which it cannot
    # consume, so giving characters back never lets the rest match. An int run may also be
    # followed by the line end; only a separator that is a digit or `-` keeps it backtracking.
    plus = "" if separator in "-0123456789" else "+"
    parts = []
    for index, (name, kind) in enumerate(fields):
        last = index == len(fields) - 1
        if kind == "int":
            p = "+" if last else plus
            body = f"-?[0-9]+{p}" if index == 0 else f"(?:-?[0-9]+{p})?{p}"
        elif index == 0:
            body = f"[^{cls} \\t\\n]++"
        elif last:
            body = "[^\\n]*+"
        else:
            body = f"[^{cls}\\n]*+"
        parts.append(f"(?P<{name}>{body})")
    tail = "(?![^\\n])" if fields[-1][1] == "int" else ""
    try:
        return re.compile(sep.join(parts) + tail)
    except re.error:  # e.g. a name given twice: the slow path still works
        return None


class FeedbackParser:
    """`feedback:<payload>` messages: a user's rating of an LLM answer, keyed by request id.

    Same splitting as the llm_call payload (first line only, the last field keeps the rest of the
    line, separators included), but the last field may be left out (a rating without comment):
    it is then null. Fewer fields than that is malformed. `request_id` is the same key as in the
    llm_call payload, so a rating joins its call.
    """

    def __init__(
        self, separator: str = ",", fields: tuple[tuple[str, str], ...] = DEFAULT_FEEDBACK_FIELDS
    ):
        self._payload = PayloadParser(separator, fields)
        self._sep = separator
        self._names = self._payload.names
        self._ints = tuple(
            (index, name) for index, (name, kind) in enumerate(fields) if kind == "int"
        )

    @property
    def names(self) -> tuple[str, ...]:
        return self._names

    def parse(self, message: str) -> dict[str, PayloadValue] | PayloadError:
        """The fields of a message that starts with `feedback:`; PayloadError if malformed."""
        newline = message.find("\n")
        line = message[len(FEEDBACK_PREFIX) : None if newline < 0 else newline]
        names = self._names
        parts: list[str] = line.split(self._sep, len(names) - 1)
        if len(parts) < max(len(names) - 1, 1) or not parts[0]:
            return PayloadError(f"feedback needs {self._sep.join(names[:-1]) or names[0]} at least")
        values: list[PayloadValue] = [*parts, *[None] * (len(names) - len(parts))]
        for index, name in self._ints:
            text = values[index]
            if not text:
                values[index] = None
            elif (
                isinstance(text, str)
                and text.isascii()
                and (text.isdigit() or (text[0] == "-" and text[1:].isdigit()))
            ):
                values[index] = int(text)
            else:
                return PayloadError(f"feedback field {name} is not an integer: {str(text)[:40]!r}")
        return dict(zip(names, values, strict=True))
