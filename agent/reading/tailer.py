"""One file identity's bytes: read through its own fd, watch its size, notice truncation.

A tailer never reopens its path: once open, the fd *is* the file, so a rename or unlink does not
change what is read (that is how a rotated or deleted file is read to its end). Which path a file
is under, and when it is let go, is the watcher's business.

Truncation is detected two ways: the size dropped below the read offset (copytruncate), or the
head no longer matches the identity (truncated and rewritten past the offset between two polls).
Either way reading restarts at 0; the bytes written between logrotate's copy and its truncate
are lost, as with every agent.

Cost: one fstat per `refresh`; a head read (at most HEAD_BYTES, via pread) only when the file
changed or has unread bytes, so an idle, fully read file costs one syscall per poll.
"""

from __future__ import annotations

import enum
import os
import stat
from dataclasses import dataclass

from agent.reading.fingerprint import HEAD_BYTES, FileIdentity, read_head


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

    @property
    def key(self) -> str:
        return self.identity.key

    @property
    def behind(self) -> int:
        return max(self.size - self.offset, 0)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def refresh(self, now: float) -> Change:
        """fstat the fd; on growth check the head; on truncation restart at 0."""
        if self._fd is None:
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
        if st.st_size < self.offset or not self.identity.matches_head(head):
            self.offset = 0
            self.identity = FileIdentity.of(self.key, st.st_dev, st.st_ino, head)
            return Change.TRUNCATED
        if not self.identity.complete:
            self.identity = self.identity.grown(head)
        return Change.MODIFIED if modified else Change.UNCHANGED

    def suspend(self) -> None:
        """Close the fd of a fully read, idle file to bound open fds; it is watched by path."""
        self.close()

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

    def read(self, max_bytes: int) -> bytes:
        """Up to `max_bytes` from `offset` (which advances); b"" at the end of the file."""
        if self._fd is None or max_bytes <= 0:
            return b""
        data = os.pread(self._fd, max_bytes, self.offset)
        self.offset += len(data)
        self.size = max(self.size, self.offset)
        return data

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
