"""Frames -> typed records (design.md section 3). `RecordParser.parse` never raises.

Outcomes, in the order they are decided:
- the first line does not match the pattern (or its time is impossible): `__raw_log__` (the
  whole text) + `parse_error`; `time` is None;
- the message is payload-shaped but malformed: `__raw_log__` + `parse_error`; `time` is the
  record's time, so the raw record still lands where it happened;
- a `feedback:` message that lacks its required fields: `__raw_log__` + `parse_error`, likewise;
- otherwise the typed fields, `event` one of llm_call / feedback / prompt / result / log;
- a frame whose bytes were altered (TRUNCATED, DECODE, NUL) keeps its typed fields and also
  gets `parse_error` saying what was altered, so no damage goes unnoticed.
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from llmtail.parsers.lines import FrameFlag
from llmtail.parsers.multiline import Assembler, Frame
from llmtail.parsers.pattern import PREFIX_KEYS, CompiledPattern, compile_pattern
from llmtail.parsers.payload import (
    DEFAULT_FEEDBACK_FIELDS,
    DEFAULT_FIELDS,
    FeedbackParser,
    PayloadError,
    PayloadParser,
)
from llmtail.parsers.rows import Groups, Layout, compile_builders
from llmtail.parsers.timestamp import NANOS
from llmtail.parsers.timestamp import nanos as nanos_of

FieldValue = str | int | None

DEFAULT_PATTERN = (
    "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] "
    "[%thread] - %m%n"
)
log = logging.getLogger(__name__)

INTERNAL_ERROR = "internal parser error"  # a bug of ours: logged once per kind, counted
_ALTERED = FrameFlag.TRUNCATED | FrameFlag.DECODE | FrameFlag.NUL
_NO_FLAGS = FrameFlag.NONE


@dataclass(frozen=True, slots=True)
class ParserSettings:
    """Everything parsing depends on; built from the config's `parser` and input `encoding`."""

    pattern: str = DEFAULT_PATTERN
    timezone: str | None = None  # IANA name of the JVM's zone; None: the host's zone
    payload_separator: str = ","
    payload_fields: tuple[tuple[str, str], ...] = DEFAULT_FIELDS
    feedback_fields: tuple[tuple[str, str], ...] = DEFAULT_FEEDBACK_FIELDS
    max_record_bytes: int = 512 * 1024
    encoding: str = "utf-8"


@dataclass(slots=True)
class Record:
    """A parsed record: SLS contents in design.md order, and its time."""

    fields: dict[str, FieldValue]
    time: int | None  # epoch seconds; None: the record has no usable time
    time_ns: int = 0  # nanoseconds within that second
    flags: FrameFlag = field(default=FrameFlag.NONE)


