"""Logback PatternLayout -> one matcher for the first line of a record.

Free-text fields (logger, method, thread, MDC values) match lazily up to the literal text that
follows them, so the literals are the anchors: a logger with brackets (`o.a.c.c.C.[.[.[/]`) ends
at `#`, a thread with `] ` inside it ends at the first `] - `. Two free-text fields with nothing
between them cannot be told apart; the first one then takes as little as it can.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from llmtail.parsers.timestamp import DateFormat, DateFormatError

_LAZY = r"[^\n]*?"
_GREEDY = r"[^\n]*"
_LEVEL = r"[A-Za-z]+"
_LINE = r"(?:-?[0-9]+|\?)?"
_DIGITS = r"[0-9]+"
# Possessive forms, used when the literal that follows cannot start with a character the field
# consumes (then giving characters back can never help the rest match), and those characters.
_RUNS = {
    _LEVEL: (r"[A-Za-z]++", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"),
    _LINE: (r"(?:-?[0-9]++|\?)?+", "-0123456789?"),
    _DIGITS: (r"[0-9]++", "0123456789"),
}

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


@dataclass(frozen=True)
class CompiledPattern:
    """A pattern compiled once per config.

    `regex` matches a whole record text (first line + continuation lines); its named groups
    are `keys`, `message` (when the pattern has %m) and `_rest` (the text after the first line
    when something follows %m on it, or when there is no %m). `start_regex(encoding)` says, on
    raw bytes, whether a line starts a record: the pattern's elements up to the first free-text
    field after the date, so a line that starts like a record but breaks later is a record of
    its own (a raw one with the reason), not a silent continuation of the previous record.
    """

    source: str
    keys: tuple[str, ...]
    regex: re.Pattern[str]
    date: DateFormat | None
    has_message: bool
    message_last: bool  # nothing but the line end follows %m on the first line
    head: str  # regex source of the first line up to %m: `regex` is `head` + the message
    _start_parts: tuple[str | bytes, ...]
    _elements: tuple[tuple[str, str], ...]  # (what, regex) of the first-line elements

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

    def start_source(self) -> str:
        """The record-start test as a str regex source (no `\\n`, BOM or NUL prefix)."""
        return "".join(
            re.escape(part) if isinstance(part, str) else part.decode()
            for part in self._start_parts
        )

    def explain(self, first_line: str) -> str:
        """Why `first_line` is not a record start: the first pattern element that fails."""
        if not first_line.strip():
            return "blank line outside a record"
        src = ""
        column = 0
        for what, regex in self._elements:
            m = re.compile(src + regex).match(first_line)
            if m is None:
                return f"does not match the pattern: expected {what} at column {column + 1}"
            src += regex
            column = m.end()
        return "does not match the pattern"


def _up_to(literal: str) -> str:
    """What `[^\\n]*?` followed by `literal` matches, written so the regex engine skips runs of
    characters that cannot start `literal` in one step instead of trying it at each character
    (about twice as fast on a seed line). Same matches: the text must end right before a
    `literal[0]`, and the lazy repeat still extends past one when the rest fails there. The runs
    are possessive (`*+`): giving back characters could only end them before a character that is
    not `literal[0]`, where nothing can follow, so backtracking into them never finds a match.
    Possessive runs leave no backtracking frame on `re`'s stack, which is freed and regrown
    (realloc + copy) for every match: half the regex cost of a seed record."""
    c = re.escape(literal[0])
    return f"[^{c}\\n]*+(?:{c}[^{c}\\n]*+)*?"


_MODIFIER = re.compile(r"(-?)([0-9]*)(?:\.(-?[0-9]+))?([A-Za-z]*)")
_ESCAPES = {"t": "\t", "n": "\n", "r": "\r"}


class _Tokenizer:
    """Pattern text -> literal strings and conversions, logback's escaping rules."""

    def __init__(self, pattern: str) -> None:
        self.p = pattern
        self.out: list[_Conv | str] = []
        self.literal: list[str] = []

    def run(self) -> list[_Conv | str]:
        p, i, n = self.p, 0, len(self.p)
        while i < n:
            c = p[i]
            if c == "\\" and i + 1 < n:
                self.literal.append(_ESCAPES.get(p[i + 1], p[i + 1]))
                i += 2
            elif c == "$" and p.startswith("${", i):
                name = p[i : p.find("}", i) + 1] or p[i:]
                raise PatternError(
                    f"variable {name} at position {i} is not supported: "
                    "write its value into the pattern"
                )
            elif p.startswith("%%", i):
                self.literal.append("%")
                i += 2
            elif c == "%":
                i = self._conversion(i)
            else:
                self.literal.append(c)
                i += 1
        self._flush()
        return self.out

    def _flush(self) -> None:
        if self.literal:
            self.out.append("".join(self.literal))
            self.literal.clear()

    def _conversion(self, start: int) -> int:
        p, n = self.p, len(self.p)
        m = _MODIFIER.match(p, start + 1)
        assert m is not None  # every part of it is optional
        left, width, _max_width, word = m.groups()
        i = m.end()
        if not word:
            raise PatternError(f"conversion {p[start : i + 1]!r} at position {start} has no word")
        options: list[str] = []
        while i < n and p[i] == "{":
            end = p.find("}", i)
            if end < 0:
                raise PatternError(f"unclosed '{{' after %{word} at position {start}")
            options.append(p[i + 1 : end])
            i = end + 1
        if i < n and p[i] == "(" and not p.startswith("()", i):
            raise PatternError(
                f"composite conversion %{word}(...) at position {start} is not supported"
            )
        if word not in _WORDS:
            raise PatternError(f"conversion word %{word} at position {start} is not supported")
        self._flush()
        self.out.append(
            _Conv(word, _WORDS[word], left == "-", int(width or 0), tuple(options), start)
        )
        if p.startswith("()", i):
            # `%method()` is a logback parser error but common in copies: read it as literal ().
            self.literal.append("()")
            i += 2
        return i


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


