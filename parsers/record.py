"""Frames -> typed records (design.md section 3). `RecordParser.parse` never raises.

Outcomes, in the order they are decided:
- the first line does not match the pattern (or its time is impossible): `__raw_log__` (the
  whole text) + `parse_error`; `time` is None;
- the message is payload-shaped but malformed: `__raw_log__` + `parse_error`; `time` is the
  record's time, so the raw record still lands where it happened;
- otherwise the typed fields, `event` one of llm_call / prompt / result / log;
- a frame whose bytes were altered (TRUNCATED, DECODE, NUL) keeps its typed fields and also
  gets `parse_error` saying what was altered, so no damage goes unnoticed.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass, field

from parsers.lines import FrameFlag
from parsers.multiline import Assembler, Frame
from parsers.pattern import PREFIX_KEYS, CompiledPattern, compile_pattern
from parsers.payload import DEFAULT_FIELDS, PayloadError, PayloadParser

FieldValue = str | int | None

DEFAULT_PATTERN = (
    "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] "
    "[%thread] - %m%n"
)
_ALTERED = FrameFlag.TRUNCATED | FrameFlag.DECODE | FrameFlag.NUL


@dataclass(frozen=True, slots=True)
class ParserSettings:
    """Everything parsing depends on; built from the config's `parser` and input `encoding`."""

    pattern: str = DEFAULT_PATTERN
    timezone: str | None = None  # IANA name of the JVM's zone; None: the host's zone
    payload_separator: str = ","
    payload_fields: tuple[tuple[str, str], ...] = DEFAULT_FIELDS
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
        self._match = self.pattern.regex.match
        keys = self.pattern.keys
        self._keys = keys
        self._mi = self.pattern.message_at
        self._has_message = self.pattern.has_message
        self._tail_keys = len(keys) > self._mi
        order = [k for k in PREFIX_KEYS if k in keys] + [k for k in keys if k not in PREFIX_KEYS]
        self._order: tuple[str, ...] | None = None if list(keys) == order else tuple(order)
        self._epoch = self.pattern.date.epoch if self.pattern.date else None
        self._has_line = "line" in keys

    def assembler(self, start_offset: int = 0) -> Assembler:
        """A fresh assembler for one file read from `start_offset`."""
        s = self.settings
        return Assembler(self._starts, s.encoding, s.max_record_bytes, start_offset)

    def parse(self, frame: Frame) -> Record:
        """The record of one frame; a failure becomes a raw record with a reason."""
        try:
            return self._parse(frame)
        except Exception as exc:
            return _raw(frame, f"internal parser error ({type(exc).__name__})", None, 0)

    def _parse(self, frame: Frame) -> Record:
        text = frame.text
        m = self._match(text)
        if m is None:
            if frame.flags & FrameFlag.HEADLESS:
                reason = "no record header before these lines"
            else:
                reason = self.pattern.explain(text.partition("\n")[0])
            return _raw(frame, reason, None, 0)
        g = m.groups()
        mi = self._mi
        fields: dict[str, FieldValue]
        if self._tail_keys:
            fields = dict(zip(self._keys, g[:mi] + g[mi + 1 : -1], strict=True))
        else:
            fields = dict(zip(self._keys, g[:mi], strict=True))
        if self._order is not None:
            fields = {k: fields[k] for k in self._order}
        message = g[mi] + g[-1] if self._has_message else g[-1][1:]
        stamp = fields["time"]
        when = self._epoch(stamp) if self._epoch is not None and isinstance(stamp, str) else None
        if when is None:
            return _raw(frame, f"invalid timestamp {stamp!r}", None, 0)
        seconds, nanos = when
        if self._has_line:
            line = fields["line"]
            fields["line"] = None if line in ("?", "") else int(line)  # type: ignore[arg-type]
        error = self._message(fields, message)
        if error is not None:
            return _raw(frame, error, seconds, nanos)
        if frame.flags & _ALTERED:
            fields["parse_error"] = _damage(frame)
        return Record(fields, seconds, nanos, frame.flags)

    def _message(self, fields: dict[str, FieldValue], message: str) -> str | None:
        """Adds `event`, `message` and the payload fields; the reason if the payload is bad."""
        if message.startswith("prompt:"):
            fields["event"] = "prompt"
        elif message.startswith("result:"):
            fields["event"] = "result"
        else:
            payload = self._payload.parse(message)
            if isinstance(payload, PayloadError):
                return payload.reason
            if payload is not None:
                fields["event"] = "llm_call"
                fields["message"] = message
                fields.update(payload)
                return None
            fields["event"] = "log"
        fields["message"] = message
        return None


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
