"""Logback PatternLayout -> one matcher for the first line of a record.

Free-text fields (logger, method, thread, MDC values) match lazily up to the literal text that
follows them, so the literals are the anchors: a logger with brackets (`o.a.c.c.C.[.[.[/]`) ends
at `#`, a thread with `] ` inside it ends at the first `] - `. Two free-text fields with nothing
between them cannot be told apart; the first one then takes as little as it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from parsers.timestamp import DateFormat, DateFormatError

_LAZY = r"[^\n]*?"
_LEVEL = r"[A-Za-z]+"
_LINE = r"(?:-?[0-9]+|\?)?"
_DIGITS = r"[0-9]+"

# conversion word -> record key; None: matches nothing on the first line (exceptions).
_WORDS: dict[str, str | None] = {
    **dict.fromkeys(("d", "date"), "time"),
    **dict.fromkeys(("p", "le", "level"), "level"),
    **dict.fromkeys(("c", "lo", "logger"), "logger"),
    **dict.fromkeys(("C", "class"), "class"),
    **dict.fromkeys(("M", "method"), "method"),
    **dict.fromkeys(("L", "line"), "line"),
    **dict.fromkeys(("t", "thread"), "thread"),
    **dict.fromkeys(("m", "msg", "message"), "message"),
    **dict.fromkeys(("F", "file"), "file"),
    **dict.fromkeys(("X", "mdc"), "mdc"),
    **dict.fromkeys(("cn", "contextName"), "context"),
    **dict.fromkeys(("r", "relative"), "relative"),
    "marker": "marker",
    "n": "\n",
    **dict.fromkeys(
        (
            "ex",
            "exception",
            "throwable",
            "xEx",
            "xException",
            "xThrowable",
            "rEx",
            "rootException",
            "nopex",
            "nopexception",
            "wEx",
            "wex",
        ),
        None,
    ),
}

# The order of design.md section 3; keys a pattern adds (class, file, mdc...) follow `thread`.
PREFIX_KEYS = ("time", "level", "trace_id", "logger", "method", "line", "thread")
_TRACE_KEYS = {"traceid", "xb3traceid", "tid", "requesttraceid"}
_KEY_OK = re.compile(r"[^A-Za-z0-9_]")
_CANONICAL = {*PREFIX_KEYS, "event", "message", "__raw_log__", "parse_error"}


class PatternError(ValueError):
    """The pattern cannot be compiled; the message names the problem and its position."""


@dataclass(frozen=True, slots=True)
class _Conv:
    word: str
    key: str | None
    left: bool  # `-`: padded on the right
    min_width: int
    options: tuple[str, ...]
    pos: int


@dataclass(slots=True)
class _Build:
    """Regex sources built in parallel for text (named keys) and for bytes (record starts)."""

    text: list[str] = field(default_factory=list)
    start: list[str | bytes] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class CompiledPattern:
    """A pattern compiled once per config.

    `regex` matches a whole record text (first line + continuation lines); its groups are
    `keys` in order, then the message head and the message rest. `start_regex(encoding)`
    says, on raw bytes, whether a line starts a record.
    """

    source: str
    keys: tuple[str, ...]
    regex: re.Pattern[str]
    date: DateFormat | None
    has_message: bool
    message_at: int  # index in groups() of the message head; the message rest is last
    _start_parts: tuple[str | bytes, ...]

    def start_regex(self, encoding: str) -> re.Pattern[bytes]:
        """Bytes regex for `\\n` + BOM? + NUL* + a first line: finds record starts in a chunk.

        It starts with the literal `\\n` so the regex engine can skip between newlines fast;
        callers test the first line of a buffer with `match` on `\\n` + the buffer's head."""
        out: list[bytes] = [b"\n(?:\xef\xbb\xbf)?\x00*(?="]
        for part in self._start_parts:
            if isinstance(part, bytes):
                out.append(part)
                continue
            try:
                out.append(re.escape(part.encode(encoding)))
            except UnicodeEncodeError:
                raise PatternError(
                    f"literal {part!r} of the pattern cannot be written in {encoding}"
                ) from None
        out.append(b")")
        return re.compile(b"".join(out))

    def explain(self, first_line: str) -> str:
        """Why `first_line` is not a record start: the first pattern element that fails."""
        if not first_line.strip():
            return "blank line outside a record"
        return "line does not match the pattern"


def _tokenize(pattern: str) -> list[_Conv | str]:
    out: list[_Conv | str] = []
    literal: list[str] = []
    i, n = 0, len(pattern)

    def flush() -> None:
        if literal:
            out.append("".join(literal))
            literal.clear()

    while i < n:
        c = pattern[i]
        if c == "\\" and i + 1 < n:
            nxt = pattern[i + 1]
            literal.append({"t": "\t", "n": "\n", "r": "\r"}.get(nxt, nxt))
            i += 2
            continue
        if c == "$" and pattern.startswith("${", i):
            raise PatternError(
                f"variable {pattern[i : pattern.find('}', i) + 1] or pattern[i:]} at position {i} "
                "is not supported: write its value into the pattern"
            )
        if c != "%":
            literal.append(c)
            i += 1
            continue
        if pattern.startswith("%%", i):
            literal.append("%")
            i += 2
            continue
        start = i
        i += 1
        m = re.compile(r"(-?)([0-9]*)(?:\.(-?[0-9]+))?([A-Za-z]*)").match(pattern, i)
        assert m is not None  # every part of it is optional
        left, width, _max, word = m.groups()
        i = m.end()
        if not word:
            what = pattern[start : i + 1]
            raise PatternError(f"conversion {what!r} at position {start} has no word")
        options: list[str] = []
        while i < n and pattern[i] == "{":
            end = pattern.find("}", i)
            if end < 0:
                raise PatternError(f"unclosed '{{' after %{word} at position {start}")
            options.append(pattern[i + 1 : end])
            i = end + 1
        if pattern.startswith("()", i):
            # `%method()` (a logback parser error, but common in copies): read as literal ().
            flush()
            out.append(_conv(word, left, width, options, start))
            literal.append("()")
            i += 2
            continue
        if i < n and pattern[i] == "(":
            raise PatternError(
                f"composite conversion %{word}(...) at position {start} is not supported"
            )
        flush()
        out.append(_conv(word, left, width, options, start))
    flush()
    return out