class _Compiler:
    """Walks the tokens of the first line and emits regex sources for text and for bytes."""

    def __init__(self, timezone: str | None) -> None:
        self.timezone = timezone
        self.text: list[str] = []  # before the message
        self.tail: list[str] = []  # first-line elements after the message (rare)
        self.start: list[str | bytes] = []  # bytes regex, or str literals encoded later
        self.elements: list[tuple[str, str]] = []  # (what, regex) for explain()
        self.keys: list[str] = []
        self.taken: set[str] = set()
        self.date: DateFormat | None = None
        self.message_at = -1
        self.start_cut = -1  # len(start) where the start regex ends
        self.message_last = True
        self.level_spaces = False  # literal spaces after a level match one or more
        self.level_pad = False  # a left-justified padded level still owes its padding

    def emit(self, text_src: str, start_src: str | bytes, what: str) -> None:
        if self.message_at >= 0:
            self.tail.append(text_src)
            return
        self.text.append(text_src)
        self.start.append(start_src)
        self.elements.append((what, text_src))

    def literal(self, text: str) -> None:
        if self.level_spaces and text.startswith(" "):
            text = text.lstrip(" ")
            # Possessive when a non-space follows: the spaces are never given back.
            self.emit(" ++", b" ++", "spaces") if text else self.emit(" +", b" +", "spaces")
            self.level_spaces = self.level_pad = False
        self.settle()
        if text:
            self.emit(re.escape(text), text, repr(text))

    def settle(self) -> None:
        if self.level_pad:
            self.emit(" *", b" *", "padding")
        self.level_spaces = self.level_pad = False

    def run(self, tokens: list[_Conv | str]) -> None:
        for index, tok in enumerate(tokens):
            if isinstance(tok, str):
                head, newline, _rest = tok.partition("\n")
                self.literal(head)
                if newline:
                    return
                continue
            self.settle()
            if tok.key == "\n":
                return
            if tok.key == "message":
                self.message(tok, tokens[index + 1 :])
            elif tok.key is not None:
                nxt = tokens[index + 1] if index + 1 < len(tokens) else None
                # `%C.%M`: a dotted name before "." takes all dots but the last one.
                greedy = tok.key in ("logger", "class") and isinstance(nxt, str) and nxt[:1] == "."
                follow = nxt.partition("\n")[0] if isinstance(nxt, str) else ""
                self.conversion(tok, greedy, follow)

    def message(self, tok: _Conv, rest: list[_Conv | str]) -> None:
        if self.message_at >= 0:
            raise PatternError(f"second %{tok.word} at position {tok.pos}")
        self.message_at = len(self.keys)
        if self.start_cut < 0:
            self.start_cut = len(self.start)
        nxt = rest[0] if rest else None
        self.message_last = (
            nxt is None
            or (isinstance(nxt, _Conv) and nxt.key in ("\n", None))
            or (isinstance(nxt, str) and nxt.startswith("\n"))
        )

    def conversion(self, tok: _Conv, greedy: bool = False, follow: str = "") -> None:
        key = tok.key or ""
        body = _GREEDY if greedy else self.body(tok)
        if body in (_LAZY, _GREEDY) and self.date is not None and self.start_cut < 0:
            self.start_cut = len(self.start)  # free text: the record-start test ends here
        if body == _LAZY and follow and not (tok.min_width and tok.left):
            body = _up_to(follow)
        elif body in _RUNS and follow and follow[0] not in _RUNS[body][1]:
            body = _RUNS[body][0]
        if key == "mdc":
            key = _mdc_key(tok, self.taken)
        if key in self.taken:
            key = ""
        if tok.min_width and not tok.left:
            self.emit(" *", b" *", "padding")
        if key:
            self.emit(f"(?P<{key}>{body})", f"(?:{body})".encode(), f"%{tok.word}")
            self.keys.append(key)
            self.taken.add(key)
        else:
            self.emit(f"(?:{body})", f"(?:{body})".encode(), f"%{tok.word}")
        if tok.key == "level":
            self.level_spaces = True
            self.level_pad = tok.left and tok.min_width > 0
        elif tok.min_width and tok.left:
            self.emit(" *", b" *", "padding")

    def body(self, tok: _Conv) -> str:
        if tok.key == "time":
            if self.date is not None:
                return _LAZY  # a second %d: matched, not kept
            self.date = self.date_format(tok)
            return self.date.regex
        return {"level": _LEVEL, "line": _LINE, "relative": _DIGITS}.get(tok.key or "", _LAZY)

    def date_format(self, tok: _Conv) -> DateFormat:
        # As in logback, a comma separates the zone: `%d{"HH:mm:ss,SSS", UTC}` quotes it.
        option = tok.options[0].strip() if tok.options else ""
        if option.startswith('"') and option.find('"', 1) > 0:
            close = option.find('"', 1)
            fmt, zone_text = option[1:close], option[close + 1 :].lstrip().removeprefix(",")
        else:
            fmt, _comma, zone_text = option.partition(",")
        fmt = fmt.strip() or "ISO8601"
        zone = zone_text.strip() or self.timezone
        try:
            return DateFormat(fmt, zone)
        except DateFormatError as exc:
            raise PatternError(f"%{tok.word}{{{fmt}}} at position {tok.pos}: {exc}") from None
        except (KeyError, ValueError):
            raise PatternError(
                f"%{tok.word} at position {tok.pos}: unknown zone {zone!r} (a comma in "
                f'%d{{...}} starts the zone; quote a format with a comma: %d{{"{option}"}})'
            ) from None


