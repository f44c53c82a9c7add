"""File identity: a head fingerprint that grows with the file and survives a checkpoint."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtail.agent.reading.fingerprint import HEAD_BYTES, FileIdentity, mint_key, read_head

heads = st.binary(max_size=HEAD_BYTES + 200)


@given(head=heads, more=heads)
def test_an_identity_taken_early_still_recognises_the_grown_file(head: bytes, more: bytes) -> None:
    early = FileIdentity.of("k", 1, 2, head)
    grown_file = head + more
    assert early.matches_head(grown_file[:HEAD_BYTES])
    later = early.grown(grown_file[:HEAD_BYTES])
    assert later.key == early.key
    assert later.head_len == min(len(grown_file), HEAD_BYTES)
    assert later.matches_head(grown_file[:HEAD_BYTES])


@given(head=st.binary(min_size=1, max_size=HEAD_BYTES), other=heads)
def test_a_file_with_another_head_is_not_recognised(head: bytes, other: bytes) -> None:
    identity = FileIdentity.of("k", 1, 2, head)
    if other[: len(head)] != head:
        assert not identity.matches_head(other)


def test_a_shorter_file_than_the_identity_knew_is_not_recognised() -> None:
    identity = FileIdentity.of("k", 1, 2, b"2025-07-09 14:23:24.748 INFO  hello\n")
    assert not identity.matches_head(b"2025-07-09 14:23")


def test_the_head_stops_growing_at_head_bytes() -> None:
    data = b"x" * (HEAD_BYTES * 3)
    identity = FileIdentity.of("k", 1, 2, data)
    assert identity.head_len == HEAD_BYTES
    assert identity.complete
    assert identity.grown(data) is identity


@given(
    head=heads,
    key=st.text(min_size=1, max_size=30),
    dev=st.integers(0, 2**63),
    ino=st.integers(0, 2**63),
)
def test_identity_survives_a_checkpoint_round_trip(
    head: bytes, key: str, dev: int, ino: int
) -> None:
    identity = FileIdentity.of(key, dev, ino, head)
    saved = identity.to_dict()
    assert all(isinstance(v, (str, int)) for v in saved.values())
    assert FileIdentity.from_dict(dict(saved)) == identity


@pytest.mark.parametrize(
    ("field", "value"),
    [("dev", "12"), ("ino", None), ("head_len", True), ("head_len", HEAD_BYTES + 1), ("key", 3)],
)
def test_a_damaged_checkpoint_identity_is_rejected_with_the_field_named(
    field: str, value: object
) -> None:
    saved: dict[str, object] = dict(FileIdentity.of("k", 1, 2, b"abc").to_dict())
    saved[field] = value
    with pytest.raises(ValueError, match=field):
        FileIdentity.from_dict(saved)


@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 3)), max_size=40))
def test_minted_keys_never_collide_even_when_inodes_are_reused(
    inodes: list[tuple[int, int]],
) -> None:
    taken: set[str] = set()
    for dev, ino in inodes:
        key = mint_key(dev, ino, taken)
        assert key not in taken
        taken.add(key)


def test_read_head_reads_from_zero_without_moving_the_file_position(tmp_path: Path) -> None:
    p = tmp_path / "f.log"
    p.write_bytes(b"a" * 10 + b"b" * 3000)
    fd = os.open(p, os.O_RDONLY)
    try:
        os.lseek(fd, 5, os.SEEK_SET)
        assert read_head(fd) == (b"a" * 10 + b"b" * 3000)[:HEAD_BYTES]
        assert read_head(fd, 4) == b"aaaa"
        assert os.lseek(fd, 0, os.SEEK_CUR) == 5
    finally:
        os.close(fd)
