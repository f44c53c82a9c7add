"""A LogGroup protobuf encoder written for the hot path, plus the SLS limits it enforces.

The SDK builds LogGroups through generated protobuf classes, one Python object per content; that
costs more than parsing the line did. Here each log is encoded once, straight to bytes, with the
per-key prefixes (tag, key length, key, value tag) computed the first time a key is seen. A
LogGroup is then the concatenation of its logs' encodings and an envelope trailer, so splitting a
group (4096 logs, 5 MB, or a 413 from the server) never re-encodes a log.

Decisions a user can see:
- A value of None is omitted: SLS has no null, and an absent key is what a query for a missing
  field expects (an empty string would also land in a `long` index as an invalid number).
- A key that breaks the SLS rules is renamed, never rejected: illegal characters become `_`, a
  leading digit gets a `_` prefix, the name is cut to 128 bytes, and reserved names get a `_`
  suffix (`__time__` -> `__time___`).
- Text that is not valid Unicode (lone surrogates) is sent with `?` in their place.
- A value over 1 MB is cut to 1 MB (on a UTF-8 boundary) and the log gets a `truncated_keys`
  field naming the keys that were cut.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from llmtail.agent.engine.stream import Encoded

MAX_LOGS_PER_GROUP = 4096
MAX_GROUP_BYTES = 5 * 1024 * 1024
MAX_VALUE_BYTES = 1024 * 1024
MAX_KEY_BYTES = 128
TRUNCATED_KEY = "truncated_keys"

# Keys SLS reserves for its own metadata (help.aliyun.com "Reserved fields").
RESERVED_KEYS = frozenset(
    {
        "__time__",
        "__time_ns_part__",
        "__source__",
        "__topic__",
        "__partition_time__",
        "__extract_others__",
        "_extract_others_",
    }
)

_LEGAL_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")
_ILLEGAL_CHAR = re.compile(r"[^A-Za-z0-9_]")
_MAX_KEY_CACHE = 4096
_U32 = struct.Struct("<I").pack
_SMALL = 128  # values shorter than this have one-byte length varints: the common case


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_VARINT_TABLE = tuple(_varint(n) for n in range(16384))


def varint(n: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int."""
    return _VARINT_TABLE[n] if n < 16384 else _varint(n)


def _len_field(tag: bytes, payload: bytes) -> bytes:
    return tag + varint(len(payload)) + payload


def legal_key(key: str) -> str:
    """The key SLS will accept for `key`: itself when legal, otherwise a predictable rename."""
    if _LEGAL_KEY.fullmatch(key) and key not in RESERVED_KEYS:
        return key
    name = _ILLEGAL_CHAR.sub("_", key) or "_"
    if name[0].isdigit():
        name = "_" + name
    name = name[:MAX_KEY_BYTES]
    if name in RESERVED_KEYS:
        name = (name + "_")[-MAX_KEY_BYTES:]
    return name


def _utf8(text: str) -> bytes:
    """UTF-8; a lone surrogate (from a surrogateescape decode) becomes '?' instead of raising."""
    return text.encode("utf-8", "replace")


def _truncate(value: bytes) -> bytes:
    return value[:MAX_VALUE_BYTES].decode("utf-8", "ignore").encode()


class _KeyCodec:
    """Precomputed encodings of one content key: Contents tag, content length, key, value tag.

    Heads are latin-1 text: a log is assembled as one str and encoded once, which is cheaper
    than encoding each value to bytes (latin-1 maps code points 0-255 to the same bytes).
    """

    __slots__ = ("prefix", "small")

    def __init__(self, key: str) -> None:
        kb = legal_key(key).encode()
        self.prefix = b"\x0a" + varint(len(kb)) + kb + b"\x12"
        p = len(self.prefix)
        # For values shorter than _SMALL bytes the whole head is one precomputed string.
        self.small = tuple(
            (b"\x12" + varint(p + 1 + n) + self.prefix + bytes((n,))).decode("latin-1")
            for n in range(_SMALL)
        )

    def head(self, n: int) -> str:
        """The head for a value of `n` bytes."""
        if n < _SMALL:
            return self.small[n]
        vl = varint(n)
        return (b"\x12" + varint(len(self.prefix) + len(vl) + n) + self.prefix + vl).decode(
            "latin-1"
        )


@dataclass(slots=True)
class LogGroupBytes:
    """An encoded LogGroup: the seam `LogClient.put_log_raw` posts via `SerializeToString()`."""

    logs: list[bytes]
    trailer: bytes
    size: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.size < 0:
            self.size = sum(map(len, self.logs)) + len(self.trailer)

    def SerializeToString(self) -> bytes:  # noqa: N802 - the protobuf method name the SDK calls
        return b"".join(self.logs) + self.trailer

    def halves(self) -> tuple[LogGroupBytes, LogGroupBytes]:
        """Two groups with half the logs each (for a 413); the envelope is shared."""
        mid = len(self.logs) // 2
        return LogGroupBytes(self.logs[:mid], self.trailer), LogGroupBytes(
            self.logs[mid:], self.trailer
        )


@dataclass(frozen=True, slots=True)
class SerializedGroup:
    """A LogGroup already in one buffer (a sealed batch's `data`): posted with no copy."""

    raw: Encoded

    @property
    def size(self) -> int:
        return len(self.raw)

    def SerializeToString(self) -> Encoded:  # noqa: N802 - the protobuf method name the SDK calls
        return self.raw


