"""Finding files again by inode next to their last known name, and checking what a checkpoint
says about their bytes: what parking, reopening and restarts need."""

from __future__ import annotations

import errno
import logging
import os
import stat

from llmtail.agent.reading.fingerprint import FileIdentity, marker_hash, read_marker
from llmtail.agent.reading.tailer import OpenedFile, Tailer

_log = logging.getLogger("llmtail.agent.reading.watcher")

_END_LOOKBACK = 64 * 1024  # start_at end: how far back to look for the last newline


def leads_to(path: str, identity: FileIdentity) -> bool:
    """Does `path` still name this file (same device and inode)?"""
    try:
        st = os.stat(path)
    except OSError:
        return False
    return identity.same_inode(st.st_dev, st.st_ino)


class Locator:
    """Finds files by inode next to their last known name; one pass (parking or reopening
    many files) lists each directory once, and again only when a name is not found."""

    def __init__(self) -> None:
        self._listings: dict[str, dict[tuple[int, int], str]] = {}

    def where(self, t: Tailer) -> str | None:
        """The file's current name, or None when it has none left (deleted)."""
        if leads_to(t.path, t.identity):
            return t.path
        inode = (t.identity.dev, t.identity.ino)
        for fresh in (False, True):
            for directory in directories_of(t.path):
                if fresh or directory not in self._listings:
                    self._listings[directory] = inodes_in(directory)
                candidate = self._listings[directory].get(inode)
                if candidate is not None and leads_to(candidate, t.identity):
                    return candidate
        return None


def marker_holds(opened: OpenedFile, offset: int, marker: str | None) -> bool:
    """Does the file still hold, just before `offset`, the bytes a checkpoint's marker hashed?"""
    if marker is None or offset <= 0:
        return True  # an older checkpoint, or nothing to verify
    try:
        return marker_hash(read_marker(opened.fd, offset)) == marker
    except OSError:
        return False


def directories_of(path: str) -> list[str]:
    """Where a rotation of `path` goes: its directory, and its symlink target's."""
    return sorted({os.path.dirname(path), os.path.dirname(os.path.realpath(path))})


def inodes_in(directory: str) -> dict[tuple[int, int], str]:
    """(dev, ino) -> path of the regular files in one directory (symlinks followed)."""
    out: dict[tuple[int, int], str] = {}
    try:
        entries = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTDIR):
            _log.warning("cannot list %s: %s", directory, exc.strerror or exc)
        return out
    for entry in entries:
        try:
            st = entry.stat()
        except OSError:
            continue
        if stat.S_ISREG(st.st_mode):
            out.setdefault((st.st_dev, st.st_ino), entry.path)
    return out


def after_last_newline(opened: OpenedFile) -> int:
    """Where `start_at: end` starts: after the last complete line, so no line is cut in two."""
    start = max(opened.size - _END_LOOKBACK, 0)
    try:
        tail = os.pread(opened.fd, opened.size - start, start)
    except OSError:
        return opened.size
    cut = tail.rfind(b"\n")
    if cut >= 0:
        return start + cut + 1
    return 0 if start == 0 else opened.size  # a lone partial line is read whole
