"""One file identity's bytes: read through its own fd, watch its size, notice truncation.

A tailer never reopens its path: once open, the fd *is* the file, so a rename or unlink does not
change what is read (that is how a rotated or deleted file is read to its end). Which path a file
is under, and when it is let go, is the watcher's business.

Truncation is detected three ways: the size dropped below the read offset (copytruncate), the
head no longer matches the identity (truncated and rewritten between two polls), or the offset
marker no longer matches: the up to MARKER_BYTES bytes just before the read offset are kept
from the last read and compared when the file changed (Fluent Bit's offset marker). The marker
catches a file truncated to a non-zero size and appended past its old size before the next
poll, which keeps its head and grows, so neither of the first two sees it. Either way reading
restarts at 0 (what was already read is sent again: duplicates, never loss); the bytes written
between logrotate's copy and its truncate are lost, as with every agent.

Without an fd: `suspend` (a followed, fully read, idle file: its path is stat'ed each refresh
and it reopens itself when it changes) and `park` (a file with unread bytes kept without an fd
when fds run short: no syscall at all until the watcher `reopen`s it). A reopen verifies the
inode, the head and the marker before a byte is read.

Cost: one fstat per `refresh`; a head and a marker read (via pread) only when the file changed
or has unread bytes, so an idle, fully read file costs one syscall per poll.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass

from llmtail.agent.reading.fingerprint import (
    HEAD_BYTES,
    MARKER_BYTES,
    FileIdentity,
    marker_hash,
    read_head,
    read_marker,
)
from llmtail.agent.reading.readbuffer import ChunkData, TurnBuffer


class Change(enum.Enum):
    """What `refresh` saw."""

    UNCHANGED = "unchanged"
    MODIFIED = "modified"
    TRUNCATED = "truncated"
    REPLACED = "replaced"  # a suspended file's path now holds other content: not ours any more


@dataclass(slots=True)
class OpenedFile:
    """A file just opened by path, before anyone decided who it is."""

    fd: int
    dev: int
    ino: int
    size: int
    mtime_ns: int
    head: bytes

    def close(self) -> None:
        os.close(self.fd)


def open_file(path: str) -> OpenedFile:
    """Open a regular file for reading (symlinks followed); OSError when it cannot be.

    The identity comes from fstat of the fd, not from a stat of the path, so a rename between
    stat and open cannot pair one file's inode with another file's bytes.
    """
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise IsADirectoryError(f"{path}: not a regular file")
        return OpenedFile(fd, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, read_head(fd))
    except BaseException:
        os.close(fd)
        raise


class Tailer:
    """Reads one file identity from `offset` on; knows nothing about lines or records."""

    def __init__(
        self,
        opened: OpenedFile,
        identity: FileIdentity,
        path: str,
        *,
        offset: int,
        input_index: int,
        now: float,
    ) -> None:
        self._fd: int | None = opened.fd
        self.identity = identity
        self.path = path
        self.offset = offset
        self.size = opened.size
        self._mtime_ns = opened.mtime_ns
        self.input_index = input_index
        self.changed_at = now  # last time the size was seen to change
        self.deleted_since: float | None = None  # first seen with no links left
        self.deleted_warned = False
        self.parked = False  # fd closed to spare fds while bytes are unread; see `park`
        # The bytes just before `offset`: what the file must still hold there to be read on.
        self._marker = read_marker(opened.fd, offset) if offset > 0 else b""
        self._saved_marker: tuple[int, str | None] = (-1, None)  # (offset, hash) last asked

    @property
    def key(self) -> str:
        return self.identity.key

    @property
    def behind(self) -> int:
        return max(self.size - self.offset, 0)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def refresh(self, now: float, *, may_open: bool = True) -> Change:
        """fstat the fd; on growth check the head and the marker; on truncation restart at 0.

        A suspended file is reopened only when it changed and `may_open`; a parked one is
        left alone (the watcher reopens it when an fd is free)."""
        if self._fd is None:
            if self.parked or not may_open:
                return Change.UNCHANGED
            reopened = self._reopen_if_changed()
            if reopened is not Change.MODIFIED:
                return reopened
        assert self._fd is not None
        st = os.fstat(self._fd)
        if st.st_nlink == 0 and self.deleted_since is None:
            self.deleted_since = now
        modified = st.st_size != self.size or st.st_mtime_ns != self._mtime_ns
        if modified:
            self.changed_at = now
            self.size = st.st_size
            self._mtime_ns = st.st_mtime_ns
        elif self.offset >= self.size:
            return Change.UNCHANGED  # the idle case: one fstat, nothing else
        # Unread bytes are only worth reading if the head is still ours: a file truncated and
        # rewritten to the same size or larger is caught here, before a byte of it is read.
        head = read_head(self._fd, HEAD_BYTES)
        if (
            st.st_size < self.offset
            or not self.identity.matches_head(head)
            or (modified and not self._marker_holds(self._fd))
        ):
            self._restart(FileIdentity.of(self.key, st.st_dev, st.st_ino, head))
            return Change.TRUNCATED
        if not self.identity.complete:
            self.identity = self.identity.grown(head)
        return Change.MODIFIED if modified else Change.UNCHANGED

    def suspend(self) -> None:
        """Close the fd of a fully read, idle file to bound open fds; it is watched by path."""
        self.close()

    def linked(self) -> bool:
        """Does the open file still have a name (so that closing its fd loses nothing)?"""
        if self._fd is None:
            return True
        try:
            return os.fstat(self._fd).st_nlink > 0
        except OSError:
            return False

    def park(self) -> None:
        """Close the fd of a file with unread bytes, to spare fds; `reopen` continues it.

        Nothing is lost while the file keeps a name: it is found again by its inode. A file
        deleted while parked cannot be reopened, so the watcher never parks a deleted one.
        Its size is as last seen: only a reopen tells whether it grew, so a parked file is never
        let go before it was reopened (`reopen`)."""
        self.close()
        self.parked = True

    def reopen(self, path: str, now: float) -> Change:
        """Reopen a parked file under `path` (its name now), verified before it is read.

        MODIFIED: it is this file and reading goes on from `offset`; TRUNCATED: it is this
        file but rewritten before `offset` (reading restarts at 0); REPLACED: `path` holds
        another file (ours is gone). OSError when it cannot be opened at all."""
        opened = open_file(path)
        if not self.identity.same_inode(opened.dev, opened.ino):
            opened.close()
            return Change.REPLACED
        if not self.identity.matches_head(opened.head):
            opened.close()
            return Change.REPLACED  # the inode was freed and reused: our file is gone
        self._fd = opened.fd
        self.parked = False
        self.path = path
        if opened.size != self.size or opened.mtime_ns != self._mtime_ns:
            self.changed_at = now
        self.size, self._mtime_ns = opened.size, opened.mtime_ns
        if opened.size < self.offset or not self._marker_holds(opened.fd):
            self._restart(FileIdentity.of(self.key, opened.dev, opened.ino, opened.head))
            return Change.TRUNCATED
        return Change.MODIFIED

    def marker_at(self, offset: int) -> str | None:
        """The checkpoint marker for `offset` (the hash of the bytes just before it).

        None when it cannot be known (offset 0 needs none; a closed file other than at its
        read offset). One pread per new offset: the last answer is remembered."""
        if offset <= 0:
            return None
        if self._saved_marker[0] == offset:
            return self._saved_marker[1]
        marker: str | None = None
        if offset == self.offset:
            marker = marker_hash(self._marker)
        elif self._fd is not None and offset < self.offset:
            try:
                marker = marker_hash(read_marker(self._fd, offset))
            except OSError:
                marker = None
        self._saved_marker = (offset, marker)
        return marker

    def _marker_holds(self, fd: int) -> bool:
        return self.offset == 0 or read_marker(fd, self.offset) == self._marker

    def _restart(self, identity: FileIdentity) -> None:
        self.offset = 0
        self._marker = b""
        self._saved_marker = (-1, None)
        self.identity = identity

    def _reopen_if_changed(self) -> Change:
        """A suspended file: stat its path; reopen it when it changed and is still this file.

        Without the fd the inode may have been freed and reused, so a head that no longer
        matches means another file (REPLACED), not a truncation of this one.
        """
        try:
            st = os.stat(self.path)
        except OSError:
            return Change.UNCHANGED  # gone from its path: the next rescan decides
        if not self.identity.same_inode(st.st_dev, st.st_ino):
            return Change.UNCHANGED
        if st.st_size == self.size and st.st_mtime_ns == self._mtime_ns:
            return Change.UNCHANGED
        opened = open_file(self.path)
        if not self.identity.same_inode(opened.dev, opened.ino):
            opened.close()  # renamed between stat and open: the next rescan decides
            return Change.UNCHANGED
        if opened.size < self.offset or not self.identity.matches_head(opened.head):
            opened.close()
            return Change.REPLACED
        self._fd = opened.fd
        return Change.MODIFIED

    def read(self, max_bytes: int, into: TurnBuffer | None = None) -> ChunkData:
        """Up to `max_bytes` from `offset` (which advances), read into the turn's buffer (into
        bytes of their own without one); empty at the end of the file. The marker is a copy:
        the buffer is read into again later."""
        if self._fd is None or max_bytes <= 0:
            return b""
        if into is None:
            data: ChunkData = os.pread(self._fd, max_bytes, self.offset)
        else:
            data = into.pread(self._fd, max_bytes, self.offset)
        self.offset += len(data)
        self.size = max(self.size, self.offset)
        if len(data) >= MARKER_BYTES:
            self._marker = bytes(memoryview(data)[-MARKER_BYTES:])
        elif data:
            self._marker = (self._marker + data)[-MARKER_BYTES:]
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
