"""Hypothesis strategies for log records, and a renderer that writes them as logback would.

The renderer is independent of the parser: it formats fields with the documented pattern
(`%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] [%thread] -
%m%n`), so a property test can compare what the parser reads with what was written.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import strategies as st

ZONE = "Asia/Shanghai"
LEVELS = ("TRACE", "DEBUG", "INFO", "WARN", "ERROR")
PAYLOAD_NAMES = (
    "app",
    "module",
    "model",
    "workspace",
    "request_id",
    "status_code",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "error_code",
    "error_message",
)
INT_NAMES = {"status_code", "duration_ms", "input_tokens", "output_tokens", "total_tokens"}
# Anything a header could start with: a continuation line must not look like one.
_HEADER_START = re.compile(r"\x00*\ufeff?\x00*[0-9]{4}-[0-9]{2}-[0-9]{2} ")


@dataclass
class Rendered:
    """One record as logback writes it, and the fields a parser must give back."""

    data: bytes
    fields: dict[str, str | int | None]
    time: int
    time_ns: int
    extra: dict[str, object] = field(default_factory=dict)


def _text(exclude: str = "", min_size: int = 0, max_size: int = 30) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(
            blacklist_categories=("Cs",), blacklist_characters="\n\r\x00\ufeff" + exclude
        ),
        min_size=min_size,
        max_size=max_size,
    )


times = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2037, 12, 31))
levels = st.sampled_from(LEVELS)
trace_ids = st.one_of(st.just(""), st.from_regex(r"[0-9a-f]{8,32}", fullmatch=True))
loggers = st.one_of(
    st.sampled_from(
        ("c.a.c.s.i.ChatServiceImpl", "o.a.c.c.C.[.[.[/]", "com.example.App", "x", "[weird]")
    ),
    _text(exclude="#", min_size=1).filter(lambda s: "#" not in s),
)
methods = st.one_of(
    st.sampled_from(("chat", "?", "", "lambda$chat$0", "doFilter")),
    st.from_regex(r"[A-Za-z_$][A-Za-z0-9_$]{0,20}", fullmatch=True),
)
lines = st.one_of(st.none(), st.integers(min_value=-5, max_value=100_000))
threads = st.one_of(
    st.sampled_from(("main", "", "http-nio-8080-exec-1", "pool 1 [worker] 2", "[x]", "a ]b")),
    _text().filter(lambda s: "] - " not in s and not s.endswith("]")),
)
continuation = st.one_of(
    st.sampled_from(
        (
            "java.lang.IllegalStateException: boom, again",
            "\tat com.example.ChatService.chat(ChatService.java:42)",
            "Caused by: java.net.SocketTimeoutException: Read timed out",
            "\t... 12 common frames omitted",
            "\tSuppressed: java.io.IOException: x",
            "",
            "   ",
        )
    ),
    _text(max_size=40),
).filter(lambda s: not _HEADER_START.match(s))


@st.composite
def payloads(draw: st.DrawFn) -> dict[str, str | int | None]:
    word = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.:/-]{0,15}", fullmatch=True)
    values: dict[str, str | int | None] = {
        "app": draw(word),
        "module": draw(word),
        "model": draw(st.sampled_from(("qwen-max", "qwen-plus", "deepseek-r1")) | word),
        "workspace": draw(st.from_regex(r"ws-[0-9a-z]{0,8}", fullmatch=True)),
        "request_id": draw(
            st.from_regex(
                r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", fullmatch=True
            )
        ),
    }
    for name in ("status_code", "duration_ms", "input_tokens", "output_tokens", "total_tokens"):
        values[name] = draw(st.none() | st.integers(min_value=-1, max_value=10**9))
    failed = draw(st.booleans())
    values["error_code"] = draw(word) if failed else ""
    values["error_message"] = (
        draw(
            st.sampled_from(
                (
                    "Requests rate limit exceeded, please try again later.",
                    "Input data may contain inappropriate content., see https://x/y",
                )
            )
            | _text(exclude=",")
        )
        if failed
        else ""
    )
    return values


@st.composite
def feedbacks(draw: st.DrawFn) -> dict[str, str | int | None]:
    """A rating as an application logs it: `up`/`down` or a number, with or without comment."""
    request_id = draw(st.from_regex(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{12}", fullmatch=True))
    rating = draw(st.sampled_from(("up", "down")) | st.integers(-5, 10).map(str))
    comment = draw(
        st.none()
        | st.sampled_from(("", "wrong answer, and slow", "好,但是太长"))
        | _text(max_size=40)
    )
    return {"request_id": request_id, "rating": rating, "comment": comment}


def render_feedback(values: dict[str, str | int | None]) -> str:
    """`feedback:id,rating[,comment]`: a missing comment is left out, not written empty."""
    parts = [values["request_id"], values["rating"]]
    if values["comment"] is not None:
        parts.append(values["comment"])
    return "feedback:" + ",".join(str(p) for p in parts)


def render_payload(values: dict[str, str | int | None]) -> str:
    return ",".join("" if values[n] is None else str(values[n]) for n in PAYLOAD_NAMES)


@st.composite
def records(draw: st.DrawFn, crlf: bool = True) -> Rendered:
    """A record of any event kind, rendered with the documented pattern."""
    when = draw(times)
    ms = when.microsecond // 1000
    when = when.replace(microsecond=ms * 1000)
    stamp = when.strftime("%Y-%m-%d %H:%M:%S.") + f"{ms:03d}"
    level = draw(levels)
    line = draw(lines)
    prefix: dict[str, str | int | None] = {
        "time": stamp,
        "level": level,
        "trace_id": draw(trace_ids),
        "logger": draw(loggers),
        "method": draw(methods),
        "line": line,
        "thread": draw(threads),
    }
    kind = draw(st.sampled_from(("log", "prompt", "result", "llm_call", "feedback")))
    payload: dict[str, str | int | None] = {}
    if kind == "llm_call":
        payload = draw(payloads())
        head = render_payload(payload)
    elif kind == "feedback":
        payload = draw(feedbacks())
        head = render_feedback(payload)
    elif kind == "log":
        head = draw(
            _text(max_size=60).filter(
                lambda s: (
                    not s.startswith(("prompt:", "result:", "feedback:")) and s.count(",") < 11
                )
            )
        )
    else:
        head = f"{kind}:" + draw(_text(max_size=60))
    more = draw(st.lists(continuation, max_size=4))
    message = "\n".join([head, *more])
    newline = draw(st.sampled_from(("\n", "\r\n"))) if crlf else "\n"
    text = (
        f"{stamp} {level:<5} [traceId:{prefix['trace_id']}] "
        f"[{prefix['logger']}#{prefix['method']}():{'?' if line is None else line}] "
        f"[{prefix['thread']}] - {message}"
    )
    data = (text.replace("\n", newline) + newline).encode()
    fields = {**prefix, "event": kind, "message": message, **payload}
    local = when.replace(tzinfo=ZoneInfo(ZONE))
    epoch = int((local - datetime(1970, 1, 1, tzinfo=ZoneInfo("UTC"))) // timedelta(seconds=1))
    return Rendered(data, fields, epoch, ms * 1_000_000)


def chunkings(size: int) -> st.SearchStrategy[list[int]]:
    """Sorted cut points inside a buffer of `size` bytes."""
    if size <= 1:
        return st.just([])
    return st.lists(st.integers(min_value=1, max_value=size - 1), max_size=12).map(
        lambda cuts: sorted(set(cuts))
    )


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *cuts, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]
