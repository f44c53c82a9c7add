"""The watcher with real files: rotation, truncation, deletion, restarts, many files.

A `Reader` plays the reading loop: it applies notices before chunks (the contract), checks that
each key's chunks are contiguous, and keeps what was read per key. The clock is injected; the
only real waiting is where watchdog latency is the thing tested.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from llmtail.agent.config import InputConfig, TailConfig
from llmtail.agent.reading.fdbudget import FdBudget, open_fds
from llmtail.agent.reading.fingerprint import HEAD_BYTES, FileIdentity
from llmtail.agent.reading.notices import Chunk, Opened, Released, Resume, Rotated, Truncated
from llmtail.agent.reading.watcher import Watcher

TAIL = TailConfig(rescan_interval=1.0, deleted_open_warning=30.0)


@dataclass
class Stream:
    """What was read of one key since its last Opened/Truncated."""

    path: str
    start: int
    data: bytearray = field(default_factory=bytearray)
    truncations: int = 0
    released: bool = False

    @property
    def end(self) -> int:
        return self.start + len(self.data)


class Reader:
    """Drives a watcher like the daemon's reading loop does, with an injected clock."""

    def __init__(self, watcher: Watcher, now: float = 1000.0) -> None:
        self.watcher = watcher
        self.now = now
        self.streams: dict[str, Stream] = {}
        self.notices: list[object] = []

    def poll(self, budget: int = 1 << 20, advance: float = 0.25) -> list[Chunk]:
        self.now += advance
        chunks = self.watcher.poll(self.now, budget)
        for n in self.watcher.notices():
            self.notices.append(n)
            if isinstance(n, Opened):
                known = self.streams.get(n.key)
                if known is not None and n.offset == known.end:
                    known.path, known.released = n.path, False  # resumed after a restart
                else:
                    self.streams[n.key] = Stream(n.path, n.offset)
            elif isinstance(n, Truncated):
                s = self.streams[n.key]
                s.start, s.data, s.truncations = 0, bytearray(), s.truncations + 1
            elif isinstance(n, Rotated):
                self.streams[n.key].path = n.new_path or self.streams[n.key].path
            elif isinstance(n, Released) and n.key in self.streams:
                s = self.streams[n.key]
                assert not s.released
                assert n.offset == s.end, "released before its last chunk was delivered"
                s.released = True
        for c in chunks:
            s = self.streams[c.key]
            assert not s.released
            assert c.offset == s.end, "chunks of a key must be contiguous"
            assert c.data
            s.data += c.data
        return chunks

    def settle(self, polls: int = 12, advance: float = 1.0) -> None:
        """Poll until the clock passes rescans and rotate_wait, reading everything."""
        for _ in range(polls):
            self.poll(advance=advance)

    def by_path(self, path: Path | str) -> Stream:
        matches = [s for s in self.streams.values() if s.path == str(path) and not s.released]
        assert len(matches) == 1, f"{path}: {len(matches)} live streams"
        return matches[0]

    def read_of(self, content: bytes) -> list[Stream]:
        return [s for s in self.streams.values() if bytes(s.data) == content]


def watcher(
    paths: list[str],
    positions: dict[str, Resume] | None = None,
    *,
    start_at: str = "beginning",
    exclude: list[str] | None = None,
    first_start: bool = True,
    watch: bool = False,
    tail: TailConfig = TAIL,
    rotate_wait: float = 5.0,
    max_open: int = 256,
) -> Watcher:
    spec = InputConfig(paths=paths, exclude=exclude or [], start_at=start_at)  # type: ignore[arg-type]
    return Watcher(
        [spec],
        positions or {},
        tail,
        first_start=first_start,
        watch=watch,
        rotate_wait=rotate_wait,
        max_open=max_open,
    )


@pytest.fixture
def logs(tmp_path: Path) -> Path:
    d = tmp_path / "logs"
    d.mkdir()
    return d


@pytest.fixture
def closing() -> Iterator[list[Watcher]]:
    made: list[Watcher] = []
    yield made
    for w in made:
        w.close()


def lines(tag: str, start: int, count: int) -> bytes:
    return b"".join(f"{tag} line {i:06d} payload\n".encode() for i in range(start, start + count))


def append(path: Path, data: bytes) -> None:
    with path.open("ab") as f:
        f.write(data)


# -- start positions -------------------------------------------------------------------------