def _conv(word: str, left: str, width: str, options: list[str], pos: int) -> _Conv:
    if word not in _WORDS:
        raise PatternError(f"conversion word %{word} at position {pos} is not supported")
    return _Conv(word, _WORDS[word], left == "-", int(width or 0), tuple(options), pos)


def _mdc_key(conv: _Conv, taken: set[str]) -> str:
    if not conv.options or not conv.options[0].strip():
        return "mdc"
    name = conv.options[0].split(":-")[0].strip()
    if re.sub(r"[-_.]", "", name.lower()) in _TRACE_KEYS and "trace_id" not in taken:
        return "trace_id"
    key = _KEY_OK.sub("_", name)
    if key[0].isdigit() or key in _CANONICAL:
        key = "mdc_" + key
    return key[:128]


def compile_pattern(pattern: str, timezone: str | None = None) -> CompiledPattern:
    """Compile a Logback PatternLayout. Raises PatternError naming what is unsupported."""
    tokens = _tokenize(pattern)
    build = _Build()
    date: DateFormat | None = None
    has_message = False
    message_last = False
    message_at = 0
    taken: set[str] = set()
    pending_spaces = False  # after a level: literal spaces match one or more
    pending_pad = False  # after a left-justified padded level
    first_line_done = False
    tail_text: list[str] = []  # first-line elements after the message (rare)

    def lit(text: str) -> None:
        nonlocal pending_spaces, pending_pad
        if pending_spaces and text.startswith(" "):
            text = text.lstrip(" ")
            emit(" +", b" +")
            pending_spaces = pending_pad = False
        settle()
        if text:
            emit(re.escape(text), text)

    def settle() -> None:
        """A padded level not followed by a space still needs its padding matched."""
        nonlocal pending_spaces, pending_pad
        if pending_pad:
            emit(" *", b" *")
        pending_spaces = pending_pad = False

    def emit(text_src: str, start_src: str | bytes) -> None:
        if has_message:
            tail_text.append(text_src)
        else:
            build.text.append(text_src)
            build.start.append(start_src)

    for index, tok in enumerate(tokens):
        if first_line_done:
            break
        if isinstance(tok, str):
            head, sep, _rest = tok.partition("\n")
            lit(head)
            if sep:
                first_line_done = True
            continue
        settle()
        key = tok.key
        if key == "\n":
            first_line_done = True
            continue
        if key is None:
            continue
        if key == "message":
            if has_message:
                raise PatternError(f"second %{tok.word} at position {tok.pos}")
            has_message = True
            message_at = len(build.keys)
            rest = tokens[index + 1 :]
            message_last = (
                not rest
                or (isinstance(rest[0], _Conv) and rest[0].key in ("\n", None))
                or (isinstance(rest[0], str) and rest[0].startswith("\n"))
            )
            continue
        if key == "time":
            if date is not None:
                body = _LAZY
                key = ""
            else:
                fmt = tok.options[0].split(",")[0].strip() if tok.options else "ISO8601"
                zone = (
                    tok.options[0].split(",", 1)[1].strip()
                    if tok.options and "," in tok.options[0]
                    else timezone
                )
                try:
                    date = DateFormat(fmt or "ISO8601", zone)
                except DateFormatError as exc:
                    raise PatternError(
                        f"%{tok.word}{{{fmt}}} at position {tok.pos}: {exc}"
                    ) from None
                except (KeyError, ValueError) as exc:
                    raise PatternError(
                        f"%{tok.word} at position {tok.pos}: unknown zone {zone!r} ({exc})"
                    ) from None
                body = date.regex
        elif key == "level":
            body = _LEVEL
        elif key == "line":
            body = _LINE
        elif key == "relative":
            body = _DIGITS
        else:
            body = _LAZY
        if key == "mdc":
            key = _mdc_key(tok, taken)
        if key in taken:
            key = ""
        group = f"({body})" if key else f"(?:{body})"
        if tok.min_width and not tok.left:
            emit(" *", b" *")
        if key:
            if has_message:
                tail_text.append(group)
            else:
                build.text.append(group)
                build.start.append(f"(?:{body})".encode())
            build.keys.append(key)
            taken.add(key)
        else:
            emit(group, f"(?:{body})".encode())
        if tok.key == "level":
            pending_spaces = True
            pending_pad = tok.left and tok.min_width > 0
        elif tok.min_width and tok.left:
            emit(" *", b" *")
    if date is None:
        raise PatternError("the pattern has no %d/%date: records cannot be placed in time")
    head = "".join(build.text)
    if has_message and message_last:
        src = head + r"((?s:.*))()"
    elif has_message:
        src = head + r"([^\n]*?)" + "".join(tail_text) + r"(?=\n|\Z)((?s:.*))"
    else:
        message_at = len(build.keys)
        src = head + r"(?=\n|\Z)()((?s:.*))"
    try:
        regex = re.compile(src)
    except re.error as exc:  # pragma: no cover - a bug in this module, not in the pattern
        raise PatternError(f"internal: cannot compile pattern {pattern!r}: {exc}") from None
    return CompiledPattern(
        pattern, tuple(build.keys), regex, date, has_message, message_at, tuple(build.start)
    )
