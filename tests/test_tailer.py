"""One file identity's bytes, read through its fd, through renames, unlinks and truncation."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.reading.fingerprint import HEAD_BYTES, MARKER_BYTES, FileIdentity, marker_hash
from llmtail.agent.reading.tailer import Change, Tailer, open_file


def tail(path: Path, offset: int = 0, now: float = 0.0) -> Tailer:
    opened = open_file(str(path))
    identity = FileIdentity.of("k", opened.dev, opened.ino, opened.head)
    return Tailer(opened, identity, str(path), offset=offset, input_index=0, now=now)


@pytest.fixture
def app(tmp_path: Path) -> Path:
    p = tmp_path / "app.log"
    p.write_bytes(b"first\n")
    return p


@pytest.fixture
def tailers() -> Iterator[list[Tailer]]:
    made: list[Tailer] = []
    yield made
    for t in made:
        t.close()


def test_open_file_refuses_what_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(IsADirectoryError):
        open_file(str(tmp_path))
    with pytest.raises(FileNotFoundError):
        open_file(str(tmp_path / "missing.log"))


def test_reads_continue_through_the_fd_after_rename_and_unlink(
    app: Path, tailers: list[Tailer]
) -> None:
    t = tail(app)
    tailers.append(t)
    assert t.read(100) == b"first\n"
    with app.open("ab") as f:
        os.rename(app, app.with_name("app.log.1"))
        f.write(b"after rename\n")
        f.flush()
        os.unlink(app.with_name("app.log.1"))
        f.write(b"after unlink\n")
    assert t.refresh(1.0) is Change.MODIFIED
    assert t.deleted_since == 1.0
    assert t.read(100) == b"after rename\nafter unlink\n"
    assert t.read(100) == b""


def test_an_unchanged_file_is_unchanged_and_a_grown_one_modified(
    app: Path, tailers: list[Tailer]
) -> None:
    t = tail(app, now=0.0)
    tailers.append(t)
    t.read(100)
    assert t.refresh(1.0) is Change.UNCHANGED
    assert t.changed_at == 0.0
    with app.open("ab") as f:
        f.write(b"more\n")
    assert t.refresh(2.0) is Change.MODIFIED
    assert (t.changed_at, t.behind) == (2.0, 5)


def test_shrinking_below_the_offset_restarts_at_zero(app: Path, tailers: list[Tailer]) -> None:
    app.write_bytes(b"x" * 5000)
    t = tail(app)
    tailers.append(t)
    t.read(5000)
    with app.open("r+b") as f:
        f.truncate(0)
        f.write(b"new\n")
    assert t.refresh(1.0) is Change.TRUNCATED
    assert t.read(100) == b"new\n"


def test_rewritten_past_the_offset_is_seen_as_truncated(app: Path, tailers: list[Tailer]) -> None:
    t = tail(app)
    tailers.append(t)
    t.read(100)
    app.write_bytes(b"another file entirely, and longer\n")
    assert t.refresh(1.0) is Change.TRUNCATED
    assert t.offset == 0
    assert t.read(100) == app.read_bytes()


def test_the_identity_head_grows_with_the_file_and_keeps_its_key(
    app: Path, tailers: list[Tailer]
) -> None:
    t = tail(app)
    tailers.append(t)
    assert t.identity.head_len == len(b"first\n")
    with app.open("ab") as f:
        f.write(b"y" * 4000)
    t.refresh(1.0)
    assert t.identity.key == "k"
    assert t.identity.head_len == HEAD_BYTES
    assert t.identity.matches_head(app.read_bytes()[:HEAD_BYTES])


def test_a_suspended_file_reopens_when_it_grows(app: Path, tailers: list[Tailer]) -> None:
    t = tail(app)
    tailers.append(t)
    t.read(100)
    t.suspend()
    assert t.closed
    assert t.refresh(1.0) is Change.UNCHANGED
    with app.open("ab") as f:
        f.write(b"later\n")
    assert t.refresh(2.0) is Change.MODIFIED
    assert not t.closed
    assert t.read(100) == b"later\n"


def test_a_suspended_file_whose_path_holds_other_content_is_replaced(
    app: Path, tailers: list[Tailer]
) -> None:
    t = tail(app)
    tailers.append(t)
    t.read(100)
    t.suspend()
    os.unlink(app)
    app.write_bytes(b"a different file\n")
    if app.stat().st_ino != t.identity.ino:
        pytest.skip("the filesystem did not reuse the inode")
    assert t.refresh(1.0) is Change.REPLACED


def test_a_suspended_file_renamed_away_is_left_to_the_rescan(
    app: Path, tailers: list[Tailer]
) -> None:
    t = tail(app)
    tailers.append(t)
    t.read(100)
    t.suspend()
    os.rename(app, app.with_name("app.log.1"))
    app.write_bytes(b"the new active file\n")
    assert t.refresh(1.0) is Change.UNCHANGED
    assert t.closed, "a path that leads to another inode is not this file"


@settings(max_examples=50, deadline=None)
@given(
    steps=st.lists(
        st.one_of(
            st.tuples(st.just("write"), st.binary(min_size=1, max_size=3000)),
            st.tuples(st.just("read"), st.integers(1, 5000)),
        ),
        max_size=30,
    )
)
def test_reads_in_any_sizes_give_back_exactly_what_was_appended(
    tmp_path_factory: pytest.TempPathFactory, steps: list[tuple[str, object]]
) -> None:
    path = tmp_path_factory.mktemp("prop") / "f.log"
    path.write_bytes(b"")
    t = tail(path)
    got = bytearray()
    try:
        with path.open("ab") as f:
            for i, (op, arg) in enumerate(steps):
                if op == "write":
                    assert isinstance(arg, bytes)
                    f.write(arg)
                    f.flush()
                else:
                    assert isinstance(arg, int)
                    assert t.refresh(float(i)) is not Change.TRUNCATED
                    got += t.read(arg)
        t.refresh(99.0)
        got += t.read(1 << 20)
    finally:
        t.close()
    assert bytes(got) == path.read_bytes()


def test_the_checkpoint_marker_hashes_the_bytes_just_before_the_offset(
    app: Path, tailers: list[Tailer]
) -> None:
    content = b"".join(b"line %04d of the file\n" % i for i in range(100))
    app.write_bytes(content)
    t = tail(app)
    tailers.append(t)
    t.refresh(1.0)
    assert t.read(1000) == content[:1000]
    assert t.marker_at(0) is None  # nothing before offset 0 to verify
    assert t.marker_at(1000) == marker_hash(content[1000 - MARKER_BYTES : 1000])
    assert t.marker_at(10) == marker_hash(content[:10])  # a committed offset behind the read
    assert t.marker_at(5000) is None  # never read that far: unknown


def test_a_parked_file_reopened_under_its_new_name_goes_on_where_it_was(
    app: Path, tailers: list[Tailer]
) -> None:
    app.write_bytes(b"a" * 3000)
    t = tail(app)
    tailers.append(t)
    t.refresh(1.0)
    t.read(2000)
    t.park()
    assert t.closed and t.refresh(2.0) is Change.UNCHANGED  # no syscall for a parked file
    moved = app.with_name("app.log.1")
    os.rename(app, moved)
    with moved.open("ab") as f:
        f.write(b"b" * 100)
    assert t.reopen(str(moved), 3.0) is Change.MODIFIED
    assert t.path == str(moved) and t.read(5000) == b"a" * 1000 + b"b" * 100


def test_a_parked_file_rewritten_before_its_offset_is_read_again_from_zero(
    app: Path, tailers: list[Tailer]
) -> None:
    app.write_bytes(b"x" * HEAD_BYTES + b"old part " * 200)
    t = tail(app)
    tailers.append(t)
    t.refresh(1.0)
    t.read(HEAD_BYTES + 900)
    t.park()
    with app.open("r+b") as f:  # the same head, other bytes before the offset
        f.truncate(HEAD_BYTES + 10)
        f.seek(0, os.SEEK_END)
        f.write(b"new part " * 300)
    assert t.reopen(str(app), 2.0) is Change.TRUNCATED
    assert t.offset == 0


def test_a_parked_files_name_holding_another_file_is_replaced(
    app: Path, tmp_path: Path, tailers: list[Tailer]
) -> None:
    t = tail(app)
    tailers.append(t)
    t.park()
    other = tmp_path / "other.log"
    other.write_bytes(b"another file\n")
    assert t.reopen(str(other), 1.0) is Change.REPLACED
    assert t.closed
