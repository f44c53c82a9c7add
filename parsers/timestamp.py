"""`%d{...}` date formats: a regex for the written text and a fast text -> epoch conversion.

Logback writes local wall-clock time without a zone, so the zone is configuration. Conversion
through `datetime` costs microseconds, so results are cached per second of text: records of one
second share everything but the fraction digits.
"""

from __future__ import annotations

import re
from collections.abc import Callable
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


def _numeric(letter: str, count: int) -> _Field:
    if count == 1:
        return _Field(letter, count, f"{_DIGITS}{{1,2}}", None)
    return _Field(letter, count, f"{_DIGITS}{{{count}}}", count)


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
        return _Field(letter, count, f"{_DIGITS}{{{width}}}", width)
    if letter == "M" and count >= 3:
        return _Field(
            letter, count, "[A-Za-z]{3}" if count == 3 else "[A-Za-z]+", 3 if count == 3 else None
        )
    if letter in "MdHkKhmsu":
        return _numeric(letter, count)
    if letter == "S":  # fraction of a second (logback >= 1.3); SSS = milliseconds either way
        return _Field(letter, count, f"{_DIGITS}{{{count}}}", count)
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
            f"(?:{t.regex})" if isinstance(t, _Field) else re.escape(t) for t in tokens
        )
        self._full = re.compile("".join(parts))
        self._zone = _zone(zone)
        self._cache: dict[str, int | None] = {}
        self._split = self._fixed_fraction(tokens)

    @staticmethod
    def _fixed_fraction(tokens: list[_Field | str]) -> Callable[[str], tuple[str, str]] | None:
        """When everything before the fraction has a fixed width and the fraction ends the
        text, split text into (second key, fraction) by slicing: the common fast path."""
        width = 0
        for index, t in enumerate(tokens):
            if isinstance(t, str):
                width += len(t)
                continue
            if t.letter == "S":
                if index != len(tokens) - 1:
                    return None
                start = width
                return lambda text: (text[:start], text[start:])
            if t.width is None:
                return None
            width += t.width
        return None

    def epoch(self, text: str) -> tuple[int, int] | None:
        """Epoch seconds and nanoseconds of `text`, or None when it is not a valid time."""
        split = self._split
        if split is not None:
            key, frac = split(text)
            seconds = self._cache.get(key, -1)
            if seconds == -1:
                seconds = self._store(key, text)
            if seconds is None:
                return None
            return seconds, int(frac.ljust(9, "0")[:9]) if frac else 0
        m = self._full.fullmatch(text)
        if m is None:
            return None
        values = m.groups()
        frac = ""
        key_parts = []
        for f, v in zip(self._fields, values, strict=True):
            if f.letter == "S":
                frac = v
            else:
                key_parts.append(v)
        key = "\0".join(key_parts)
        seconds = self._cache.get(key, -1)
        if seconds == -1:
            seconds = self._store(key, text)
        if seconds is None:
            return None
        return seconds, int(frac.ljust(9, "0")[:9]) if frac else 0

    def _store(self, key: str, text: str) -> int | None:
        if len(self._cache) >= _CACHE_LIMIT:
            self._cache.clear()
        seconds = self._convert(text)
        self._cache[key] = seconds
        return seconds

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


def _offset(text: str) -> tzinfo:
    if text == "Z":
        return UTC
    digits = text[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) >= 4 else 0
    delta = timedelta(hours=hours, minutes=minutes)
    return timezone(-delta if text[0] == "-" else delta)
