"""The file side of tailing: which files exist, who they are, and their next bytes.

The watcher owns discovery and one `Tailer` per file identity. Its layer ends at bytes: the
caller (the reading loop) turns chunks into records and decides when offsets are committed.

The contract with the reading loop (calls, notices and their ordering) is in
agent/reading/notices.py.

Where reading starts:
- A key in `positions` (the checkpoint) resumes at its offset when a file with the same device,
  inode and head is found, under any discovered path, or next to its saved path at startup (a
  file rotated while the agent was down, read to its end, then released). When the device
  number changed (remount, new container), a complete head (HEAD_BYTES) alone matches. A file
  that shrank below its checkpoint gets `Opened(offset=0)` then `Truncated`.
- `start_at` (`end` | `beginning`) applies only to files present at the first scan of a first
  start (no checkpoint at all); `end` starts after the last complete line. Every file seen
  later, or on a restart with a checkpoint, is new and read from 0.

Rotation: a file whose path no longer leads to it (renamed out of the globs, deleted) keeps
being read through its fd; it is released once read to its end and quiet for `rotate_wait`
seconds after both its last growth and the moment it was seen gone (Fluent Bit's rotate_wait:
some writers finish a buffered write after the rename). A deleted file held open longer than
`deleted_open_warning` is logged once as pinning disk space. A file created and renamed out of
the globs before any rescan saw it is read to its end too, from the rename watchdog reports
(`Discovery.moves`); one created and deleted in between is never read.

Offset markers: a checkpoint may carry the hash of the bytes just before its offset
(`marker(key, offset)` gives it); a file resumed whose bytes there differ was truncated and
rewritten while the agent was down, and is read from 0 (`Truncated`), as is a followed file
whose marker no longer holds (see agent/tailer.py).

Open fds: the watcher never passes the ceiling of agent/reading/fdbudget.py and goes back to
its target after each poll, by suspending idle files and parking draining ones
(agent/reading/parking.py). A parked file deleted before it was reopened is lost past its
offset, and that is logged.
"""

from __future__ import annotations

import logging
import os
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from llmtail.agent.config import InputConfig, TailConfig
from llmtail.agent.reading.discovery import Discovery, Found, Moved
from llmtail.agent.reading.fdbudget import FdBudget
from llmtail.agent.reading.fingerprint import (
    HEAD_BYTES,
    FileIdentity,
    head_hash,
    mint_key,
)
from llmtail.agent.reading.locate import (
    after_last_newline,
    directories_of,
    inodes_in,
    leads_to,
    marker_holds,
)
from llmtail.agent.reading.notices import (
    Chunk,
    FileStatus,
    Notice,
    Opened,
    Released,
    Resume,
    Rotated,
    Truncated,
    rekey,
)
from llmtail.agent.reading.parking import FdKeeper, open_count
from llmtail.agent.reading.readbuffer import TurnBuffer
from llmtail.agent.reading.tailer import Change, OpenedFile, Tailer, open_file

_log = logging.getLogger(__name__)

MAX_CHUNK = 1 << 20
"""Largest single chunk: bounds the memory one read can take."""

_MIN_SHARE = 16 * 1024  # a fair share smaller than this costs more in syscalls than it buys
_RECENT_KEYS = 10_000  # released keys remembered so a reused inode gets a distinct key


