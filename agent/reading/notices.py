"""What the watcher tells the reading loop: chunks of bytes and lifecycle notices.

Contract with the reading loop:

    positions = {k: r for k, p in saved.items()
                 if (r := Resume.from_saved(k, p.path, p.offset, p.identity, p.marker))
                 is not None}
    watcher = Watcher(cfg.inputs, positions, cfg.tail, first_start=not checkpoint_existed)
    chunks = watcher.poll(now, budget_bytes)   # budget 0 = backpressure: read nothing
    for notice in watcher.notices():           # handle these BEFORE this poll's chunks
        ...                                    # Opened / Truncated / Rotated / Released
    for chunk in chunks:                       # chunk.offset == where that file's data resumes
        ...
    watcher.idle_since(key)                    # writer idle since (fully read), for flushes
    watcher.files()                            # FileStatus per file, for metrics and status
    watcher.marker(key, committed_offset)      # the offset marker to checkpoint with it
    watcher.close()                            # stops the directory observer, closes fds

The reading loop logs the notices (one line each); the watcher logs only what no notice says
(renames out of the globs no scan saw, fds running short, unreadable files, losses).

Ordering guarantees:
- Every notice returned by `notices()` after a `poll()` applies before that poll's chunks:
  `Opened` precedes a key's first chunk; after `Truncated(key)` the next chunk of that key has
  offset 0; `Released(key)` comes only after the poll that returned the key's last chunk.
- `Released(key)` also comes, without an `Opened`, for a checkpointed key whose file is gone
  (deleted while the agent was down): drop its checkpoint entry.
- Per key, chunks are contiguous: each chunk starts where the previous one ended (a
  `Truncated` notice is the only way back), so offsets never go backwards otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from llmtail.agent.reading.fingerprint import FileIdentity
from llmtail.agent.reading.readbuffer import ChunkData

_log = logging.getLogger("llmtail.agent.reading.watcher")


@dataclass(frozen=True, slots=True)
class Chunk:
    """The next bytes of a file: `data` starts at byte `offset` of the file identity `key`.

    `data` may be a view of the watcher's kept buffer: valid for this turn; whoever keeps its
    bytes longer copies them (`bytes(data)`), or the next turn reads into a new buffer."""

    key: str
    path: str
    offset: int
    data: ChunkData


@dataclass(frozen=True, slots=True)
class Opened:
    """Reading of `key` starts at `offset`; `input_index` says which input (encoding...)."""

    key: str
    path: str
    offset: int
    input_index: int


@dataclass(frozen=True, slots=True)
class Truncated:
    """The file shrank or its head changed (copytruncate): reading restarts at 0."""

    key: str
    path: str


@dataclass(frozen=True, slots=True)
class Rotated:
    """The file is now under `new_path`, or under no watched path (None): it will drain."""

    key: str
    old_path: str
    new_path: str | None


@dataclass(frozen=True, slots=True)
class Released:
    """Read to its end and closed (or not found at all): flush it, drop its checkpoint entry."""

    key: str
    path: str
    offset: int


Notice = Opened | Truncated | Rotated | Released


@dataclass(frozen=True, slots=True)
class Resume:
    """A checkpointed position: where the file identity was and how far it was delivered."""

    path: str
    offset: int
    identity: FileIdentity
    marker: str | None = None  # hash of the bytes just before `offset`; None: not verified

    @classmethod
    def from_saved(
        cls,
        key: str,
        path: str,
        offset: int,
        identity: Mapping[str, object],
        marker: str | None = None,
    ) -> Resume | None:
        """Build from a checkpoint entry; a damaged identity is logged and skipped (None).

        Skipping means the file is read again from 0 (duplicates), never from its end (loss).
        """
        try:
            restored = FileIdentity.from_dict(dict(identity))
        except ValueError as exc:
            _log.warning("checkpoint entry %s for %s ignored: %s", key, path, exc)
            return None
        return cls(path, max(offset, 0), rekey(restored, key), marker)


@dataclass(frozen=True, slots=True)
class FileStatus:
    """One file for metrics and status pages."""

    key: str
    path: str
    offset: int
    size: int
    behind: int
    followed: bool  # False: rotated away or deleted, draining
    deleted_since: float | None
    identity: FileIdentity  # what to checkpoint (its head grows with the file)
    input_index: int
    open: bool  # False: suspended or parked to bound open fds


def rekey(identity: FileIdentity, key: str) -> FileIdentity:
    if identity.key == key:
        return identity
    return FileIdentity(key, identity.dev, identity.ino, identity.head_len, identity.head_hash)
