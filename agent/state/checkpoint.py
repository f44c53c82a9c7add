"""Committed file positions on disk: versioned JSON, written atomically and durably.

A crash at any instant leaves either the previous complete file or the new one, never a torn
one: write a temp file in the same directory, fsync it, rename it over, fsync the directory.
A corrupt or newer-format file stops the agent with one line instead of silently re-reading
everything from scratch (duplicates) or from the end (loss).

Format 2 adds to an entry its offset `marker` (a hash of the bytes just before the offset, when
known), so a restart can tell a file truncated and rewritten while the agent was down. Format 1
files still load (no marker: not verified).
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

FORMAT_VERSION = 2


class CheckpointError(Exception):
    """The state directory cannot be used; the message is one line meant for the user."""


@dataclass(slots=True)
class SavedPosition:
    """Where reading of one file identity resumes.

    `identity` is opaque here: the file watcher's fields (device, inode, fingerprint...), and
    so is `marker` (what the file must hold just before `offset`; None: unknown).
    """

    key: str
    path: str
    offset: int
    identity: dict[str, str | int] = field(default_factory=dict)
    marker: str | None = None


class Checkpointer:
    """Loads and saves positions in `state_dir/name`; saving unchanged positions costs no I/O."""

    def __init__(self, state_dir: str | Path, name: str = "checkpoints.json") -> None:
        self._dir = Path(state_dir)
        self._path = self._dir / name
        self._tmp = self._dir / f".{name}.tmp"
        self._last: dict[str, SavedPosition] | None = None
        self._lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def load(self) -> dict[str, SavedPosition]:
        """Positions by key; empty when nothing was saved yet. Raises CheckpointError."""
        with self._lock:
            # A temp file is what a crash mid-save leaves: the rename never happened, so the
            # previous file is still the truth. It is not removed here (a reader such as
            # `llmtail status` must never touch a live agent's temp); the next save replaces it.
            try:
                raw = self._path.read_bytes()
            except FileNotFoundError:
                positions: dict[str, SavedPosition] = {}
            except OSError as exc:
                raise CheckpointError(
                    f"{self._path}: cannot read checkpoints: {_why(exc)}"
                ) from None
            else:
                positions = self._decode(raw)
            self._last = {key: _copy(pos) for key, pos in positions.items()}
            return positions

    def save(self, positions: dict[str, SavedPosition]) -> bool:
        """Persist `positions` durably; False (and no I/O) when they equal the last saved ones."""
        with self._lock:
            if positions == self._last:
                return False
            data = orjson.dumps(
                {
                    "version": FORMAT_VERSION,
                    "checkpoints": [_encode(positions[key]) for key in sorted(positions)],
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            try:
                self._write_in_dir(data)
            except OSError as exc:
                raise CheckpointError(
                    f"{self._path}: cannot save checkpoints: {_why(exc)}"
                ) from None
            self._last = {key: _copy(pos) for key, pos in positions.items()}
            return True

    def _write_in_dir(self, data: bytes) -> None:
        """The state directory is made when a write finds it missing (first save, or removed
        since), not asked for on every save: a save runs up to five times a second."""
        try:
            self._write(data)
        except FileNotFoundError:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._write(data)

    def _write(self, data: bytes) -> None:
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(self._tmp, self._path)
        dir_fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def _decode(self, raw: bytes) -> dict[str, SavedPosition]:
        corrupt = f"{self._path}: corrupt checkpoint file"
        advice = "move it aside to start over (files are then read per inputs.start_at)"
        try:
            doc = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise CheckpointError(f"{corrupt} (not JSON); {advice}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("version"), int):
            raise CheckpointError(f"{corrupt} (no format version); {advice}")
        version = doc["version"]
        if version > FORMAT_VERSION:
            raise CheckpointError(
                f"{self._path}: written by a newer llmtail (format {version}, this one reads "
                f"up to {FORMAT_VERSION}); upgrade llmtail or use another state_dir"
            )
        entries = doc.get("checkpoints")
        if version < 1 or not isinstance(entries, list):
            raise CheckpointError(f"{corrupt} (no checkpoint list); {advice}")
        positions: dict[str, SavedPosition] = {}
        for i, item in enumerate(entries):
            pos = _decode_position(item)
            if pos is None:
                raise CheckpointError(f"{corrupt} (entry {i} is malformed); {advice}")
            positions[pos.key] = pos
        return positions


class StateDirLock:
    """An exclusive lock on a state directory so that two agents never share checkpoints.

    The kernel drops a flock when its holder dies, so a crash never leaves a stale lock.
    """

    def __init__(self, state_dir: str | Path, name: str = "lock") -> None:
        self._dir = Path(state_dir)
        self._path = self._dir / name
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock or raise CheckpointError saying who holds it."""
        if self._fd is not None:
            return
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise CheckpointError(
                f"state_dir {self._dir}: cannot create lock: {_why(exc)}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _read_pid(fd)
            os.close(fd)
            if exc.errno in (errno.EWOULDBLOCK, errno.EACCES):
                who = f" (pid {holder})" if holder else ""
                raise CheckpointError(
                    f"state_dir {self._dir} is in use by another llmtail{who}; "
                    "give each agent its own state_dir"
                ) from None
            raise CheckpointError(f"state_dir {self._dir}: cannot lock: {_why(exc)}") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Idempotent; the lock file stays (removing it would race with a new holder)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _encode(pos: SavedPosition) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "key": pos.key,
        "path": pos.path,
        "offset": pos.offset,
        "identity": pos.identity,
    }
    if pos.marker is not None:
        entry["marker"] = pos.marker
    return entry


def _decode_position(item: Any) -> SavedPosition | None:
    if not isinstance(item, dict):
        return None
    key, path, offset, identity = (item.get(k) for k in ("key", "path", "offset", "identity"))
    if not (isinstance(key, str) and isinstance(path, str)):
        return None
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return None
    if not isinstance(identity, dict) or not all(
        isinstance(v, str | int) and not isinstance(v, bool) for v in identity.values()
    ):
        return None
    marker = item.get("marker")
    if marker is not None and not isinstance(marker, str):
        return None
    return SavedPosition(key, path, offset, dict(identity), marker)


def _copy(pos: SavedPosition) -> SavedPosition:
    return SavedPosition(pos.key, pos.path, pos.offset, dict(pos.identity), pos.marker)


def _read_pid(fd: int) -> str:
    try:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""


def _why(exc: OSError) -> str:
    return exc.strerror or str(exc)