class RecordParser:
    """A pattern compiled once; makes assemblers for files and parses their frames."""

    def __init__(self, settings: ParserSettings) -> None:
        """Raises PatternError (pattern) or ValueError (encoding, payload, size) on bad settings."""
        try:
            codecs.lookup(settings.encoding)
        except LookupError:
            raise ValueError(f"unknown encoding {settings.encoding!r}") from None
        if settings.max_record_bytes < 1:
            raise ValueError("max_record_bytes must be positive")
        self.settings = settings
        self.pattern: CompiledPattern = compile_pattern(settings.pattern, settings.timezone)
        self._starts = self.pattern.start_regex(settings.encoding)
        self._payload = PayloadParser(settings.payload_separator, settings.payload_fields)
        pattern = self.pattern
        taken = {*pattern.keys, "event", "message", "__raw_log__", "parse_error"}
        clash = sorted(taken & set(self._payload.names))
        if clash:
            raise ValueError(f"payload field {clash[0]!r} has the name of a record key; rename it")
        self._feedback = FeedbackParser(settings.payload_separator, settings.feedback_fields)
        clash = sorted(taken & set(self._feedback.names))
        if clash:
            raise ValueError(f"feedback field {clash[0]!r} has the name of a record key; rename it")
        date = pattern.date
        assert date is not None  # compile_pattern refuses patterns without %d
        self._date = date
        self._seconds = date.seconds
        self._frac_at = date.frac_at
        regex = pattern.regex
        payload_regex = self._payload.regex
        names = set(self._payload.names)
        combined = (
            pattern.message_last
            and payload_regex is not None
            and not names & {*pattern.keys, "message", "_rest"}
        )
        if combined and payload_regex is not None:
            # One match reads the header and, for llm_call records, the payload too.
            # Possessive `?+`: what follows always matches, so a payload is never given back.
            message = f"(?P<message>(?:{payload_regex.pattern})?+(?s:.*))"
            regex = re.compile(pattern.head + message)
        self._match = regex.match
        self._records: re.Pattern[str] | None = None
        if pattern.message_last and codecs.lookup(settings.encoding).name == "utf-8":
            # The same groups as `regex`, for a whole record inside a decoded block: the message
            # runs on over lines that do not start a record.
            first = f"(?:{payload_regex.pattern})?+" if combined and payload_regex else ""
            more = rf"[^\n]*+(?:\n(?!{pattern.start_source()})[^\n]*+)*+"
            self._records = re.compile(f"^{pattern.head}(?P<message>{first}{more})", re.MULTILINE)
        index = {name: number - 1 for name, number in regex.groupindex.items()}
        keys = pattern.keys
        order = [k for k in PREFIX_KEYS if k in keys] + [k for k in keys if k not in PREFIX_KEYS]
        ints = set(self._payload.int_names)
        layout = Layout(
            prefix=tuple((k, index[k]) for k in order),
            payload=tuple((n, index[n], n in ints) for n in self._payload.names)
            if combined
            else (),
        )
        self._lines: dict[str | None, int | None] = {"?": None, "": None, None: None}
        self._log, self._call = compile_builders(layout, self._line_of, self._lines)
        self._ti = index["time"]
        self._mi = index.get("message", -1)
        self._ri = index.get("_rest", -1)
        self._pi = index[self._payload.names[0]] if combined else -1

    def assembler(self, start_offset: int = 0) -> Assembler:
        """A fresh assembler for one file read from `start_offset`."""
        s = self.settings
        return Assembler(self._starts, s.encoding, s.max_record_bytes, start_offset, self._records)

    def parse(self, frame: Frame) -> Record:  # noqa: PLR0911, PLR0912 - hot path, inlined on purpose
        """The record of one frame; a failure becomes a raw record with a reason."""
        try:
            g: tuple[Any, ...] | None = frame.groups
            if g is None:
                m = self._match(frame.text)
                if m is None:
                    return self._unmatched(frame)
                g = m.groups()
            stamp: str = g[self._ti]
            frac_at = self._frac_at
            if frac_at is not None:
                seconds = self._seconds.get(stamp[:frac_at])
                if seconds is None:
                    seconds = self._date.second_of(stamp)
                    if seconds is None:
                        return _raw(frame, f"invalid timestamp {stamp!r}", None, 0)
                nanos = NANOS.get(stamp[frac_at:])
                if nanos is None:
                    nanos = nanos_of(stamp[frac_at:])
            else:
                when = self._date.epoch(stamp)
                if when is None:
                    return _raw(frame, f"invalid timestamp {stamp!r}", None, 0)
                seconds, nanos = when
            message: str = g[self._mi] if self._ri < 0 else self._message_of(g)
            if message.startswith(("prompt:", "result:", "feedback:")):
                if message[0] != "f":
                    fields = self._log(g, message[:6], message)
                else:
                    rating = self._feedback.parse(message)
                    if isinstance(rating, PayloadError):
                        return _raw(frame, rating.reason, seconds, nanos)
                    fields = self._log(g, "feedback", message)
                    fields.update(rating)
            elif self._call is not None and g[self._pi] is not None:
                fields = self._call(g, message)
            else:
                fields = self._log(g, "log", message)
                payload = (
                    self._payload.split(message) if self._call else self._payload.parse(message)
                )
                if isinstance(payload, PayloadError):
                    return _raw(frame, payload.reason, seconds, nanos)
                if payload is not None:
                    fields["event"] = "llm_call"
                    fields.update(payload)
            flags = frame.flags
            if flags is not _NO_FLAGS and flags & _ALTERED:
                fields["parse_error"] = _damage(frame)
            return Record(fields, seconds, nanos, flags)
        except Exception as exc:  # the record still ships, raw; the bug is said once
            kind = type(exc).__name__
            if kind not in _SAID:
                _SAID.add(kind)
                log.exception(
                    "%s (%s): the record is shipped raw; please report", INTERNAL_ERROR, kind
                )
            return _raw(frame, f"{INTERNAL_ERROR} ({kind})", None, 0)

    def _message_of(self, g: Groups) -> str:
        """The message when something follows %m on the first line, or there is no %m."""
        rest = g[self._ri] or ""
        if self._mi < 0:
            return rest[1:]
        return (g[self._mi] or "") + rest

    def _unmatched(self, frame: Frame) -> Record:
        if frame.flags & FrameFlag.HEADLESS:
            reason = "no record header before these lines"
        else:
            reason = self.pattern.explain(frame.text.partition("\n")[0])
        return _raw(frame, reason, None, 0)

    def _line_of(self, text: str | None) -> int | None:
        """`%L` text -> int (None for `?` or empty); remembered, line numbers repeat."""
        value = int(text) if text and text != "?" else None
        if len(self._lines) < 100_000:
            self._lines[text] = value
        return value


_SAID: set[str] = set()  # kinds of internal errors already logged


def _raw(frame: Frame, reason: str, seconds: int | None, nanos: int) -> Record:
    if frame.flags & _ALTERED:
        reason = f"{reason}; {_damage(frame)}"
    fields: dict[str, FieldValue] = {"__raw_log__": frame.text, "parse_error": reason}
    return Record(fields, seconds, nanos, frame.flags)


def _damage(frame: Frame) -> str:
    """What happened to the bytes of a frame, for `parse_error`."""
    notes = []
    if frame.flags & FrameFlag.TRUNCATED:
        notes.append(f"record of {frame.size} bytes truncated")
    if frame.flags & FrameFlag.DECODE:
        notes.append("bytes invalid in the file encoding kept as \\x escapes")
    if frame.flags & FrameFlag.NUL:
        notes.append("NUL bytes removed")
    return "; ".join(notes)
