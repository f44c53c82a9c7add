"""Which paths to tail: globs minus excludes, rescanned periodically and when a directory changes.

Discovery knows nothing about reading or identity; it answers "which paths match now". It is
asked to rescan when `due(now)`: every `rescan_interval` seconds (NFS has no inotify events and
inotify queues overflow) and as soon as watchdog reports a file created, moved or deleted in a
watched directory. Watchdog events only set a flag; the glob is the truth, so a lost or
duplicated event costs at most one rescan interval of latency and never wrong state.

Rules users rely on:
- `paths` are globs (`**` included, matching any depth); `~` is expanded; relative globs are
  resolved against the working directory.
- `exclude` patterns are matched with fnmatch against the full absolute path (`*` also
  matches `/`, so `*.gz` or `*/archive/*` work as expected). A relative exclude is also
  resolved against the working directory, as relative `paths` are, so `./samples/*-gbk.log`
  excludes what `./samples/*.log` finds.
- Compressed files (`.gz`, `.zip`, ...) are never tailed: they are what a rotation compresses
  away, and reading them as text would ship garbage (backfill reads `.gz`).
- Directories that do not exist yet are fine: they are watched once a rescan finds them.
- A path matched by several inputs belongs to the first one; that is logged once per path,
  naming both inputs, since it is usually a missing exclude (the file is read with the first
  input's encoding).
- A file renamed within a watched directory is reported as a `Moved` (source and destination)
  when its old name matched an input and its new one matches none: the watcher reads such a
  file to its end even when no scan ever saw it under its old name (created and rotated away
  within one loop turn).
"""

from __future__ import annotations

import contextlib
import fnmatch
import glob
import logging
import os
import stat
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from llmtail.agent.config import InputConfig

_log = logging.getLogger(__name__)

COMPRESSED_SUFFIXES = (".gz", ".zip", ".bz2", ".xz", ".zst", ".lz4", ".7z")

# Only changes to the set of names matter; writes (modified/closed) must not wake anything.
_EVENT_TYPES: list[type[FileSystemEvent]] = [
    FileCreatedEvent,
    FileDeletedEvent,
    FileMovedEvent,
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
]


@dataclass(frozen=True, slots=True)
class Found:
    """A path that matches an input now; `input_index` points into the inputs list."""

    path: str
    input_index: int


@dataclass(frozen=True, slots=True)
class Moved:
    """A file renamed from a path an input matches (`src`) to one no input matches (`dest`)."""

    src: str
    dest: str
    input_index: int


_MAX_MOVES = 10_000  # renames remembered between two scans; beyond, the oldest are dropped


@dataclass(frozen=True, slots=True)
class _Pattern:
    glob: str
    base: str  # the deepest directory without wildcards: what is watched
    recursive: bool  # wildcards below `base` span directories


class _Wakeup(FileSystemEventHandler):
    """Turns any watched-directory change into a 'rescan soon' flag; keeps file renames.

    `received` counts the events delivered here (they arrive in order), so a test can tell
    which events were seen without waiting for ones that should never come."""

    def __init__(self, flag: threading.Event, moves: deque[tuple[str, str]]) -> None:
        self._flag = flag
        self._moves = moves
        self.received = 0

    def on_any_event(self, event: FileSystemEvent) -> None:
        if isinstance(event, FileMovedEvent):
            self._moves.append((_text(event.src_path), _text(event.dest_path)))
        self.received += 1
        self._flag.set()


