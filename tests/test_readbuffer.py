"""The reader's kept buffer: chunks are views of one buffer read into turn after turn.

What must hold: a chunk's bytes never change while anyone holds it (the next turn reads into a
new buffer rather than over it); a buffer nobody holds a chunk of is read into again (no fresh
megabyte per turn, two in turn for a whole file); and the Streams give the same batches from a
chunk as from `bytes`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.engine.stream import StreamSettings, Wire
from llmtail.agent.reading import wholefile
from llmtail.agent.reading.fingerprint import FileIdentity
from llmtail.agent.reading.readbuffer import ChunkData, TurnBuffer
from llmtail.agent.reading.tailer import Tailer, open_file
from tests.agentproc import record_line
from tests.batches import settings as stream_settings
from tests.test_core_stream import core_stream, plain, py_stream

_core = pytest.importorskip("llmtail._core")


def _tail(path: Path) -> Tailer:
    opened = open_file(str(path))
    identity = FileIdentity.of("k", opened.dev, opened.ino, opened.head)
    return Tailer(opened, identity, str(path), offset=0, input_index=0, now=0.0)


def test_a_chunk_still_held_keeps_its_bytes_and_the_next_turn_reads_elsewhere(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    content = b"".join(b"%07d\n" % i for i in range(2048))  # 16 KiB, no two reads alike
    path.write_bytes(content)
    t = _tail(path)
    buf = TurnBuffer(8192)
    try:
        buf.start_turn()
        held = t.read(4096, buf)
        view = memoryview(held)[100:200]  # a view of a view: it holds the buffer too
        del held
        for _ in range(3):
            buf.start_turn()
            assert t.read(4096, buf)
        assert bytes(view) == content[100:200], "a held chunk was read over"
        assert buf.replaced == 1  # the turn after it found the buffer held
        view.release()
        buf.start_turn()
        assert buf.replaced == 1  # the latest buffer, free again, is read into again
    finally:
        t.close()


def test_a_buffer_nobody_holds_is_read_into_again_and_reads_past_its_room_get_their_own(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.log"
    content = b"".join(record_line(i) for i in range(1, 2000))
    path.write_bytes(content)
    t = _tail(path)
    buf = TurnBuffer(4096)
    got = bytearray()
    try:
        while t.offset < len(content):
            buf.start_turn()
            first = t.read(3000, buf)
            second = t.read(3000, buf)  # past the room: bytes of its own
            assert isinstance(first, _core.ReadChunk) and isinstance(second, bytes)
            got += first
            got += second
            del first, second
    finally:
        t.close()
    assert bytes(got) == content
    assert buf.replaced == 0


def test_the_tail_marker_is_a_copy_of_the_bytes_before_the_offset(tmp_path: Path) -> None:
    path = tmp_path / "app.log"
    content = b"".join(b"line %04d of the file\n" % i for i in range(100))
    path.write_bytes(content)
    t = _tail(path)
    buf = TurnBuffer(1 << 16)
    try:
        marker = t.marker_at(1000)  # nothing read yet: unknown
        assert marker is None
        buf.start_turn()
        assert t.read(1000, buf) == content[:1000]
        before = t.marker_at(1000)
        buf.start_turn()  # the buffer is read into again, over the first chunk's bytes
        assert t.read(64, buf) == content[1000:1064]
        assert t.marker_at(1000) == before
    finally:
        t.close()


def test_a_chunk_is_read_only_and_compares_as_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"hello\nworld\n")
    rb = _core.ReadBuffer(64)
    with path.open("rb") as f:
        chunk = rb.pread(f.fileno(), 100, 0)
        assert chunk == b"hello\nworld\n" and len(chunk) == 12
        assert _core.count_lines(chunk) == 2
        view = memoryview(chunk)
        assert view.readonly
        with pytest.raises(TypeError):
            view[0] = 0
        assert not rb.reset()  # the view holds it
        view.release()
        del chunk
        assert rb.reset() and rb.room == 64
        assert rb.pread(f.fileno(), 10, 12) == b""  # the end of the file
    with pytest.raises(OSError):
        rb.pread(-1, 10, 0)


def _records(n: int) -> bytes:
    return b"".join(record_line(i) for i in range(1, n + 1))


def _feed_all(stream: Any, pieces: list[ChunkData]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for p in pieces:
        out += map(plain, stream.feed(p, 100.0, 1.8e9))
    out += map(plain, stream.drain(1.8e9))
    return out


def _as_chunks(tmp_path: Path, content: bytes, cuts: list[int]) -> list[ChunkData]:
    """`content` cut at `cuts`, each piece read into one kept buffer, as the watcher reads."""
    path = tmp_path / "c.log"
    path.write_bytes(content)
    buf = TurnBuffer(1 << 20)
    out: list[ChunkData] = []
    t = _tail(path)
    try:
        start = 0
        for end in [*sorted(set(cuts)), len(content)]:
            if end > start:
                out.append(t.read(end - start, buf))
                start = end
    finally:
        t.close()
    return out


@pytest.mark.parametrize("wire", ["loggroup", "ndjson", "count"])
@settings(max_examples=25, deadline=None)
@given(cuts=st.lists(st.integers(min_value=0, max_value=60_000), max_size=12))
def test_both_engines_give_the_same_batches_from_chunks_as_from_bytes(
    tmp_path_factory: pytest.TempPathFactory, wire: str, cuts: list[int]
) -> None:
    content = _records(300)
    chunks = _as_chunks(tmp_path_factory.mktemp("chunks"), content, cuts)
    assert b"".join(chunks) == content
    s: StreamSettings = stream_settings(cast(Wire, wire), max_bytes=8192)
    expected = _feed_all(py_stream(s, "k", "/p", 0, 0), [bytes(c) for c in chunks])
    assert _feed_all(core_stream(s, "k", "/p", 0, 0), chunks) == expected
    assert _feed_all(py_stream(s, "k", "/p", 0, 0), chunks) == expected
    # Any other buffer (copied by the core first) reads as its bytes do.
    whole = _feed_all(py_stream(s, "k", "/p", 0, 0), [content])
    assert _feed_all(core_stream(s, "k", "/p", 0, 0), [bytearray(content)]) == whole


def test_a_whole_file_read_takes_two_buffers_in_turn_and_kept_chunks_keep_their_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "app.log"
    content = b"".join(b"%07d\n" % i for i in range(40_000))  # 320 KB
    path.write_bytes(content)
    made: list[TurnBuffer] = []

    def kept(capacity: int) -> TurnBuffer:
        made.append(TurnBuffer(capacity))
        return made[-1]

    monkeypatch.setattr(wholefile, "TurnBuffer", kept)
    got = bytearray()
    for chunk in wholefile.read_chunks(str(path), 0, 4096):
        got += chunk  # the loop holds each chunk until the next one is read
    assert bytes(got) == content
    assert len(made) == 2 and sum(b.replaced for b in made) == 0

    made.clear()
    held = list(wholefile.read_chunks(str(path), 1000, 4096))  # every chunk kept
    assert b"".join(held) == content[1000:]
    # Each read after the first two found its buffer held, the one that found the end too.
    assert sum(b.replaced for b in made) == len(held) + 1 - 2
