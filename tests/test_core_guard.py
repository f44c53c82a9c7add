"""The core's promises around the work on a chunk (issue 10): other Python threads run while it
works (the GIL is released), and a panic that escapes anyway becomes a Python exception naming
the file and offset, never a crash of the agent."""

from __future__ import annotations

import gc
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtail import _core
from llmtail.agent.engine.stream import StreamSettings
from llmtail.parsers.record import ParserSettings

# Enough records that one feed takes a while; feeds are repeated until the other thread has
# been seen running during one, up to this many (never reached unless the GIL is held).
_RECORD = (
    b"2026-11-30 04:38:57.716 INFO  [traceId:e8e25d940ed90475] [c.a.c.d.DashScopeClient#"
    b"chat():42] [main] - chat-app,summary,qwen-max,ws-19,a170b338-3926-3059-f28c-105d1fb17c23,"
    b"200,19183,582,492,1074,,\n"
)
_CHUNK = _RECORD * 8192  # ~1.7 MB
_MAX_FEEDS = 300


def test_other_threads_run_python_while_the_core_works_on_a_chunk() -> None:
    """A second thread reads `stream.offset` in a loop. While `feed` works the Stream is
    mutably borrowed, so that read raises RuntimeError ("Already mutably borrowed"): seeing it
    proves the thread ran Python during a feed. Were the GIL held through `feed`, no other
    thread could run while the borrow exists, and the test could not pass: the batches come
    back as plain dicts (no `make` callback, so none of our Python runs inside the call) and
    the garbage collector is off (no finalizer runs either)."""
    stream = _core.Stream(
        StreamSettings(parser=ParserSettings(timezone="UTC"), max_records=1 << 20),
        "k",
        "/var/log/app.log",
        0,
        "AB",
        0,
    )
    seen_busy = threading.Event()
    done = threading.Event()

    def poke() -> None:
        while not done.is_set():
            try:
                _ = stream.offset
            except RuntimeError:
                seen_busy.set()
                return

    other = threading.Thread(target=poke)
    feeds = 0
    gc.disable()
    try:
        other.start()
        while feeds < _MAX_FEEDS and not seen_busy.is_set():
            stream.feed(_CHUNK, 0.0, 0.0)
            feeds += 1
    finally:
        done.set()
        other.join()
        gc.enable()
    assert seen_busy.is_set(), f"no other thread ran Python during {feeds} feeds"
    assert stream.offset == feeds * len(_CHUNK)  # and the feeds themselves were whole


def test_a_panic_becomes_an_exception_naming_the_file_and_offset() -> None:
    """`_panic_in_guard` panics inside the wrapper every Stream call runs in (no input makes
    the core itself panic); the process carries on, and so does the core."""
    with pytest.raises(RuntimeError) as caught:
        _core._panic_in_guard("/var/log/app.log", 123456)
    assert str(caught.value) == (
        "internal error in the compiled core reading /var/log/app.log at offset 123456"
    )
    _core._panic_in_guard("/var/log/app.log", 2**64 - 1)  # the same wrapper, no panic
    stream = _core.Stream(
        StreamSettings(parser=ParserSettings(timezone="UTC")), "k", "p", 0, "A", 0
    )
    stream.feed(_RECORD, 0.0, 0.0)
    assert sum(b["records"] for b in stream.drain(0.0)) == 1


@given(st.binary(max_size=4096))
def test_lines_are_counted_as_bytes_count_them(data: bytes) -> None:
    assert _core.count_lines(data) == data.count(b"\n")