class Discovery:
    """Expands the inputs' globs into paths; `close()` stops the directory observer."""

    def __init__(
        self, inputs: Sequence[InputConfig], rescan_interval: float, *, watch: bool = True
    ) -> None:
        self._inputs = list(inputs)
        self._patterns = [[_compile(p) for p in spec.paths] for spec in self._inputs]
        self._excludes = [_excludes(spec.exclude) for spec in self._inputs]
        self._interval = rescan_interval
        self._next_scan: float | None = None
        self._changed = threading.Event()
        self._watch = watch
        self._observer: BaseObserver | None = None
        self._watches: dict[str, tuple[ObservedWatch, int]] = {}  # base -> (watch, dir inode)
        self._explained: set[str] = set()  # base directories already logged about
        self._claimed_twice: set[str] = set()  # paths already logged as matched by two inputs
        self._moves: deque[tuple[str, str]] = deque(maxlen=_MAX_MOVES)
        self._handler = _Wakeup(self._changed, self._moves)  # one for every watched directory
        self._closed = False

    def due(self, now: float) -> bool:
        """True when a rescan is needed: the interval passed or a watched directory changed."""
        return self._next_scan is None or now >= self._next_scan or self._changed.is_set()

    def request_rescan(self) -> None:
        """Make the next `due()` true, e.g. when a known file turned out to be replaced."""
        self._changed.set()

    def wait_changed(self, timeout: float) -> bool:
        """Block until a watched directory changed (or `timeout`); True if it did."""
        return self._changed.wait(timeout)

    @property
    def events_received(self) -> int:
        """Directory events delivered so far (filtered ones never are), for tests and status."""
        return self._handler.received

    def moves(self) -> list[Moved]:
        """Renames out of the inputs since the last call (see the module docstring)."""
        out: list[Moved] = []
        while self._moves:
            src, dest = self._moves.popleft()
            index = self._input_of(src)
            if dest.endswith(COMPRESSED_SUFFIXES):
                continue  # renamed to be compressed, or compressed already: never tailed
            if index is not None and self._input_of(dest) is None:
                out.append(Moved(src, dest, index))
        return out

    def scan(self, now: float) -> list[Found]:
        """The paths matching now, each once, in a stable order."""
        self._changed.clear()
        self._next_scan = now + self._interval
        found: dict[str, int] = {}
        for index, patterns in enumerate(self._patterns):
            for pattern in patterns:
                paths = _expand(pattern.glob)
                if paths:
                    self._explained.discard(pattern.base)
                else:
                    self._explain_nothing(pattern.base)
                for path in paths:
                    if self._excluded(index, path):
                        continue
                    if path in found:
                        self._claimed_by_two(path, found[path], index)
                        continue
                    found[path] = index
        self._update_watches()
        return [Found(path, index) for path, index in sorted(found.items())]

    def input_for(self, path: str) -> int:
        """The input a (possibly vanished) path belongs to; the first one when none matches."""
        index = self._input_of(path)
        return 0 if index is None else index

    def _input_of(self, path: str) -> int | None:
        for index, patterns in enumerate(self._patterns):
            matched = any(fnmatch.fnmatchcase(path, p.glob) for p in patterns)
            if matched and not self._excluded(index, path):
                return index
        return None

    def _claimed_by_two(self, path: str, first: int, second: int) -> None:
        if first == second or path in self._claimed_twice:
            return
        self._claimed_twice.add(path)
        _log.warning(
            "%s matches inputs %d (%s) and %d (%s); it is read by input %d only (add it to "
            "the exclude of the one that should not read it)",
            path,
            first + 1,
            ", ".join(self._inputs[first].paths),
            second + 1,
            ", ".join(self._inputs[second].paths),
            first + 1,
        )

    def close(self) -> None:
        """Stop watching directories; scanning still works (by interval only)."""
        self._closed = True
        if self._observer is not None:
            self._observer.stop()
            self._observer.join(timeout=5)
            self._observer = None
        self._watches.clear()

    def _excluded(self, index: int, path: str) -> bool:
        if path.endswith(COMPRESSED_SUFFIXES):
            return True
        return any(fnmatch.fnmatchcase(path, x) for x in self._excludes[index])

    def _explain_nothing(self, base: str) -> None:
        """A glob matched nothing: say once if that is because its directory is missing or
        unreadable (glob itself stays silent about both)."""
        if base in self._explained:
            return
        if _dir_inode(base) is None:
            _log.info("%s does not exist yet; it will be picked up when it does", base)
        elif not os.access(base, os.R_OK | os.X_OK):
            _log.warning("cannot list %s: permission denied; its files cannot be read", base)
        else:
            return  # an empty directory: nothing to say
        self._explained.add(base)

    def _update_watches(self) -> None:
        """Watch each pattern's base directory once it exists; re-watch a re-created one."""
        if not self._watch or self._closed:
            return
        wanted: dict[str, bool] = {}
        for patterns in self._patterns:
            for p in patterns:
                wanted[p.base] = wanted.get(p.base, False) or p.recursive
        for base, recursive in wanted.items():
            inode = _dir_inode(base)
            current = self._watches.get(base)
            if current is not None and current[1] == inode:
                continue
            if current is not None:  # deleted or replaced: its inotify watch is dead
                self._unschedule(current[0])
                del self._watches[base]
            if inode is not None:
                self._schedule(base, recursive, inode)

    def _schedule(self, base: str, recursive: bool, inode: int) -> None:
        if self._observer is None:
            self._observer = Observer()
            self._observer.daemon = True
            self._observer.start()
        try:
            watch = self._observer.schedule(
                self._handler, base, recursive=recursive, event_filter=_EVENT_TYPES
            )
        except OSError as exc:
            # Out of inotify watches, permission denied: the periodic rescan still works.
            _log.warning("cannot watch %s (%s); relying on the periodic rescan", base, exc)
            return
        self._watches[base] = (watch, inode)

    def _unschedule(self, watch: ObservedWatch) -> None:
        if self._observer is None:
            return
        with contextlib.suppress(KeyError, OSError):  # already gone with its directory
            self._observer.unschedule(watch)


def _excludes(patterns: Sequence[str]) -> list[str]:
    """Each exclude as written (`*.gz` matches anywhere) and, when relative, also resolved
    against the working directory the way relative `paths` are (`./samples/*-gbk.log`)."""
    out: list[str] = []
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        out.append(expanded)
        if not os.path.isabs(expanded):
            out.append(os.path.abspath(expanded))
    return out


def _text(path: bytes | str) -> str:
    return os.fsdecode(path)


def _compile(pattern: str) -> _Pattern:
    path = os.path.abspath(os.path.expanduser(pattern))
    parts = path.split(os.sep)
    base_parts: list[str] = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        base_parts.append(part)
    base = os.sep.join(base_parts) or os.sep
    # Wildcards in a directory component (or **) mean names appear below `base`, not just in it.
    recursive = len(base_parts) < len(parts) - 1
    return _Pattern(glob=path, base=base, recursive=recursive)


def _expand(pattern: str) -> list[str]:
    """Regular files (symlinks followed) matching one absolute glob."""
    result = []
    for path in glob.glob(pattern, recursive=True):
        try:
            if stat.S_ISREG(os.stat(path).st_mode):
                result.append(path)
        except OSError:
            continue  # vanished or dangling symlink: not a file to tail right now
    return result


def _dir_inode(path: str) -> int | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_ino if stat.S_ISDIR(st.st_mode) else None
