"""The core's lz4 blocks are what SLS (and python-lz4) decompress back to the LogGroup bytes.

`_core.lz4_block` compresses a batch's body with liblz4 into an output buffer kept from block to
block (core/src/lz4.rs), where python-lz4 mallocs a fresh one per call. Compressed bytes may
differ between lz4 implementations, so these tests compare what the blocks decompress to, with
python-lz4 (what the local Logstore and SLS's own decoder do), never the compressed bytes.
"""

from __future__ import annotations

import gc
import hashlib
import random
from collections.abc import Iterator

import lz4.block
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmtail.agent.engine.corestream import open_stream, parser, release_idle_lz4
from llmtail.agent.engine.stream import SealedBatch
from tests.agentproc import record_line
from tests.batches import settings as stream_settings

_core = pytest.importorskip("llmtail._core")

WALL = 1.8e9
# Sizes where liblz4 changes how it works (inputs under 64 KiB + 11 use 16-bit offsets; the
# last 12 bytes are always literals) and where an incompressible input nears the bound.
EDGES = [0, 1, 5, 12, 13, 255, 256, 4095, 65535, 65536, 65546, 65547, 65548, 300_000]


def bound(n: int) -> int:
    """LZ4_COMPRESSBOUND: the most bytes a block of n input bytes takes."""
    return n + n // 255 + 16


def incompressible(size: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(size)


def roundtrip(raw: bytes) -> bytes:
    block = _core.lz4_block(raw)
    assert len(block) <= bound(len(raw))
    out: bytes = lz4.block.decompress(block, uncompressed_size=len(raw))
    return out


@pytest.fixture
def spares() -> Iterator[None]:
    """The process-wide bounds on kept buffers, restored after the test."""
    yield
    _core.set_lz4_spares(4)
    _core.set_spare_limit(16 << 20)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=20_000))
def test_any_bytes_come_back_whole(raw: bytes) -> None:
    assert roundtrip(raw) == raw


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(EDGES), st.integers(-3, 3), st.integers(0, 2**32))
def test_incompressible_inputs_around_the_edges_come_back_whole(
    edge: int, delta: int, seed: int
) -> None:
    raw = incompressible(max(0, edge + delta), seed)
    assert roundtrip(raw) == raw


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(st.booleans(), st.integers(1, 5000), st.integers(0, 2**32)),
        max_size=12,
    )
)
def test_runs_of_text_and_noise_come_back_whole(parts: list[tuple[bool, int, int]]) -> None:
    """Compressible runs beside incompressible ones, in one block: matches reach back across
    noise, and a kept buffer that held a larger block is written over."""
    raw = b"".join(
        incompressible(n, seed) if noisy else record_line(seed % 1000 + 1)[: n % 300 + 1] * 8
        for noisy, n, seed in parts
    )
    assert roundtrip(raw) == raw


def test_the_empty_input_is_one_token_byte() -> None:
    assert bytes(_core.lz4_block(b"")) == lz4.block.compress(b"", store_size=False)
    assert lz4.block.decompress(_core.lz4_block(b""), uncompressed_size=0) == b""


def test_a_core_batch_compresses_from_its_own_buffer_to_its_loggroup_bytes() -> None:
    s = stream_settings("loggroup", max_bytes=64 * 1024)
    stream = open_stream(s, parser(s), "k", "/var/log/app.log", 0, "AB", 0)
    batches: list[SealedBatch] = stream.feed(
        b"".join(record_line(i) for i in range(1, 3000)), 0.0, WALL
    )
    assert len(batches) > 2
    for b in batches:
        assert type(b.data) is _core.BatchBytes
        block = _core.lz4_block(b.data)
        view = memoryview(block)
        assert view.readonly
        assert lz4.block.decompress(block, uncompressed_size=len(b.data)) == bytes(b.data)
        assert hashlib.md5(block).digest() == hashlib.md5(bytes(view)).digest()
        view.release()


def test_only_bytes_and_batch_buffers_are_taken() -> None:
    for other in ("text", bytearray(b"abc"), memoryview(b"abc"), None):
        with pytest.raises(TypeError):
            _core.lz4_block(other)


def test_kept_buffers_are_bounded_and_counted_with_the_spares(spares: None) -> None:
    _core.set_lz4_spares(0)
    base = _core.spare_bytes()
    assert _core.lz4_spares() == 0
    _core.set_lz4_spares(2)
    blocks = [_core.lz4_block(incompressible(50_000, i)) for i in range(5)]
    del blocks
    gc.collect()
    assert _core.lz4_spares() == 2
    # What they count is what was written into them, in the in-flight bound with the spares.
    assert _core.spare_bytes() - base >= 2 * 50_000
    _core.set_lz4_spares(0)
    assert _core.lz4_spares() == 0
    assert _core.spare_bytes() == base


def test_nothing_is_kept_beyond_the_spares_bound(spares: None) -> None:
    _core.set_lz4_spares(0)
    base = _core.spare_bytes()
    _core.set_spare_limit(base)  # no room left
    _core.set_lz4_spares(4)
    block = _core.lz4_block(incompressible(10_000, 1))
    del block
    gc.collect()
    assert _core.lz4_spares() == 0 and _core.spare_bytes() == base


def test_a_kept_buffer_written_over_gives_only_the_new_block(spares: None) -> None:
    _core.set_lz4_spares(1)
    big = _core.lz4_block(incompressible(200_000, 7))
    del big
    small = b"2025-07-09 14:23:24.748 INFO  short\n" * 3
    assert roundtrip(small) == small


def test_an_idle_agent_keeps_no_lz4_buffer(spares: None) -> None:
    """The housekeeping's call once a second frees the kept buffers once a whole interval went
    by without a block: at the first call after a block they stay, at the next they go."""
    _core.set_lz4_spares(0)
    base = _core.spare_bytes()
    _core.set_lz4_spares(2)
    release_idle_lz4()
    block = _core.lz4_block(incompressible(30_000, 3))
    del block
    assert _core.lz4_spares() == 1
    assert release_idle_lz4() == 0  # a block was made in this interval
    assert _core.lz4_spares() == 1
    assert release_idle_lz4() == 1
    assert _core.lz4_spares() == 0 and _core.spare_bytes() == base
