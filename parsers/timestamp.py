"""`%d{...}` date formats: a regex for the written text and a fast text -> epoch conversion.

Logback writes local wall-clock time without a zone, so the zone is configuration. Conversion
through `datetime` costs microseconds, so results are cached per second of text: records of one
second share everything but the fraction digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from zoneinfo import ZoneInfo

_MONTHS = {
    name: number
    for number, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
_CACHE_LIMIT = 200_000
_DIGITS = "[0-9]"

# Named formats of logback's `%d{NAME}` (CoreConstants) and log4j2's `DEFAULT`.
NAMED_FORMATS = {
    "ISO8601": "yyyy-MM-dd HH:mm:ss,SSS",
    "STRICT": "yyyy-MM-dd'T'HH:mm:ss,SSS",
    "DEFAULT": "yyyy-MM-dd HH:mm:ss,SSS",
}


class DateFormatError(ValueError):
    """A SimpleDateFormat letter this parser does not read."""


@dataclass(frozen=True, slots=True)
class _Field:
    """One date letter run: what it captures and how wide it is (None: variable)."""

    letter: str
    count: int
    regex: str
    width: int | None


# Fixed-width runs are possessive (`{4}+`): there is nothing to give back, and a possessive
# run leaves no backtracking frame on the regex engine's stack (which is regrown per match).


def _numeric(letter: str, count: int) -> _Field:
    if count == 1:
        return _Field(letter, count, f"{_DIGITS}{{1,2}}", None)
    return _Field(letter, count, f"{_DIGITS}{{{count}}}+", count)


# Letters whose text does not depend on the count: (regex, width or None).
_FIXED_LETTERS: dict[str, tuple[str, int | None]] = {
    "E": ("[A-Za-z]+", None),
    "a": ("[AaPp][Mm]", 2),
    "Z": ("[+-][0-9]{4}|Z", None),
    "X": ("Z|[+-][0-9]{2}(?::?[0-9]{2})?", None),
    "z": ("[A-Za-z][A-Za-z0-9/+_-]*", None),
    "D": (f"{_DIGITS}{{1,3}}", None),
}


def _field(letter: str, count: int) -> _Field:
    if letter == "y":
        width = 2 if count == 2 else 4
        return _Field(letter, count, f"{_DIGITS}{{{width}}}+", width)
    if letter == "M" and count >= 3:
        return _Field(
            letter, count, "[A-Za-z]{3}+" if count == 3 else "[A-Za-z]+", 3 if count == 3 else None
        )
    if letter in "MdHkKhmsu":
        return _numeric(letter, count)
    if letter == "S":  # fraction of a second (logback >= 1.3); SSS = milliseconds either way
        return _Field(letter, count, f"{_DIGITS}{{{count}}}+", count)
    if letter in _FIXED_LETTERS:
        regex, fixed = _FIXED_LETTERS[letter]
        return _Field(letter, count, regex, fixed)
    raise DateFormatError(f"date letter {letter!r} is not supported")


def _tokens(fmt: str) -> list[_Field | str]:
    """Split a SimpleDateFormat into letter runs and literal text ('quoted' or not)."""
    out: list[_Field | str] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "'":
            end = fmt.find("'", i + 1)
            if end == i + 1:  # '' is a single quote
                out.append("'")
                i += 2
                continue
            if end < 0:
                raise DateFormatError(f"unterminated quote in date format {fmt!r}")
            out.append(fmt[i + 1 : end])
            i = end + 1
        elif c.isascii() and c.isalpha():
            j = i
            while j < n and fmt[j] == c:
                j += 1
            out.append(_field(c, j - i))
            i = j
        else:
            out.append(c)
            i += 1
    return out


def _zone(name: str | None) -> tzinfo | None:
    return ZoneInfo(name) if name else None


class DateFormat:
    """A compiled `%d` format: `regex` for the pattern, `epoch(text)` for the timestamp."""

    def __init__(self, fmt: str, zone: str | None) -> None:
        fmt = NAMED_FORMATS.get(fmt, fmt)
        self.format = fmt
        tokens = _tokens(fmt)
        if not any(isinstance(t, _Field) and t.letter == "d" for t in tokens):
            raise DateFormatError(
                f"date format {fmt!r} has no day (d): cannot place records in time"
            )
        self._fields: list[_Field] = [t for t in tokens if isinstance(t, _Field)]
        parts = [f"({t.regex})" if isinstance(t, _Field) else re.escape(t) for t in tokens]
        # `regex` has no capture groups, so it can be embedded in a larger pattern.
        self.regex = "".join(
            (f"(?:{t.regex})" if "|" in t.regex else t.regex)
            if isinstance(t, _Field)
            else re.escape(t)
            for t in tokens
        )
        self._full = re.compile("".join(parts))
        self._zone = _zone(zone)
        self._cache: dict[str, int | None] = {}  # generic path: per second of text
        #: Fast path: epoch of second 0 of a minute, keyed by the text up to the fraction
        #: without the two second digits (see `second_of`).
        self._minutes: dict[str, int] = {}
        #: Fast path, when every field before the fraction has a fixed width and the fraction
        #: ends the text: `seconds[text[:frac_at]]` caches epoch seconds per second of text,
        #: `text[sec_at:sec_at + 2]` are the seconds (None: no fast path).
        self.frac_at: int | None = None
        self.sec_at: int | None = None
        self.seconds: dict[str, int] = {}
        self._layout(tokens)

    def _layout(self, tokens: list[_Field | str]) -> None:
        width = 0
        sec_at = None
        for index, t in enumerate(tokens):
            if isinstance(t, str):
                width += len(t)
                continue
            if t.letter == "S" and index == len(tokens) - 1:
                self.frac_at, self.sec_at = width, sec_at
                return
            if t.width is None or t.letter == "S":
                return
            if t.letter == "s" and t.count == 2:
                sec_at = width
            width += t.width
        # Fixed width without a fraction: the whole text is the key, the fraction is empty.
        self.frac_at, self.sec_at = width, sec_at

    def second_of(self, text: str) -> int | None:
        """Fast-path miss: epoch seconds of `text` (fixed layout), cached per second.

        A minute's second 0 is cached under all of the text up to the fraction but the two
        second digits: a field after the seconds (`a`, a date written after the time) names
        the minute as much as one before them (`HH:mm:ss dd/MM/yyyy` at 10:02 of two days)."""
        frac_at = self.frac_at
        assert frac_at is not None
        key = text[:frac_at]
        sec_at = self.sec_at
        seconds: int | None
        if sec_at is not None and text[sec_at : sec_at + 2].isdigit():
            minute = text[:sec_at] + text[sec_at + 2 : frac_at]
            base = self._minutes.get(minute)
            if base is None:
                seconds = self._convert(text)
                if seconds is None:
                    return None
                base = seconds - int(text[sec_at : sec_at + 2])
                if len(self._minutes) >= _CACHE_LIMIT:
                    self._minutes.clear()
                self._minutes[minute] = base
            seconds = base + int(text[sec_at : sec_at + 2])
        else:
            seconds = self._convert(text)
            if seconds is None:
                return None
        if len(self.seconds) >= _CACHE_LIMIT:
            self.seconds.clear()
        self.seconds[key] = seconds
        return seconds

    def epoch(self, text: str) -> tuple[int, int] | None:
        """Epoch seconds and nanoseconds of `text`, or None when it is not a valid time."""
        frac_at = self.frac_at
        if frac_at is not None:
            if self._full.fullmatch(text) is None:
                return None
            seconds: int | None = self.seconds.get(text[:frac_at])
            if seconds is None:
                seconds = self.second_of(text)
            return None if seconds is None else (seconds, nanos(text[frac_at:]))
        m = self._full.fullmatch(text)
        if m is None:
            return None
        frac = ""
        key_parts = []
        for f, v in zip(self._fields, m.groups(), strict=True):
            if f.letter == "S":
                frac = v
            else:
                key_parts.append(v)
        key = "\0".join(key_parts)
        seconds = self._cache.get(key, -1)
        if seconds == -1:
            if len(self._cache) >= _CACHE_LIMIT:
                self._cache.clear()
            seconds = self._cache[key] = self._convert(text)
        return None if seconds is None else (seconds, nanos(frac))

    def _convert(self, text: str) -> int | None:
        m = self._full.fullmatch(text)
        if m is None:
            return None
        parts = {"y": 1970, "M": 1, "d": 1, "H": 0, "m": 0, "s": 0}
        pm = False
        offset: tzinfo | None = None
        for f, v in zip(self._fields, m.groups(), strict=True):
            letter = f.letter
            if letter == "y":
                parts["y"] = int(v) + (2000 if f.count == 2 else 0)
            elif letter == "M":
                parts["M"] = int(v) if f.count <= 2 else _MONTHS.get(v[:3].lower(), 0)
            elif letter in "dmsHk":
                parts[letter.replace("k", "H")] = int(v)
            elif letter in "hK":
                parts["H"] = int(v) % 12
            elif letter == "a":
                pm = v.lower() == "pm"
            elif letter in "ZX":
                offset = _offset(v)
        hour = parts["H"] % 24 + (12 if pm else 0)
        try:
            moment = datetime(
                parts["y"],
                parts["M"],
                parts["d"],
                hour,
                parts["m"],
                parts["s"],
                tzinfo=offset or self._zone,
            )
            return int(moment.timestamp())
        except (ValueError, OverflowError, OSError):
            return None


NANOS = {f"{ms:03d}": ms * 1_000_000 for ms in range(1000)}


def nanos(frac: str) -> int:
    """Nanoseconds of fraction digits ("748" -> 748000000)."""
    value = NANOS.get(frac)
    if value is None:
        value = int(frac.ljust(9, "0")[:9]) if frac.isdigit() else 0
    return value


def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)
