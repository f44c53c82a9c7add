"""A core LogGroup batch's bytes reach the sender without a copy and come back for reuse.

The core hands over its own buffer (`_core.BatchBytes`, read-only through the buffer protocol);
when the last reference goes, the buffer returns to its Stream for a later batch, within a
bound on what all Streams keep (the in-flight bound, set by the agent).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator

import lz4.block
import pytest

from llmtail.agent.config import parse_config
from llmtail.agent.delivery.dispatch import Dispatcher
from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.delivery.sls_group import Pending
from llmtail.agent.engine.corestream import open_stream, parser, spare_bytes
from llmtail.agent.engine.stream import SealedBatch, Stream
from llmtail.agent.modes.pipeline import build_dispatcher
from tests.agentproc import record_line
from tests.batches import settings

_core = pytest.importorskip("llmtail._core")

WALL = 1.8e9


def _lines(n: int) -> bytes:
    return b"".join(record_line(i) for i in range(1, n + 1))


def _stream(**overrides: object) -> Stream:
    s = settings("loggroup", max_bytes=4096, **overrides)
    return open_stream(s, parser(s), "k", "/var/log/app.log", 0, "AB", 0)


@pytest.fixture
def spare_limit() -> Iterator[None]:
    """The process-wide bound on kept buffers, restored after the test."""
    yield
    _core.set_spare_limit(16 << 20)


def test_a_loggroup_batch_is_the_core_buffer_read_only_and_whole() -> None:
    stream = _stream()
    batches: list[SealedBatch] = stream.feed(_lines(200), 0.0, WALL)
    assert len(batches) > 1
    for b in batches:
        view = memoryview(b.data)
        assert view.readonly and len(view) == len(b.data)
        with pytest.raises(TypeError):
            view[0] = 0
        assert bytes(view).endswith(b.trailer)
        # What the sender posts: the same buffer, compressed and decompressed intact.
        body = Pending(b.data, None, b.record_times(), b.trailer).group().SerializeToString()
        assert body is b.data
        packed = lz4.block.compress(body, store_size=False)
        assert lz4.block.decompress(packed, uncompressed_size=len(b.data)) == bytes(view)
        assert b.memory == len(b.data) + len(b.trailer) + len(b.bounds) + len(b.times)


def test_a_buffer_let_go_is_kept_for_the_next_batch_while_the_file_is_read() -> None:
    stream = _stream()
    before = _core.spare_bytes()
    batches = stream.feed(_lines(200), 0.0, WALL)
    assert len(batches) > 2
    del batches  # the sender is done with them: the buffers come back
    assert _core.spare_bytes() > before
    # A linger (1 s) without a read: the file is quiet, the buffer is given back.
    stream.due(1.0, WALL, caught_up=False)
    assert _core.spare_bytes() == before


def test_a_buffer_still_in_flight_outlives_its_stream() -> None:
    stream = _stream()
    before = _core.spare_bytes()
    (first, *_) = stream.feed(_lines(200), 0.0, WALL)
    content = bytes(first.data)
    del stream  # the file is finished while its batch is still being sent
    assert bytes(first.data) == content
    del first
    assert _core.spare_bytes() == before


@pytest.mark.usefixtures("spare_limit")
def test_kept_buffers_stay_within_the_limit() -> None:
    _core.set_spare_limit(0)
    stream = _stream()
    before = _core.spare_bytes()
    batches = stream.feed(_lines(200), 0.0, WALL)
    del batches
    assert _core.spare_bytes() == before


class _Delivers:
    """A sink that delivers every batch at once."""

    def send(self, batch: SealedBatch) -> Outcome:
        return Outcome.DELIVERED

    def state(self) -> str:
        return "delivering"

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass


def test_kept_buffers_count_against_the_in_flight_bound() -> None:
    gc.collect()  # the spares are counted process-wide: earlier tests' Streams are gone first
    stream = _stream()
    capacity = 1 << 20
    dispatcher = Dispatcher(_Delivers(), 1, capacity, held=spare_bytes)
    try:
        before = spare_bytes()
        for i, b in enumerate(stream.feed(_lines(200), 0.0, WALL)):
            b.id = i
            dispatcher.submit(b)
        assert dispatcher.wait_idle(10.0)
        assert dispatcher.in_flight == 0 and spare_bytes() > before
        assert dispatcher.room() == capacity - spare_bytes()
        assert dispatcher.charged == spare_bytes()  # what llmtail_buffer_bytes shows
    finally:
        dispatcher.stop(0.0)


@pytest.mark.usefixtures("spare_limit")
def test_a_full_bound_of_batches_coming_back_is_kept_and_the_reader_keeps_its_room() -> None:
    """With the agent's numbers (build_dispatcher): a bound's worth of batches sent and
    acknowledged all come back as spares (none freed, so the next batches reuse mapped pages),
    and with nothing in flight the reader still has room to read into them."""
    gc.collect()  # earlier tests' Streams and kept lz4 buffers share the process-wide limit
    _core.lz4_release_idle()
    _core.lz4_release_idle()
    s = settings("loggroup", max_bytes=160 << 10)  # eight of them fill the smallest bound
    stream = open_stream(s, parser(s), "k", "/var/log/app.log", 0, "AB", 0)
    batches: list[SealedBatch] = []
    lines = _lines(9000).splitlines(keepends=True)
    while len(batches) < 8:  # one Stream keeps up to eight; a piece seals at most one
        piece, lines = b"".join(lines[:100]), lines[100:]
        batches += stream.feed(piece, 0.0, WALL)
    assert len(batches) == 8
    bound = sum(b.memory for b in batches)
    encoded = sum(len(b.data) for b in batches)
    config = parse_config({"max_in_flight_bytes": bound, "output": {"type": "stdout"}})
    dispatcher = build_dispatcher(config, _Delivers())
    try:
        before = spare_bytes()
        for i, b in enumerate(batches):
            b.id = i
            dispatcher.submit(b)
        del b
        batches.clear()  # the senders hold the only references now
        assert dispatcher.wait_idle(10.0)
        assert dispatcher.in_flight == 0
        assert spare_bytes() - before >= encoded  # all eight kept
        assert dispatcher.room() > 0
        assert dispatcher.charged == spare_bytes()
    finally:
        dispatcher.stop(0.0)