def test_a_file_shorter_than_the_fingerprint_is_read_and_followed(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(b"hi\n")
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll()
    assert bytes(r.by_path(app).data) == b"hi\n"
    append(app, b"there\n" + b"x" * 3000 + b"\n")
    r.poll()
    assert bytes(r.by_path(app).data) == app.read_bytes()
    assert len(r.streams) == 1, "growing past the fingerprint length must not make a new file"


def test_start_at_end_skips_existing_content_but_not_later_files(
    logs: Path, closing: list[Watcher]
) -> None:
    old = logs / "old.log"
    old.write_bytes(lines("old", 0, 100) + b"partial")
    r = Reader(w := watcher([str(logs / "*.log")], start_at="end"))
    closing.append(w)
    r.poll()
    append(old, b" line completed\n")
    new = logs / "new.log"
    new.write_bytes(lines("new", 0, 5))
    r.settle(2)
    # The line in progress at startup is read whole; complete lines before it are skipped.
    assert bytes(r.by_path(old).data) == b"partial line completed\n"
    assert bytes(r.by_path(new).data) == new.read_bytes()


def test_start_at_beginning_reads_existing_content(logs: Path, closing: list[Watcher]) -> None:
    old = logs / "old.log"
    old.write_bytes(lines("old", 0, 100))
    r = Reader(w := watcher([str(logs / "*.log")], start_at="beginning"))
    closing.append(w)
    r.poll()
    assert bytes(r.by_path(old).data) == old.read_bytes()


def test_start_at_end_does_not_apply_when_a_checkpoint_existed(
    logs: Path, closing: list[Watcher]
) -> None:
    # A file that appeared while the agent was down is new: nothing of it was read yet.
    new = logs / "new.log"
    new.write_bytes(lines("new", 0, 10))
    r = Reader(w := watcher([str(logs / "*.log")], start_at="end", first_start=False))
    closing.append(w)
    r.poll()
    assert bytes(r.by_path(new).data) == new.read_bytes()


# -- rotation ----------------------------------------------------------------------------------


def test_rename_rotation_under_continuous_writing_reads_every_byte_once(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    written: list[bytes] = []
    current = bytearray()
    f = app.open("ab")
    n = 0
    for generation in range(6):
        for _ in range(10):
            chunk = lines(f"g{generation}", n, 37)
            n += 37
            f.write(chunk)
            f.flush()
            current += chunk
            r.poll(budget=4096)  # slower than the writer: rotation happens with a backlog
        # Logback: a last write, rename, then the new file; the old one still has unread bytes.
        f.close()
        os.rename(app, logs / f"app.{generation}.log.old")
        written.append(bytes(current))
        current = bytearray()
        f = app.open("ab")
    f.close()
    written.append(bytes(current))
    r.settle(40)
    for content in written:
        if content:
            assert len(r.read_of(content)) == 1, "each generation is read once, whole, in order"
    assert sum(len(s.data) for s in r.streams.values()) == sum(len(c) for c in written)
    released = [s for s in r.streams.values() if s.released]
    assert len(released) == 6, "rotated files are let go once read"
    assert len(w.files()) == 1


def test_rotation_by_a_concurrent_writer_loses_and_repeats_nothing(
    logs: Path, closing: list[Watcher]
) -> None:
    """A real writer thread rotating by rename while the watcher polls on the real clock."""
    app = logs / "app.log"
    generations: list[bytes] = []

    def write() -> None:
        n = 0
        for generation in range(8):
            content = bytearray()
            with app.open("ab") as f:
                for _ in range(300):
                    chunk = lines(f"g{generation}", n, 3)
                    n += 3
                    f.write(chunk)
                    f.flush()
                    content += chunk
                # A file renamed away before any rescan saw it is never read (by any agent);
                # real logs live longer than a rescan, so wait until this one was seen.
                seen_deadline = time.monotonic() + 10.0
                while opened_count() <= generation and time.monotonic() < seen_deadline:
                    time.sleep(0.001)
                os.rename(app, logs / f"app.{generation}.old")
                late = lines(f"g{generation}-late", n, 2)  # a buffered write after the rename
                f.write(late)
                content += late
            generations.append(bytes(content))

    w = watcher([str(logs / "*.log")], tail=TailConfig(rescan_interval=0.05), rotate_wait=0.3)
    closing.append(w)
    r = Reader(w, now=time.monotonic())

    def opened_count() -> int:
        return sum(isinstance(n, Opened) for n in list(r.notices))

    writer = threading.Thread(target=write)
    writer.start()
    deadline = time.monotonic() + 20.0
    while time.monotonic() < deadline:
        r.poll(budget=64 * 1024, advance=time.monotonic() - r.now)
        done = not writer.is_alive() and all(s.released for s in r.streams.values())
        if done and len(r.streams) == len(generations):
            break
        time.sleep(0.005)  # real time is what lets the writer race the watcher here
    writer.join()
    assert len(generations) == 8
    for content in generations:
        assert len(r.read_of(content)) == 1, "every generation read once, whole, in order"
    assert len(r.streams) == 8


def test_rotated_file_stays_followed_when_its_new_name_still_matches(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("a", 0, 10))
    r = Reader(w := watcher([str(logs / "app*.log")]))
    closing.append(w)
    r.poll()
    os.rename(app, logs / "app.1.log")
    append(logs / "app.1.log", lines("a", 10, 5))
    app.write_bytes(lines("b", 0, 3))
    r.settle(3)
    assert Rotated(next(iter(r.streams)), str(app), str(logs / "app.1.log")) in r.notices
    assert len(r.read_of(lines("a", 0, 15))) == 1
    assert len(r.read_of(lines("b", 0, 3))) == 1
    assert not any(isinstance(n, Released) for n in r.notices), "still matched: still followed"


def test_inode_reused_by_the_new_file_is_read_as_a_new_file(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    first = lines("first", 0, 50)
    app.write_bytes(first)
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll()
    os.unlink(app)
    r.settle(10)  # read to its end, released: its inode is free again
    second = lines("second", 0, 7)
    app.write_bytes(second)
    r.settle(2)
    assert [bytes(s.data) for s in r.streams.values()] == [first, second]
    keys = list(r.streams)
    assert keys[0] != keys[1], "a new file must never share a key with the one before it"


def test_copytruncate_restarts_at_zero(logs: Path, closing: list[Watcher]) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("before", 0, 100))
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll()
    shutil.copyfile(app, logs / "app.log.1")
    with app.open("r+b") as f:
        f.truncate(0)
    append(app, lines("after", 0, 3))
    r.poll()
    s = r.by_path(app)
    assert s.truncations == 1
    assert bytes(s.data) == lines("after", 0, 3)


def test_truncated_and_rewritten_past_the_offset_between_polls_is_noticed(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("before", 0, 3))
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll()
    app.write_bytes(lines("after", 0, 50))  # truncate + write more than was there
    r.poll()
    s = r.by_path(app)
    assert s.truncations == 1
    assert bytes(s.data) == app.read_bytes()


def test_truncated_to_a_smaller_size_and_appended_past_the_old_size_loses_nothing(
    logs: Path, closing: list[Watcher]
) -> None:
    """Issue 14 item 4: the head is kept and the file grew, so only the offset marker sees it."""
    app = logs / "app.log"
    app.write_bytes(lines("old", 0, 100))
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll()
    keep = len(lines("old", 0, 60))
    assert keep > HEAD_BYTES
    with app.open("r+b") as f:
        f.truncate(keep)  # the head (first KiB) is unchanged
    append(app, lines("new", 0, 800))  # past the old size before the next poll
    assert app.stat().st_size > len(lines("old", 0, 100))
    r.settle(3)
    s = r.by_path(app)
    assert s.truncations == 1
    assert bytes(s.data) == app.read_bytes()  # every new record, from 0 (the kept part again)


def test_slow_appends_never_look_like_a_truncation(logs: Path, closing: list[Watcher]) -> None:
    app = logs / "app.log"
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    for i in range(200):
        append(app, lines("x", i, 1)[: 7 + i % 20])  # partial lines too
        append(app, lines("x", i, 1)[7 + i % 20 :])
        r.poll(budget=1 + i % 50)
    r.settle(20)
    assert r.by_path(app).truncations == 0
    assert bytes(r.by_path(app).data) == lines("x", 0, 200)


def test_restart_after_partial_truncation_while_down_reads_from_zero(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("old", 0, 100))
    r1 = Reader(w1 := watcher([str(logs / "*.log")]))
    closing.append(w1)
    r1.poll()
    saved = checkpoint(w1, r1)
    assert all(p.marker for p in saved.values())
    w1.close()
    with app.open("r+b") as f:
        f.truncate(len(lines("old", 0, 60)))
    append(app, lines("new", 0, 300))  # same inode, same head, larger than the offset
    r2 = Reader(w2 := watcher([str(logs / "*.log")], saved, first_start=False))
    closing.append(w2)
    r2.settle(3)
    s = r2.by_path(app)
    assert s.start == 0 and bytes(s.data) == app.read_bytes()
    assert any(isinstance(n, Truncated) for n in r2.notices)


def test_restart_without_a_marker_still_resumes(logs: Path, closing: list[Watcher]) -> None:
    """A checkpoint from before markers (format 1) resumes at its offset, unverified."""
    app = logs / "app.log"
    app.write_bytes(lines("a", 0, 10))
    r1 = Reader(w1 := watcher([str(logs / "*.log")]))
    closing.append(w1)
    r1.poll()
    saved = {k: Resume(p.path, p.offset, p.identity) for k, p in checkpoint(w1, r1).items()}
    w1.close()
    append(app, lines("a", 10, 5))
    r2 = Reader(w2 := watcher([str(logs / "*.log")], saved, first_start=False))
    closing.append(w2)
    r2.settle(3)
    assert bytes(r2.by_path(app).data) == lines("a", 10, 5)


# -- deletion ----------------------------------------------------------------------------------


def test_deleted_while_open_is_read_to_its_end_then_closed(
    logs: Path, closing: list[Watcher], caplog: pytest.LogCaptureFixture
) -> None:
    app = logs / "app.log"
    content = lines("x", 0, 2000)
    app.write_bytes(content)
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll(budget=10_000)
    os.unlink(app)
    r.poll(budget=10_000)
    assert [f.deleted_since for f in w.files()] == [r.now]
    r.settle(20, advance=0.5)
    assert len(r.read_of(content)) == 1
    (s,) = r.streams.values()
    assert s.released
    assert w.files() == []


def test_a_deleted_file_held_open_long_is_warned_about_once(
    logs: Path, closing: list[Watcher], caplog: pytest.LogCaptureFixture
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("x", 0, 10_000))
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll(budget=1)  # backpressure: the file cannot be drained
    os.unlink(app)
    with caplog.at_level(logging.WARNING, logger="llmtail.agent.reading.watcher"):
        for _ in range(10):
            r.poll(budget=0, advance=10.0)
    pinned = [m for m in caplog.messages if "still open" in m]
    assert len(pinned) == 1
    assert str(app) in pinned[0]


# -- budget and fairness -----------------------------------------------------------------------


def test_budget_zero_reads_nothing_and_files_are_the_buffer(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("x", 0, 100))
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    for _ in range(5):
        assert r.poll(budget=0) == []
    (status,) = w.files()
    assert status.behind == app.stat().st_size
    r.poll()
    assert bytes(r.by_path(app).data) == app.read_bytes()


def test_two_hundred_files_share_the_budget_fairly(logs: Path, closing: list[Watcher]) -> None:
    contents = {}
    for i in range(200):
        p = logs / f"f{i:03d}.log"
        contents[str(p)] = lines(f"f{i}", 0, 1000)  # ~25 KB each: more than one share
        p.write_bytes(contents[str(p)])
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    chunks = r.poll(budget=200 * 16 * 1024)
    assert sum(len(c.data) for c in chunks) <= 200 * 16 * 1024
    assert len({c.key for c in chunks}) == 200, "every file gets a share of each poll"
    for _ in range(20):
        r.poll(budget=1 << 20)
    assert {s.path: bytes(s.data) for s in r.streams.values()} == contents


def test_idle_since_tells_when_the_writer_stopped(logs: Path, closing: list[Watcher]) -> None:
    app = logs / "app.log"
    app.write_bytes(b"a partial line")
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    r.poll(budget=4)
    key = next(iter(r.streams))
    assert w.idle_since(key) is None, "unread bytes: not idle"
    r.poll()
    grown_at = r.now
    r.poll()
    r.poll()
    assert w.idle_since(key) == pytest.approx(grown_at - 0.25)


# -- bounded fds and idle cost -------------------------------------------------------------------


def test_open_files_stay_bounded_and_suspended_files_are_still_followed(
    logs: Path, closing: list[Watcher]
) -> None:
    paths = [logs / f"f{i:02d}.log" for i in range(20)]
    for i, p in enumerate(paths):
        p.write_bytes(lines(f"f{i}", 0, 5))
    r = Reader(w := watcher([str(logs / "*.log")], max_open=5))
    closing.append(w)
    r.settle(3)
    assert sum(f.open for f in w.files()) <= 5
    for i, p in enumerate(paths):
        append(p, lines(f"f{i}", 5, 5))
    r.settle(3)
    assert sum(f.open for f in w.files()) <= 5
    assert {s.path: bytes(s.data) for s in r.streams.values()} == {
        str(p): p.read_bytes() for p in paths
    }


def test_a_suspended_file_renamed_within_the_globs_is_read_on(
    logs: Path, closing: list[Watcher]
) -> None:
    a, b = logs / "a.log", logs / "b.log"
    a.write_bytes(lines("a", 0, 5))
    b.write_bytes(lines("b", 0, 5))
    r = Reader(w := watcher([str(logs / "*.log")], max_open=1))
    closing.append(w)
    r.settle(2)
    append(b, lines("b", 5, 1))  # b is busy: a is the one suspended
    r.settle(1)
    assert [f.path for f in w.files() if not f.open] == [str(a)]
    os.rename(a, logs / "a.1.log")
    append(logs / "a.1.log", lines("a", 5, 5))
    r.settle(3)
    assert len(r.read_of(lines("a", 0, 10))) == 1


def test_a_suspended_files_inode_reused_is_a_new_file(logs: Path, closing: list[Watcher]) -> None:
    a, b = logs / "a.log", logs / "b.log"
    first = lines("first", 0, 5)
    a.write_bytes(first)
    b.write_bytes(lines("b", 0, 5))
    r = Reader(w := watcher([str(logs / "*.log")], max_open=1))
    closing.append(w)
    r.settle(2)
    append(b, lines("b", 5, 1))
    r.settle(1)
    ino = a.stat().st_ino
    os.unlink(a)
    second = lines("second", 0, 9)
    a.write_bytes(second)
    if a.stat().st_ino != ino:
        pytest.skip("the filesystem did not reuse the inode")
    r.settle(4)
    assert len(r.read_of(first)) == 1
    assert len(r.read_of(second)) == 1
    assert r.read_of(first)[0].released


def test_a_suspended_file_copytruncated_is_read_again_from_zero(
    logs: Path, closing: list[Watcher]
) -> None:
    a, b = logs / "a.log", logs / "b.log"
    a.write_bytes(lines("before", 0, 50))
    b.write_bytes(lines("b", 0, 5))
    r = Reader(w := watcher([str(logs / "*.log")], max_open=1))
    closing.append(w)
    r.settle(2)
    append(b, lines("b", 5, 1))
    r.settle(1)
    with a.open("r+b") as f:
        f.truncate(0)
    append(a, lines("after", 0, 3))
    r.settle(3)
    assert len(r.read_of(lines("after", 0, 3))) == 1


def test_a_file_deleted_before_the_rescan_noticed_is_never_suspended(
    logs: Path, closing: list[Watcher]
) -> None:
    a, b = logs / "a.log", logs / "b.log"
    b.write_bytes(lines("b", 0, 5))
    a.write_bytes(lines("a", 0, 5))
    r = Reader(w := watcher([str(logs / "*.log")], max_open=1))
    closing.append(w)
    r.poll(budget=0)
    with a.open("ab") as writer:
        os.unlink(a)
        r.poll(advance=0.1)  # both read; no rescan yet, but fstat shows a has no links
        writer.write(lines("a", 5, 5))  # the writer still has it open
    r.settle(10)
    assert len(r.read_of(lines("a", 0, 10))) == 1


def open_fds_of(w: Watcher) -> int:
    return sum(f.open for f in w.files())


def test_rotations_during_an_outage_keep_fds_bounded_and_every_file_is_read_after(
    logs: Path, closing: list[Watcher], caplog: pytest.LogCaptureFixture
) -> None:
    """Issue 14 item 3: rotated files wait without an fd while nothing can be delivered."""
    app = logs / "app.log"
    r = Reader(w := watcher([str(logs / "*.log")], max_open=8))
    closing.append(w)
    written: list[bytes] = []
    with caplog.at_level(logging.INFO, logger="llmtail.agent.reading.watcher"):
        for generation in range(40):
            content = lines(f"g{generation}", 0, 50)
            app.write_bytes(content)
            written.append(content)
            r.poll(budget=0, advance=1.0)  # the output is down: nothing is read
            assert open_fds_of(w) <= 8
            os.rename(app, logs / f"app.log.{generation}")  # out of the globs
        r.poll(budget=0, advance=1.0)
        assert open_fds_of(w) <= 8
        assert len(w.files()) == 40  # none forgotten
        for _ in range(60):  # the output is back
            r.poll(budget=64 * 1024, advance=1.0)
            assert open_fds_of(w) <= 8
    for content in written:
        (s,) = r.read_of(content)
        assert s.released
    assert w.files() == []
    parked = [m for m in caplog.messages if "closed and reopened in turn" in m]
    assert len(parked) == 1
    assert "every file is open again" in caplog.messages


def test_at_the_fd_ceiling_new_files_still_open_and_nothing_is_lost(
    logs: Path, closing: list[Watcher]
) -> None:
    """A process limit lower than max_open_files: the ceiling holds, with a reserve left."""
    now_open = open_fds()
    assert now_open is not None
    budget = FdBudget(limit=now_open + 12 + 4, max_open=256, reserve=4)
    budget.recount(0)
    spec = InputConfig(paths=[str(logs / "*.log")], start_at="beginning")
    w = Watcher([spec], {}, TAIL, first_start=True, watch=False, fds=budget)
    closing.append(w)
    r = Reader(w)
    paths = [logs / f"f{i:02d}.log" for i in range(30)]
    for i, p in enumerate(paths):
        p.write_bytes(lines(f"f{i}", 0, 20))
    r.poll(budget=0)
    assert open_fds_of(w) <= 12
    for i, p in enumerate(paths):
        append(p, lines(f"f{i}", 20, 5))
    for _ in range(30):
        r.poll(budget=4096)
        assert open_fds_of(w) <= 12
    assert {s.path: bytes(s.data) for s in r.streams.values()} == {
        str(p): p.read_bytes() for p in paths
    }


def test_a_file_parked_before_its_growth_was_seen_is_still_read_to_its_end(
    logs: Path, closing: list[Watcher]
) -> None:
    """At the ceiling a file is parked while the new one is opened, before any fstat saw the
    last bytes written to it: it must be reopened to look, never let go at its stale size."""
    now_open = open_fds()
    assert now_open is not None
    budget = FdBudget(limit=now_open + 1 + 4, max_open=256, reserve=4)  # one fd for files
    budget.recount(0)
    spec = InputConfig(paths=[str(logs / "*.log")], start_at="beginning")
    w = Watcher([spec], {}, TAIL, first_start=True, watch=False, fds=budget, rotate_wait=1.0)
    closing.append(w)
    r = Reader(w)
    app = logs / "app.log"
    app.write_bytes(b"")
    r.poll(advance=1.0)  # opened while empty
    append(app, lines("gen0", 0, 40))
    os.rename(app, logs / "app.log.0")
    app.write_bytes(lines("gen1", 0, 5))
    r.poll(budget=0, advance=1.0)  # the rescan parks gen0 to open gen1
    r.settle(20)
    (gen0,) = r.read_of(lines("gen0", 0, 40))
    assert gen0.released
    assert len(r.read_of(lines("gen1", 0, 5))) == 1


def test_a_suspended_file_written_then_rotated_out_of_the_globs_is_read_whole(
    logs: Path, closing: list[Watcher]
) -> None:
    """A file suspended while empty (fully read, idle) grows and is renamed away before any
    poll reopens it: its stale size must not let it go unread."""
    app, busy = logs / "app.log", logs / "busy.log"
    busy.write_bytes(lines("busy", 0, 100))
    app.write_bytes(b"")
    r = Reader(w := watcher([str(logs / "*.log")], max_open=1))
    closing.append(w)
    r.poll(budget=0, advance=1.0)  # busy.log has unread bytes: app.log is the one suspended
    assert not next(f for f in w.files() if f.path == str(app)).open
    app.write_bytes(lines("gen0", 0, 30))
    os.rename(app, logs / "app.log.0")  # out of the globs
    r.poll(budget=0, advance=1.0)
    r.settle(20)
    (gen0,) = r.read_of(lines("gen0", 0, 30))
    assert gen0.released
    assert len(r.read_of(lines("busy", 0, 100))) == 1


def test_a_parked_file_deleted_before_it_was_reopened_is_said_lost(
    logs: Path, closing: list[Watcher], caplog: pytest.LogCaptureFixture
) -> None:
    app = logs / "app.log"
    r = Reader(w := watcher([str(logs / "*.log")], max_open=1))
    closing.append(w)
    app.write_bytes(lines("old", 0, 10))
    r.poll(budget=0)
    os.rename(app, logs / "app.log.1")
    app.write_bytes(lines("new", 0, 10))
    r.poll(budget=0, advance=1.0)  # app.log.1 is parked: the new app.log takes the one fd
    assert not next(f for f in w.files() if f.path.endswith(".1")).open
    os.unlink(logs / "app.log.1")  # logback's maxHistory, during the outage
    with caplog.at_level(logging.WARNING, logger="llmtail.agent.reading.watcher"):
        r.settle(10)
    assert any("app.log.1 was deleted while closed" in m for m in caplog.messages)
    assert len(r.read_of(lines("new", 0, 10))) == 1
    assert [f.path for f in w.files()] == [str(app)]


def test_an_idle_poll_costs_one_fstat_per_file_and_nothing_else(
    logs: Path, closing: list[Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """What keeps an idle agent under 1% of a core (measured in bench/bench_idle_watcher.py)."""
    for i in range(200):
        (logs / f"f{i:03d}.log").write_bytes(lines(f"f{i}", 0, 3))
    w = watcher([str(logs / "*.log")], tail=TailConfig(rescan_interval=10.0))
    closing.append(w)
    now = 0.0
    w.poll(now, 1 << 20)
    calls: dict[str, int] = {}

    def counting(name: str) -> object:
        real = getattr(os, name)

        def call(*args: object, **kwargs: object) -> object:
            calls[name] = calls.get(name, 0) + 1
            return real(*args, **kwargs)

        return call

    for name in ("fstat", "pread", "open", "stat", "scandir", "listdir"):
        monkeypatch.setattr(os, name, counting(name))
    for _ in range(39):  # 9.75 simulated seconds at the daemon's 4 Hz: no rescan due
        now += 0.25
        assert w.poll(now, 1 << 20) == []
    monkeypatch.undo()
    assert calls == {"fstat": 39 * 200}


# -- discovery-related ---------------------------------------------------------------------------


def test_excluded_files_are_not_read(logs: Path, closing: list[Watcher]) -> None:
    (logs / "app.log").write_bytes(b"yes\n")
    (logs / "debug.log").write_bytes(b"no\n")
    r = Reader(w := watcher([str(logs / "*.log")], exclude=["*/debug.log"]))
    closing.append(w)
    r.poll()
    assert [bytes(s.data) for s in r.streams.values()] == [b"yes\n"]


def test_symlinked_path_is_followed_and_one_target_is_one_file(
    tmp_path: Path, logs: Path, closing: list[Watcher]
) -> None:
    real = tmp_path / "real"
    real.mkdir()
    target = real / "app-2025.log"
    target.write_bytes(b"via link\n")
    (logs / "current.log").symlink_to(target)
    r = Reader(w := watcher([str(logs / "*.log"), str(real / "*.log")]))
    closing.append(w)
    r.poll()
    append(target, b"more\n")
    r.poll()
    assert [bytes(s.data) for s in r.streams.values()] == [b"via link\nmore\n"]


def test_a_directory_created_later_is_found_by_the_rescan(
    tmp_path: Path, closing: list[Watcher]
) -> None:
    later = tmp_path / "later"
    r = Reader(w := watcher([str(later / "*.log")]))
    closing.append(w)
    r.poll()
    later.mkdir()
    (later / "app.log").write_bytes(b"hello\n")
    r.poll(advance=2.0)
    assert [bytes(s.data) for s in r.streams.values()] == [b"hello\n"]


def test_a_new_file_is_picked_up_on_watchdogs_event_before_the_rescan_interval(
    logs: Path, closing: list[Watcher]
) -> None:
    w = watcher([str(logs / "*.log")], watch=True, tail=TailConfig(rescan_interval=3600))
    closing.append(w)
    w.poll(0.0, 1 << 20)
    (logs / "new.log").write_bytes(b"fresh\n")
    assert w.wait_changed(30.0), "watchdog reported nothing"
    got = w.poll(1.0, 1 << 20)  # long before the next periodic rescan
    assert [c.data for c in got] == [b"fresh\n"]


def test_a_file_created_and_renamed_out_of_the_globs_within_one_turn_is_read(
    logs: Path, closing: list[Watcher]
) -> None:
    w = watcher([str(logs / "*.log")], watch=True, tail=TailConfig(rescan_interval=3600))
    closing.append(w)
    r = Reader(w, now=0.0)
    r.poll()
    app = logs / "app.log"
    app.write_bytes(lines("short-lived", 0, 20))
    os.rename(app, logs / "app.log.1")  # out of the globs before any scan saw it
    app.write_bytes(lines("next", 0, 2))
    while not r.read_of(lines("short-lived", 0, 20)) or not r.read_of(lines("next", 0, 2)):
        assert w.wait_changed(30.0), "watchdog reported nothing"
        r.poll(advance=0.1)
    r.settle(10)
    (moved,) = r.read_of(lines("short-lived", 0, 20))
    assert moved.released and moved.path == str(logs / "app.log.1")


def test_an_unreadable_file_gives_one_log_line(
    logs: Path, closing: list[Watcher], caplog: pytest.LogCaptureFixture
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads everything")
    app = logs / "app.log"
    app.write_bytes(b"secret\n")
    app.chmod(0)
    r = Reader(w := watcher([str(logs / "*.log")]))
    closing.append(w)
    with caplog.at_level(logging.WARNING):
        r.settle(5)
    assert len([m for m in caplog.messages if "cannot read" in m]) == 1


# -- restarts ----------------------------------------------------------------------------------


def checkpoint(w: Watcher, r: Reader) -> dict[str, Resume]:
    """What the daemon would have committed: everything read so far."""
    return {
        f.key: Resume(
            f.path,
            r.streams[f.key].end,
            FileIdentity.from_dict(f.identity.to_dict()),
            w.marker(f.key, r.streams[f.key].end),
        )
        for f in w.files()
    }


def test_restart_resumes_where_it_stopped_even_after_rotation_while_down(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    other = logs / "other.log"
    app.write_bytes(lines("a", 0, 100))
    other.write_bytes(b"x")  # shorter than the fingerprint
    r1 = Reader(w1 := watcher([str(logs / "*.log")]))
    closing.append(w1)
    r1.poll(budget=64 * 1024)
    saved = checkpoint(w1, r1)
    w1.close()
    # While the agent is down: more lines, then a rename rotation and a new active file.
    append(app, lines("a", 100, 50))
    append(other, b"yz\n")
    os.rename(app, logs / "app.log.1")  # not matched by the glob any more
    app.write_bytes(lines("b", 0, 10))
    r2 = Reader(w2 := watcher([str(logs / "*.log")], saved, first_start=False))
    closing.append(w2)
    r2.settle(10)
    old_key = next(k for k, v in saved.items() if v.path == str(app))
    s = r2.streams[old_key]
    assert s.start == saved[old_key].offset
    assert bytes(r1.streams[old_key].data) + bytes(s.data) == lines("a", 0, 150)
    assert s.released
    other_key = next(k for k, v in saved.items() if v.path == str(other))
    assert r2.streams[other_key].start == 1
    assert bytes(r2.streams[other_key].data) == b"yz\n"
    assert len(r2.read_of(lines("b", 0, 10))) == 1


def test_a_file_no_longer_matched_after_a_reload_is_not_called_rotated_to_itself(
    logs: Path, closing: list[Watcher], caplog: pytest.LogCaptureFixture
) -> None:
    other = logs / "other.log"
    other.write_bytes(lines("o", 0, 10))
    r1 = Reader(w1 := watcher([str(logs / "*.log")]))
    closing.append(w1)
    r1.poll()
    saved = checkpoint(w1, r1)
    w1.close()
    append(other, lines("o", 10, 5))
    # The reloaded inputs no longer match other.log: it is read to its end, then let go.
    with caplog.at_level(logging.INFO, logger="llmtail.agent.reading.watcher"):
        r2 = Reader(w2 := watcher([str(logs / "app*.log")], saved, first_start=False))
        closing.append(w2)
        r2.settle(10)
    (line,) = [m for m in caplog.messages if str(other) in m]
    assert "no longer matched by the inputs" in line and "rotated" not in line
    (s,) = r2.streams.values()
    assert bytes(s.data) == lines("o", 10, 5) and s.released


def test_a_damaged_checkpoint_entry_is_skipped_with_a_log_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = FileIdentity.of("k", 1, 2, b"head").to_dict()
    assert Resume.from_saved("k", "/x.log", 10, good) == Resume(
        "/x.log", 10, FileIdentity.from_dict(good)
    )
    with caplog.at_level(logging.WARNING):
        assert Resume.from_saved("k", "/x.log", 10, {"dev": "nope"}) is None
    assert any("/x.log" in m and "ignored" in m for m in caplog.messages)


def test_restart_with_a_reused_inode_reads_the_new_file_from_zero(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("new", 0, 10))
    st = app.stat()
    # A checkpoint of an older file that had this very inode, at an offset inside this file.
    stale = FileIdentity.of("old", st.st_dev, st.st_ino, b"2025-01-01 older content\n")
    r = Reader(
        w := watcher([str(logs / "*.log")], {"old": Resume(str(app), 40, stale)}, first_start=False)
    )
    closing.append(w)
    r.poll()
    s = r.by_path(app)
    assert s.start == 0
    assert bytes(s.data) == app.read_bytes()
    assert Released("old", str(app), 40) in r.notices


@pytest.mark.parametrize(("size", "resumed"), [(3000, True), (300, False)])
def test_after_a_device_renumbering_only_a_complete_head_resumes(
    logs: Path, closing: list[Watcher], size: int, resumed: bool
) -> None:
    app = logs / "app.log"
    content = (lines("a", 0, 200) * 2)[:size]
    app.write_bytes(content)
    st_ = app.stat()
    # The checkpoint was written when the volume had another device number.
    saved = FileIdentity.of("k", st_.st_dev + 1, st_.st_ino, content)
    r = Reader(
        w := watcher([str(logs / "*.log")], {"k": Resume(str(app), 100, saved)}, first_start=False)
    )
    closing.append(w)
    r.poll()
    s = r.by_path(app)
    assert (s.start, bytes(s.data)) == ((100, content[100:]) if resumed else (0, content))


def test_restart_after_copytruncate_while_down_reads_from_zero(
    logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    app.write_bytes(lines("a", 0, 100))
    r1 = Reader(w1 := watcher([str(logs / "*.log")]))
    closing.append(w1)
    r1.poll()
    saved = checkpoint(w1, r1)
    w1.close()
    with app.open("r+b") as f:
        f.truncate(0)
    append(app, lines("a", 100, 3))
    r2 = Reader(w2 := watcher([str(logs / "*.log")], saved, first_start=False))
    closing.append(w2)
    r2.poll()
    assert bytes(r2.by_path(app).data) == lines("a", 100, 3)


def test_a_checkpointed_file_that_shows_up_late_resumes_instead_of_restarting(
    tmp_path: Path, logs: Path, closing: list[Watcher]
) -> None:
    app = logs / "app.log"
    content = lines("a", 0, 200)
    app.write_bytes(content)
    r1 = Reader(w1 := watcher([str(logs / "*.log")]))
    closing.append(w1)
    r1.poll(budget=3000)
    saved = checkpoint(w1, r1)
    w1.close()
    os.rename(logs, tmp_path / "unmounted")  # like a volume not mounted yet at startup
    r2 = Reader(w2 := watcher([str(logs / "*.log")], saved, first_start=False))
    closing.append(w2)
    r2.poll()
    (key,) = saved
    assert Released(key, str(app), 3000) in r2.notices
    os.rename(tmp_path / "unmounted", logs)
    r2.settle(2)
    assert r2.streams[key].start == 3000
    assert bytes(r2.streams[key].data) == content[3000:]


# -- the model-based property test -----------------------------------------------------------


@dataclass
class Gen:
    """One file identity the model wrote: its content per truncation epoch."""

    name: str | None  # current file name; None once deleted
    fd: int
    inode: tuple[int, int]
    epochs: list[bytearray] = field(default_factory=lambda: [bytearray()])
    lost: bool = False  # deleted while the agent restarted, or while it had no fd: its rest
    # cannot be read


class WatcherMachine(RuleBasedStateMachine):
    """Random writes, rename rotations, copytruncates (to 0 or to a smaller size), deletes,
    polls and restarts.

    Checked after every step: what was read of each key is a prefix-consistent copy of what was
    written to that file identity since its last truncation, and chunks are contiguous (offsets
    only go back on Truncated). Checked at the end: every file still present, and every file
    released, was read to its end.
    """

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="llmtail-model-"))
        self.gens: list[Gen] = []
        self.active: dict[str, Gen] = {}
        self.token = 0
        self.epoch_seq = 0
        self.reader = Reader(self._watcher(first_start=True))
        self.mapped: dict[str, tuple[Gen, int]] = {}  # key -> (gen, epoch index)

    max_open = 256
    settle_polls = 12

    def _watcher(self, *, first_start: bool, positions: dict[str, Resume] | None = None) -> Watcher:
        return watcher(
            [str(self.dir / "*.log")],
            positions,
            first_start=first_start,
            tail=TailConfig(rescan_interval=1.0),
            rotate_wait=1.0,
            max_open=self.max_open,
        )

    def _bytes(self, count: int) -> bytes:
        out = []
        for _ in range(count):
            self.token += 1
            out.append(
                b"[%d:%d]%s" % (self.epoch_seq, self.token, b"\n" if self.token % 3 else b"")
            )
        return b"".join(out)

    def _new_epoch(self) -> None:
        self.epoch_seq += 1

    @rule(name=st.sampled_from(["a.log", "b.log"]), count=st.integers(1, 400))
    def write(self, name: str, count: int) -> None:
        gen = self.active.get(name)
        if gen is None:
            self._new_epoch()
            path = self.dir / name
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            st_ = os.fstat(fd)
            gen = Gen(name, fd, (st_.st_dev, st_.st_ino))
            self.gens.append(gen)
            self.active[name] = gen
        data = self._bytes(count)
        os.write(gen.fd, data)
        gen.epochs[-1] += data

    @rule(data=st.data(), count=st.integers(1, 50))
    def write_after_rotation(self, data: st.DataObject, count: int) -> None:
        """A buffered writer finishing into the file it has open after a rename or unlink."""
        late = [g for g in self.gens if g not in self.active.values() and self._writable(g)]
        if late:
            gen = data.draw(st.sampled_from(late))
            chunk = self._bytes(count)
            os.write(gen.fd, chunk)
            gen.epochs[-1] += chunk

    def _writable(self, gen: Gen) -> bool:
        """Writing to a file the watcher already let go would be loss by construction."""
        keys = [k for k, (g, _) in self.mapped.items() if g is gen]
        return not gen.lost and all(not self.reader.streams[k].released for k in keys)

    @rule(name=st.sampled_from(["a.log", "b.log"]), matching=st.booleans())
    def rotate(self, name: str, matching: bool) -> None:
        gen = self.active.pop(name, None)
        if gen is None:
            return
        new = f"{name[0]}.{len(self.gens)}.{'log' if matching else 'old'}"
        os.rename(self.dir / name, self.dir / new)
        gen.name = new

    @rule(name=st.sampled_from(["a.log", "b.log"]))
    def copytruncate(self, name: str) -> None:
        gen = self.active.get(name)
        if gen is None:
            return
        os.ftruncate(gen.fd, 0)
        if gen.epochs[-1]:  # truncating an empty file changes nothing anyone could see
            self._new_epoch()
            gen.epochs.append(bytearray())

    @rule(
        name=st.sampled_from(["a.log", "b.log"]),
        keep=st.floats(0.05, 0.95),
        count=st.integers(0, 400),
    )
    def truncate_partly(self, name: str, keep: float, count: int) -> None:
        """Truncated to a smaller size (not 0), then appended to, maybe past the old size."""
        gen = self.active.get(name)
        if gen is None or not gen.epochs[-1]:
            return
        content = gen.epochs[-1]
        kept = max(1, int(len(content) * keep))
        os.ftruncate(gen.fd, kept)
        current = len(gen.epochs) - 1
        heads = {f.key: f.identity.head_len for f in self.reader.watcher.files()}
        # What was read, or the head that identifies the file, is no longer there: the watcher
        # must start over (Truncated) or take it for another file (a new key from 0).
        changed = any(
            g is gen and e == current and (self.reader.streams[k].end > kept or heads[k] > kept)
            for k, (g, e) in self.mapped.items()
            if k in heads
        )
        if changed:
            self._new_epoch()
            gen.epochs.append(bytearray(content[:kept]))
        else:  # nothing read was changed: the same content, cut
            del content[kept:]
        data = self._bytes(count)
        os.write(gen.fd, data)
        gen.epochs[-1] += data

    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        present = [g for g in self.gens if g.name is not None]
        if present:
            gen = data.draw(st.sampled_from(present))
            os.unlink(self.dir / str(gen.name))
            if self.active.get(str(gen.name)) is gen:
                del self.active[str(gen.name)]
            gen.name = None
            # Documented cost of bounding fds: a file without an fd (suspended or parked) that
            # is deleted cannot be reached again; what it held past its offset is lost.
            closed = {f.key for f in self.reader.watcher.files() if not f.open}
            if any(g is gen and k in closed for k, (g, _) in self.mapped.items()):
                gen.lost = True

    @rule(
        budget=st.sampled_from([0, 7, 100, 4096, 1 << 20]), advance=st.sampled_from([0.1, 0.6, 2])
    )
    def poll(self, budget: int, advance: float) -> None:
        before = len(self.reader.notices)
        unread = [k for k, s in self.reader.streams.items() if s.end == 0 and k in self.mapped]
        self.reader.poll(budget=budget, advance=advance)
        # A stream that had read nothing reads the file as it is now: an earlier truncation
        # of bytes it never read is invisible (and irrelevant) to it.
        for key in unread:
            if not self.reader.streams[key].released:
                gen, _ = self.mapped[key]
                self.mapped[key] = (gen, len(gen.epochs) - 1)
        self._map(self.reader.notices[before:])
        for n in self.reader.notices[before:]:
            if isinstance(n, Released) and n.key in self.mapped:
                gen, epoch = self.mapped[n.key]
                if not gen.lost and epoch == len(gen.epochs) - 1:
                    assert n.offset == len(gen.epochs[epoch]), "released before its end"

    @rule()
    def restart(self) -> None:
        w = self.reader.watcher
        saved = checkpoint(w, self.reader)
        for key, resume in saved.items():
            gen, _ = self.mapped[key]
            if gen.name is None:
                gen.lost = True  # deleted and not yet drained: nothing can find it again
            assert resume.path
        w.close()
        self.reader.watcher = self._watcher(first_start=False, positions=saved)
        self.poll(budget=0, advance=0.1)

    def _map(self, notices: list[object]) -> None:
        inodes = {f.key: (f.identity.dev, f.identity.ino) for f in self.reader.watcher.files()}
        by_inode = {g.inode: g for g in self.gens}  # later gens win: inode reuse
        for n in notices:
            if isinstance(n, (Opened, Truncated)) and n.key in inodes:
                if (
                    isinstance(n, Opened)
                    and n.key in self.mapped
                    and 0 < n.offset == self.reader.streams[n.key].end
                ):
                    continue  # resumed after a restart: the same stream goes on
                gen = by_inode[inodes[n.key]]
                self.mapped[n.key] = (gen, len(gen.epochs) - 1)

    @invariant()
    def what_was_read_is_what_was_written(self) -> None:
        for key, (gen, epoch) in self.mapped.items():
            s = self.reader.streams[key]
            assert bytes(s.data) == bytes(gen.epochs[epoch][s.start : s.end]), key

    def teardown(self) -> None:
        try:
            for _ in range(self.settle_polls):
                self.poll(budget=1 << 20, advance=1)
            self.what_was_read_is_what_was_written()
            for gen in self.gens:
                current = len(gen.epochs) - 1
                keys = [k for k, (g, e) in self.mapped.items() if g is gen and e == current]
                visible = gen.name is not None and gen.name.endswith(".log")
                if visible:
                    live = [k for k in keys if not self.reader.streams[k].released]
                    assert len(live) == 1, f"{gen.name} is not being read"
                for key in keys:
                    s = self.reader.streams[key]
                    # Released keys were checked when released (see poll).
                    if not gen.lost and not s.released:
                        assert s.end == len(gen.epochs[current]), f"{key} not read to its end"
                    if gen.name is None or not gen.name.endswith(".log"):
                        assert s.released or gen.lost, f"{key} gone but never released"
        finally:
            self.reader.watcher.close()
            for gen in self.gens:
                os.close(gen.fd)
            shutil.rmtree(self.dir, ignore_errors=True)


WatcherMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=40, deadline=None, derandomize=True
)
test_watcher_against_a_model = WatcherMachine.TestCase


class FewFdsWatcherMachine(WatcherMachine):
    """The same with one fd for files: suspended and parked files, reopened in turn."""

    max_open = 1
    settle_polls = 60


FewFdsWatcherMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=40, deadline=None, derandomize=True
)
test_watcher_with_one_fd_against_a_model = FewFdsWatcherMachine.TestCase
