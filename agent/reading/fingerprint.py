"""File identity: device, inode and a fingerprint of the file's head that grows with the file.

Why all three: Logback's new active file can get the inode number of the file it just rotated,
so (dev, ino) alone would resume a brand-new file at the old file's offset; a head checksum
alone (Vector's default) confuses copies and files that share a banner. Why a *growing* head:
Vector and Filebeat wait for N bytes before they can fingerprint a file, so files shorter than N
are never read. Here the identity records how many head bytes it has hashed (`head_len`,
0..`HEAD_BYTES`) and a file matches it when the hash of *its* first `head_len` bytes is equal;
as the file grows the identity is extended (`grown`), never changed, so an identity taken when
the file had 10 bytes still recognises it at 10 MB.

`key` is the file's name in checkpoints and acknowledgements. It is minted once, when the file is
first seen (by the watcher, which keeps keys unique), and then travels with the identity through
checkpoints: it never depends on the head, so it stays stable as the head grows.

Contract with the checkpointer: `to_dict()` is stored as an opaque dict of str/int values and
`from_dict()` restores it (ValueError on anything malformed).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Container
from dataclasses import dataclass, replace
from typing import Any

HEAD_BYTES = 1024
"""How much of a file's head identifies it once the file is that long."""

MARKER_BYTES = 64
"""How many bytes just before a read offset its marker covers (Fluent Bit's offset marker)."""


def head_hash(data: bytes) -> str:
    """The hex digest stored for a head; blake2b is fast and needs no dependency."""
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def read_marker(fd: int, offset: int) -> bytes:
    """The up to MARKER_BYTES bytes just before `offset` (fewer at the start of the file).

    A file whose bytes there changed is not the one read up to `offset` any more: it was
    truncated and rewritten (possibly past `offset`, which a size check alone cannot see)."""
    start = max(offset - MARKER_BYTES, 0)
    chunks: list[bytes] = []
    got = 0
    while start + got < offset:
        data = os.pread(fd, offset - start - got, start + got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


def marker_hash(data: bytes) -> str:
    """What a checkpoint keeps of an offset marker."""
    return head_hash(data)


def read_head(fd: int, limit: int = HEAD_BYTES) -> bytes:
    """Up to `limit` bytes from offset 0 of an open file, without moving its position."""
    chunks: list[bytes] = []
    got = 0
    while got < limit:
        data = os.pread(fd, limit - got, got)
        if not data:
            break
        chunks.append(data)
        got += len(data)
    return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class FileIdentity:
    """Who a file is, independent of the path it is found under."""

    key: str
    dev: int
    ino: int
    head_len: int
    head_hash: str

    @classmethod
    def of(cls, key: str, dev: int, ino: int, head: bytes) -> FileIdentity:
        """The identity of a file whose first bytes (at most HEAD_BYTES) are `head`."""
        head = head[:HEAD_BYTES]
        return cls(key=key, dev=dev, ino=ino, head_len=len(head), head_hash=head_hash(head))

    def same_inode(self, dev: int, ino: int) -> bool:
        return self.dev == dev and self.ino == ino

    def matches_head(self, head: bytes) -> bool:
        """True when `head` (a file's first bytes) starts with the bytes this identity hashed."""
        return len(head) >= self.head_len and head_hash(head[: self.head_len]) == self.head_hash

    def grown(self, head: bytes) -> FileIdentity:
        """This identity extended to a longer head of the same file (call after matches_head)."""
        head = head[:HEAD_BYTES]
        if len(head) <= self.head_len:
            return self
        return replace(self, head_len=len(head), head_hash=head_hash(head))

    @property
    def complete(self) -> bool:
        """The head reached HEAD_BYTES: it will not grow any more."""
        return self.head_len >= HEAD_BYTES

    def to_dict(self) -> dict[str, str | int]:
        return {
            "key": self.key,
            "dev": self.dev,
            "ino": self.ino,
            "head_len": self.head_len,
            "head_hash": self.head_hash,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FileIdentity:
        """Restore a saved identity; ValueError names the first bad field."""
        fields: dict[str, Any] = {}
        for name, kind in (
            ("key", str),
            ("dev", int),
            ("ino", int),
            ("head_len", int),
            ("head_hash", str),
        ):
            value = data.get(name)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise ValueError(f"file identity: {name!r} missing or not {kind.__name__}")
            fields[name] = value
        if not 0 <= fields["head_len"] <= HEAD_BYTES:
            raise ValueError(f"file identity: head_len {fields['head_len']} out of range")
        return cls(**fields)


def mint_key(dev: int, ino: int, taken: Container[str]) -> str:
    """A new checkpoint key for a file first seen as (dev, ino), unique among `taken`.

    The inode is in the key to make it readable in checkpoints; the suffix makes a reused inode
    a different key while the old file's acknowledgements are still in flight.
    """
    base = f"{dev:x}-{ino:x}"
    key = base
    n = 1
    while key in taken:
        key = f"{base}.{n}"
        n += 1
    return key
