"""The backfill's own durable state: per file content, how far delivery was acknowledged.

It lives in `state_dir/backfill.json` (the live agent's `checkpoints.json` is never read or
written) and is locked with `backfill.lock`, so a backfill runs beside `llmtail run` on the same
state_dir. Files are keyed by a fingerprint of their *decompressed* head, not by path or inode:
`app.log.1` that logrotate later renames to `app.log.2.gz` is the same content and is recognised.
Offsets count decompressed bytes for the same reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmtail.agent.reading.fingerprint import HEAD_BYTES, head_hash
from llmtail.agent.state.checkpoint import Checkpointer, CheckpointError, SavedPosition

STATE_NAME = "backfill.json"
LOCK_NAME = "backfill.lock"


@dataclass(slots=True)
class FileProgress:
    """One file content's place in the backfill."""

    key: str
    path: str  # where it was last read from (for people; matching is by head)
    offset: int  # decompressed bytes before which every record is final
    head_len: int
    head_hash: str
    done: bool = False  # read to its end and everything in it final
    disk_size: int = 0  # size on disk when done: unchanged, a rerun skips it unopened
    damaged: int = -1  # a damaged .gz: the bytes recovered from it; -1: not damaged

    def matches(self, head: bytes) -> bool:
        return len(head) >= self.head_len and head_hash(head[: self.head_len]) == self.head_hash


class BackfillState:
    """Loads, finds by content head, and saves file progress (atomically, via Checkpointer)."""

    def __init__(self, state_dir: str | Path) -> None:
        self._store = Checkpointer(state_dir, name=STATE_NAME)
        self.files: dict[str, FileProgress] = {}

    @property
    def path(self) -> Path:
        return self._store.path

    def load(self) -> None:
        """Raises CheckpointError (one line) on a corrupt or foreign file."""
        self.files = {}
        for key, pos in self._store.load().items():
            ident = pos.identity
            try:
                progress = FileProgress(
                    key=key,
                    path=pos.path,
                    offset=pos.offset,
                    head_len=_int(ident, "head_len"),
                    head_hash=str(ident["head_hash"]),
                    done=bool(_int(ident, "done")),
                    disk_size=_int(ident, "disk_size"),
                    damaged=_int(ident, "damaged"),
                )
            except (KeyError, TypeError):
                raise CheckpointError(
                    f"{self.path}: entry {key!r} is not a backfill entry; move the file aside "
                    "to start the backfill over"
                ) from None
            self.files[key] = progress

    def find(self, head: bytes) -> FileProgress | None:
        """The entry whose fingerprinted head `head` starts with (the longest such one)."""
        best: FileProgress | None = None
        for progress in self.files.values():
            if progress.matches(head) and (best is None or progress.head_len > best.head_len):
                best = progress
        return best

    def add(self, path: str, head: bytes) -> FileProgress:
        """A new entry for content first seen now, at offset 0."""
        head = head[:HEAD_BYTES]
        digest = head_hash(head)
        key, n = digest[:20], 1
        while key in self.files:
            key, n = f"{digest[:20]}.{n}", n + 1
        progress = FileProgress(key, path, 0, len(head), digest)
        self.files[key] = progress
        return progress

    def save(self) -> bool:
        """Persist every entry; False when nothing changed since the last save (no I/O)."""
        return self._store.save(
            {
                key: SavedPosition(
                    key,
                    p.path,
                    p.offset,
                    {
                        "head_len": p.head_len,
                        "head_hash": p.head_hash,
                        "done": int(p.done),
                        "disk_size": p.disk_size,
                        "damaged": p.damaged,
                    },
                )
                for key, p in self.files.items()
            }
        )


def _int(identity: dict[str, str | int], name: str) -> int:
    value = identity[name]
    if not isinstance(value, int):
        raise TypeError(name)
    return value