def compile_pattern(pattern: str, timezone: str | None = None) -> CompiledPattern:
    """Compile a Logback PatternLayout. Raises PatternError naming what is unsupported.

    `timezone`: IANA name of the zone the JVM writes times in (None: the host's zone);
    a zone inside `%d{format, zone}` wins."""
    c = _Compiler(timezone)
    c.run(_Tokenizer(pattern).run())
    if c.date is None:
        raise PatternError("the pattern has no %d/%date: records cannot be placed in time")
    head = "".join(c.text)
    has_message = c.message_at >= 0
    if not has_message:
        src = head + r"(?=\n|\Z)(?P<_rest>(?s:.*))"
    elif c.message_last:
        src = head + r"(?P<message>(?s:.*))"
    else:
        src = head + r"(?P<message>[^\n]*?)" + "".join(c.tail) + r"(?=\n|\Z)(?P<_rest>(?s:.*))"
    starts = c.start if c.start_cut < 0 else c.start[: c.start_cut]
    return CompiledPattern(
        source=pattern,
        keys=tuple(c.keys),
        regex=re.compile(src),
        date=c.date,
        has_message=has_message,
        message_last=has_message and c.message_last,
        head=head,
        _start_parts=tuple(starts),
        _elements=tuple(c.elements),
    )