class Watcher:
    """Discovery plus one tailer per file identity; see the module docstring for the contract."""

    def __init__(
        self,
        inputs: Sequence[InputConfig],
        positions: Mapping[str, Resume],
        tail: TailConfig,
        *,
        first_start: bool,
        rotate_wait: float = 5.0,
        max_open: int = 256,
        watch: bool = True,
        fds: FdBudget | None = None,
    ) -> None:
        self._inputs = list(inputs)
        self._tail = tail
        self._first_start = first_start
        self._rotate_wait = rotate_wait
        self._fds = fds or FdBudget.for_process(max_open)
        self._keeper = FdKeeper(self._fds)
        self._ceiling = self._fds.ceiling(0)  # counted once per poll: opens check against it
        self._discovery = Discovery(self._inputs, tail.rescan_interval, watch=watch)
        self._tailers: dict[str, Tailer] = {}
        self._by_inode: dict[tuple[int, int], str] = {}
        self._followed: set[str] = set()
        self._gone_at: dict[str, float] = {}  # key -> when its path stopped leading to it
        self._restore: dict[str, Resume] = {
            key: Resume(r.path, max(r.offset, 0), rekey(r.identity, key), r.marker)
            for key, r in positions.items()
        }
        self._released: OrderedDict[str, None] = OrderedDict()
        self._notices: list[Notice] = []
        self._scanned = False
        self._rr = 0
        self._unreadable: set[str] = set()
        self._buffer = TurnBuffer(MAX_CHUNK)  # a turn's reads: no fresh pages per read

    # -- the contract -------------------------------------------------------------------

    def poll(self, now: float, budget_bytes: int) -> list[Chunk]:
        """Rescan if due, check every file, release drained ones, read up to `budget_bytes`."""
        self._ceiling = self._fds.ceiling(self._open_count())
        if self._discovery.due(now):
            self._rescan(now)
        backlog = self._refresh(now)
        self._release_drained(now)
        if budget_bytes > 0:
            backlog += self._unpark(now)
        chunks = self._read(budget_bytes, backlog)
        self._bound_open_files()
        return chunks

    def notices(self) -> list[Notice]:
        """Lifecycle notices since the last call, oldest first."""
        out, self._notices = self._notices, []
        return out

    def idle_since(self, key: str) -> float | None:
        """When the file last grew, if it is fully read; None while bytes are unread."""
        t = self._tailers.get(key)
        if t is None or t.behind > 0:
            return None
        return t.changed_at

    def files(self) -> list[FileStatus]:
        return [
            FileStatus(
                key=t.key,
                path=t.path,
                offset=t.offset,
                size=t.size,
                behind=t.behind,
                followed=t.key in self._followed,
                deleted_since=t.deleted_since,
                identity=t.identity,
                input_index=t.input_index,
                open=not t.closed,
            )
            for t in self._tailers.values()
        ]

    def marker(self, key: str, offset: int) -> str | None:
        """The offset marker to checkpoint with `offset` of `key` (None: none known)."""
        t = self._tailers.get(key)
        return None if t is None else t.marker_at(offset)

    def wait_changed(self, timeout: float) -> bool:
        """Block until watchdog reports a change in a watched directory, or `timeout`."""
        return self._discovery.wait_changed(timeout)

    def close(self) -> None:
        self._discovery.close()
        for t in self._tailers.values():
            t.close()

    # -- discovery -----------------------------------------------------------------------

    def _rescan(self, now: float) -> None:
        found = self._discovery.scan(now)
        initial = not self._scanned
        self._scanned = True
        seen: dict[tuple[int, int], Found] = {}
        for f in found:
            try:
                st = os.stat(f.path)
            except OSError:
                continue  # vanished since the glob: the next scan will tell
            seen.setdefault((st.st_dev, st.st_ino), f)
        self._match_known(seen, now)
        self._open_new(list(seen.values()), now, initial)
        self._follow_moves(self._discovery.moves(), now)
        if initial:
            self._find_rotated_while_down(now)

    def _match_known(self, seen: dict[tuple[int, int], Found], now: float) -> None:
        """Follow known files to their current path, or mark them gone (they drain)."""
        for key, t in self._tailers.items():
            f = seen.pop((t.identity.dev, t.identity.ino), None)
            if f is not None:
                if f.path != t.path and not leads_to(t.path, t.identity):
                    self._notices.append(Rotated(key, t.path, f.path))
                    t.path = f.path
                self._followed.add(key)
                self._gone_at.pop(key, None)
            elif key in self._followed and not leads_to(t.path, t.identity):
                # A glob hiccup (NFS, permissions) must not orphan a file its path still shows.
                self._followed.discard(key)
                self._gone_at[key] = now
                self._notices.append(Rotated(key, t.path, None))
                if t.closed:
                    # Suspended: its size is as last seen, and it may have grown before it was
                    # renamed. Parked, it is found by its inode and looked at before release.
                    t.park()

    def _open_new(self, found: list[Found], now: float, initial: bool) -> None:
        unclaimed: list[tuple[Found, OpenedFile]] = []
        for f in found:
            opened = self._open(f.path)
            if opened is None:
                continue
            if (opened.dev, opened.ino) in self._by_inode:  # raced with a rename: next scan
                opened.close()
                continue
            key = self._claim(opened, by_inode=True, late=not initial)
            if key is not None:
                self._resume(key, opened, f.path, f.input_index, now, followed=True)
            else:
                unclaimed.append((f, opened))
        # Head-only matching comes second so that a file's own inode always wins over a copy.
        for f, opened in unclaimed:
            key = self._claim(opened, by_inode=False, late=not initial)
            if key is not None:
                self._resume(key, opened, f.path, f.input_index, now, followed=True)
                continue
            key = mint_key(opened.dev, opened.ino, _TakenKeys(self))
            identity = FileIdentity.of(key, opened.dev, opened.ino, opened.head)
            start_at = self._inputs[f.input_index].start_at
            offset = 0
            if initial and self._first_start and start_at == "end":
                offset = after_last_newline(opened)
            self._start(
                Tailer(opened, identity, f.path, offset=offset, input_index=f.input_index, now=now)
            )

    def _follow_moves(self, moves: list[Moved], now: float) -> None:
        """Files renamed out of the globs that no scan saw under their old name: drain them."""
        for move in moves:
            opened = self._open(move.dest)
            if opened is None:
                continue  # renamed again or deleted already: nothing left to read
            if (opened.dev, opened.ino) in self._by_inode:
                opened.close()  # known: its rotation was followed by the scan
                continue
            key = mint_key(opened.dev, opened.ino, _TakenKeys(self))
            identity = FileIdentity.of(key, opened.dev, opened.ino, opened.head)
            _log.info(
                "%s was renamed to %s before a scan saw it; reading it to its end",
                move.src,
                move.dest,
            )
            t = Tailer(opened, identity, move.dest, offset=0, input_index=move.input_index, now=now)
            self._start(t, followed=False, now=now)

    def _find_rotated_while_down(self, now: float) -> None:
        """Checkpointed files not found by the globs: look next to where they were."""
        listings: dict[str, dict[tuple[int, int], str]] = {}
        for key, r in list(self._restore.items()):
            inode = (r.identity.dev, r.identity.ino)
            for directory in directories_of(r.path):
                if directory not in listings:
                    listings[directory] = inodes_in(directory)
                candidate = listings[directory].get(inode)
                if candidate is None or inode in self._by_inode:
                    continue
                opened = self._open(candidate)
                if opened is None or not r.identity.matches_head(opened.head):
                    if opened is not None:
                        opened.close()
                    continue
                del self._restore[key]
                if candidate == r.path:  # still there: the inputs changed (a reload)
                    _log.info(
                        "%s is no longer matched by the inputs; reading it to its end", r.path
                    )
                else:
                    _log.info(
                        "%s was renamed to %s since its checkpoint; reading it to its end",
                        r.path,
                        candidate,
                    )
                index = self._discovery.input_for(r.path)
                self._resume(key, opened, candidate, index, now, followed=False, resume=r)
                break
            else:
                # Kept in _restore: if it shows up later (a late mount), it resumes, not restarts.
                _log.warning(
                    "%s (checkpointed at offset %d) is gone: rotated away or deleted while the "
                    "agent was stopped; anything written after that offset was not read",
                    r.path,
                    r.offset,
                )
                self._notices.append(Released(key, r.path, r.offset))

    def _claim(self, opened: OpenedFile, *, by_inode: bool, late: bool) -> str | None:
        """The checkpoint key this file resumes, if any.

        After the first scan, a checkpoint entry still unclaimed most likely belonged to a file
        deleted while the agent was down; only a complete head may claim it then, because a
        short head could match a new file that got the freed inode and skip its first bytes.
        """
        full = len(opened.head) >= HEAD_BYTES
        digest = head_hash(opened.head[:HEAD_BYTES]) if full else ""
        for key, r in self._restore.items():
            ident = r.identity
            if late and not ident.complete:
                continue
            if by_inode:
                hit = ident.same_inode(opened.dev, opened.ino) and ident.matches_head(opened.head)
            else:  # the device number changed (remount, new container): a full head must match
                hit = full and ident.complete and ident.head_hash == digest
            if hit:
                return key
        return None

    def _resume(
        self,
        key: str,
        opened: OpenedFile,
        path: str,
        input_index: int,
        now: float,
        *,
        followed: bool,
        resume: Resume | None = None,
    ) -> None:
        r = resume or self._restore.pop(key)
        self._released.pop(key, None)
        identity = FileIdentity.of(key, opened.dev, opened.ino, opened.head)
        offset = r.offset
        truncated = opened.size < offset or not marker_holds(opened, offset, r.marker)
        if truncated:
            offset = 0
        t = Tailer(opened, identity, path, offset=offset, input_index=input_index, now=now)
        self._start(t, followed=followed, now=now)
        if truncated:
            # Opened(0) then Truncated: the reading loop drops what it held for the old bytes.
            self._notices.append(Truncated(key, path))

    def _start(self, t: Tailer, *, followed: bool = True, now: float = 0.0) -> None:
        self._tailers[t.key] = t
        self._by_inode[(t.identity.dev, t.identity.ino)] = t.key
        if followed:
            self._followed.add(t.key)
        else:
            self._gone_at[t.key] = now
        self._notices.append(Opened(t.key, t.path, t.offset, t.input_index))

    def _open(self, path: str) -> OpenedFile | None:
        if not self._make_room():
            return None  # every fd is held by files that cannot let go; the next scan retries
        try:
            opened = open_file(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if path not in self._unreadable:
                self._unreadable.add(path)
                _log.warning("cannot read %s: %s", path, exc.strerror or exc)
            return None
        self._unreadable.discard(path)
        return opened

    def key_in_use(self, key: str) -> bool:
        """Is `key` live, checkpointed or recently released (so a new file must not take it)?"""
        return key in self._tailers or key in self._restore or key in self._released

    # -- per poll ------------------------------------------------------------------------

    def _refresh(self, now: float) -> list[Tailer]:
        """fstat every file (the only per-file cost of an idle poll); returns those behind."""
        backlog: list[Tailer] = []
        own = self._open_count()
        for key, t in list(self._tailers.items()):
            was_closed = t.closed
            try:
                change = t.refresh(now, may_open=own < self._ceiling)
            except OSError as exc:  # ESTALE on NFS, EIO: the file is lost to us
                _log.warning("%s: %s; letting it go at offset %d", t.path, exc, t.offset)
                self._release(key)
                continue
            if was_closed and not t.closed:
                own += 1
            if not self._after_change(key, t, change):
                continue
            if t.deleted_since is not None:
                self._warn_pinned(t, now)
            if t.size > t.offset and not t.closed:
                backlog.append(t)
        return backlog

    def _after_change(self, key: str, t: Tailer, change: Change) -> bool:
        """Act on what a refresh or reopen saw; False when the file was let go."""
        if change is Change.REPLACED:
            _log.info("%s now holds another file; it will be read as a new one", t.path)
            self._release(key)
            self._discovery.request_rescan()
            return False
        if change is Change.TRUNCATED:
            self._notices.append(Truncated(key, t.path))
        return True

    def _open_count(self) -> int:
        return open_count(self._tailers)

    def _warn_pinned(self, t: Tailer, now: float) -> None:
        if t.deleted_since is None or t.deleted_warned:
            return
        if now - t.deleted_since >= self._tail.deleted_open_warning:
            t.deleted_warned = True
            _log.warning(
                "%s was deleted %.0f s ago but is still open (%d bytes unread, size %d): its "
                "disk space stays in use until it is read or the writer closes it",
                t.path,
                now - t.deleted_since,
                t.behind,
                t.size,
            )

    def _bound_open_files(self) -> None:
        self._keeper.bound(self._tailers, self._followed, self._ceiling)

    def _make_room(self) -> bool:
        return self._keeper.make_room(self._tailers, self._followed, self._ceiling)

    def _unpark(self, now: float) -> list[Tailer]:
        return self._keeper.unpark(
            self._tailers, self._followed, self._gone_at, now, self._release, self._after_change
        )

    def _release_drained(self, now: float) -> None:
        for key, gone_at in list(self._gone_at.items()):
            t = self._tailers[key]
            if t.parked:
                continue  # its size is as last seen: a reopen must look first
            quiet_since = max(t.changed_at, gone_at)
            if t.behind == 0 and now - quiet_since >= self._rotate_wait:
                self._release(key)

    def _release(self, key: str) -> None:
        t = self._tailers.pop(key)
        t.close()
        self._by_inode.pop((t.identity.dev, t.identity.ino), None)
        self._followed.discard(key)
        self._gone_at.pop(key, None)
        self._released[key] = None
        while len(self._released) > _RECENT_KEYS:
            self._released.popitem(last=False)
        self._notices.append(Released(key, t.path, t.offset))

    def _read(self, budget: int, backlog: list[Tailer]) -> list[Chunk]:
        """Round-robin fair reads: each file gets an equal share, leftovers go around again."""
        chunks: list[Chunk] = []
        if budget <= 0 or not backlog:
            return chunks
        self._rr = (self._rr + 1) % len(backlog)
        pending = backlog[self._rr :] + backlog[: self._rr]
        # Draining files first: they pin fds (and disk, when deleted) until they are done.
        pending.sort(key=lambda t: t.key in self._followed)
        remaining = budget
        self._buffer.start_turn()
        while remaining > 0 and pending:
            share = max(remaining // len(pending), _MIN_SHARE)
            still: list[Tailer] = []
            for t in pending:
                want = min(share, remaining, t.behind, MAX_CHUNK)
                if want <= 0:
                    break
                offset = t.offset
                try:
                    data = t.read(want, self._buffer)
                except OSError as exc:
                    _log.warning("%s: read failed at offset %d: %s", t.path, offset, exc)
                    continue
                if not data:
                    t.size = t.offset  # shrank under us; the next refresh decides
                    continue
                chunks.append(Chunk(t.key, t.path, offset, data))
                remaining -= len(data)
                if t.behind > 0:
                    still.append(t)
            pending = still
        return chunks


class _TakenKeys:
    """The keys a new file must not get, as a container for mint_key."""

    def __init__(self, watcher: Watcher) -> None:
        self._watcher = watcher

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._watcher.key_in_use(key)