class LogEncoder:
    """Encodes logs to their LogGroup `Logs` entries. Safe to share between threads."""

    def __init__(self) -> None:
        self._small: dict[str, tuple[str, ...]] = {}
        self._codecs: dict[str, _KeyCodec] = {}
        self._last_time: tuple[int, bytes] = (0, b"\x00")  # records come in runs of one second

    def _codec(self, key: str) -> _KeyCodec:
        codec = self._codecs.get(key)
        if codec is None:
            codec = _KeyCodec(key)
            # Keys come from a fixed record schema; the bound only guards odd inputs.
            if len(self._codecs) < _MAX_KEY_CACHE:
                self._codecs[key] = codec
                self._small[key] = codec.small
        return codec

    def encode_log(
        self,
        fields: Mapping[str, str | int | None],
        time: int,
        time_ns: int = 0,
        extra: Iterable[tuple[str, str]] = (),
    ) -> bytes:
        """One `Logs` entry (tag, length, body); `extra` contents are appended after `fields`."""
        # The hot path. Each value becomes text whose length is its UTF-8 byte length: ASCII
        # as is (isascii() is O(1)), anything else as its UTF-8 bytes read as latin-1.
        small = self._small
        parts: list[str] = []
        append = parts.append
        truncated: list[str] | None = None
        for key, value in fields.items():
            if type(value) is str:
                text = (
                    value if value.isascii() else value.encode("utf-8", "replace").decode("latin-1")
                )
            elif value is None:
                continue
            else:
                text = str(value)
            n = len(text)
            heads = small.get(key)
            if heads is not None and n < _SMALL:
                append(heads[n])
                append(text)
                continue
            if n > MAX_VALUE_BYTES:
                text = _truncate(text.encode("latin-1")).decode("latin-1")
                n = len(text)
                truncated = [*(truncated or []), legal_key(key)]
            append(self._codec(key).head(n))
            append(text)
        for key, extra_value in extra:
            text = extra_value.encode("utf-8", "replace").decode("latin-1")
            append(self._codec(key).head(len(text)))
            append(text)
        if truncated:
            names = ",".join(truncated)
            append(self._codec(TRUNCATED_KEY).head(len(names)))
            append(names)
        body = "".join(parts).encode("latin-1")
        last = self._last_time
        if last[0] == time:
            tv = last[1]
        else:
            tv = varint(time & 0xFFFFFFFF)
            self._last_time = (time, tv)
        # Log body: Time (1), Contents (2)..., Time_ns (4, fixed32): tag + varint + 5 bytes.
        return b"".join(
            (
                b"\x0a",
                varint(len(body) + len(tv) + 6),
                b"\x08",
                tv,
                body,
                b"\x25",
                _U32(time_ns & 0xFFFFFFFF),
            )
        )


def encode_trailer(topic: str, source: str, tags: Iterable[tuple[str, str]]) -> bytes:
    """Topic (3), Source (4) and LogTags (6): what follows the logs in field-number order."""
    parts = [_len_field(b"\x1a", _utf8(topic)), _len_field(b"\x22", _utf8(source))]
    for key, value in tags:
        tag = _len_field(b"\x0a", _utf8(key)) + _len_field(b"\x12", _utf8(value))
        parts.append(_len_field(b"\x32", tag))
    return b"".join(parts)


def pack(
    logs: list[bytes],
    trailer: bytes,
    max_logs: int = MAX_LOGS_PER_GROUP,
    max_bytes: int = MAX_GROUP_BYTES,
) -> list[LogGroupBytes]:
    """Cut encoded logs into LogGroups within the limits; a lone oversize log gets its own."""
    groups: list[LogGroupBytes] = []
    current: list[bytes] = []
    size = len(trailer)
    for log in logs:
        if current and (len(current) >= max_logs or size + len(log) > max_bytes):
            groups.append(LogGroupBytes(current, trailer, size))
            current, size = [], len(trailer)
        current.append(log)
        size += len(log)
    if current:
        groups.append(LogGroupBytes(current, trailer, size))
    return groups


def _read_varint(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def split_logs(data: Encoded, ends: list[int]) -> list[bytes]:
    """The `Logs` entries of a sealed batch, one bytes each (for splits and restamps only)."""
    view = memoryview(data)  # the core's BatchBytes is a buffer, not a sequence
    logs, start = [], 0
    for end in ends:
        logs.append(bytes(view[start:end]))
        start = end
    return logs


def restamp_log(log: bytes, now: int, extra: tuple[tuple[str, str], ...]) -> bytes:
    """One encoded `Logs` entry with its Time set to `now`, Time_ns to 0 and `extra` contents
    appended (the original time): no re-parse of the record is needed."""
    body_len, pos = _read_varint(log, 1)  # after the Logs tag (0x0a)
    body = log[pos : pos + body_len]
    _, contents_at = _read_varint(body, 1)  # after the Time tag (0x08)
    contents = body[contents_at:-5]  # Time_ns (tag 0x25 + fixed32) ends every log we encode
    parts = [contents]
    for key, value in extra:
        kb, vb = _utf8(legal_key(key)), _utf8(value)
        content = _len_field(b"\x0a", kb) + _len_field(b"\x12", vb)
        parts.append(_len_field(b"\x12", content))
    tv = varint(now & 0xFFFFFFFF)
    new_body = b"\x08" + tv + b"".join(parts) + b"\x25" + _U32(0)
    return b"\x0a" + varint(len(new_body)) + new_body


def read_log_length(data: bytes | memoryview, pos: int) -> tuple[int, int]:
    """At a `Logs` entry starting at `pos`: (its body length, where its body starts)."""
    return _read_varint(data, pos + 1)
