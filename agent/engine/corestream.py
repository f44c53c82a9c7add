"""The compiled core's Stream (`llmtail._core`, core/) as an agent.engine.stream.Stream.

The core frames, parses, masks, encodes and aggregates in Rust and hands back each sealed batch's
fields as a `SealedBatch`; its `llm` is the core's own `llmtail._core.LlmAggregate`, merged into
the totals in Rust and read as Python values only when someone looks (`snapshot()`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmtail.agent.engine.stream import Encoded, SealedBatch, Stream, StreamSettings

try:
    from llmtail import _core
except ImportError:  # not built: `pip install -e .` compiles it (needs a Rust toolchain)
    _core = None  # type: ignore[assignment]


class CoreUnavailableError(ValueError):
    """`engine: core` cannot serve these settings; the text says what to do instead."""


def parser(settings: StreamSettings) -> Any:
    """The core's compiled parser of `settings.parser`, for every Stream of that input (one per
    Stream would cost ~80 KiB per open file). Raises CoreUnavailableError, or the core's own
    PatternError/ValueError, for settings it cannot compile."""
    if _core is None:
        raise CoreUnavailableError(
            "engine: core needs the compiled core (pip install -e . with a Rust toolchain); "
            "or set engine: python"
        )
    return _core.Parser(settings.parser)


def check(settings: StreamSettings, compiled: Any) -> None:
    """Raises CoreUnavailableError, or the core's own ValueError, for settings the core cannot
    run (called once per input when the engine is built, not per file)."""
    try:
        _core.Stream(settings, "", "", 0, "", 0, parser=compiled)
    except ValueError as exc:
        if str(exc).startswith("engine: core"):  # a mask rule the core has no equivalent for
            raise CoreUnavailableError(str(exc)) from None
        raise


def open_stream(
    settings: StreamSettings,
    compiled: Any,
    key: str,
    path: str,
    offset: int,
    pack_prefix: str,
    pack_seq: int,
) -> Stream:
    """The core's Stream of one file read, on the input's `parser(settings)`; its batches come
    back as SealedBatch."""
    if _core is None:
        raise CoreUnavailableError("the compiled core is not built")
    stream: Stream = _core.Stream(
        settings, key, path, offset, pack_prefix, pack_seq, make=SealedBatch, parser=compiled
    )
    return stream


def limit_spares(max_bytes: int) -> None:
    """Caps what the core's Streams keep between batches: each keeps the buffer of a batch the
    output let go of, for its next batch (pages already mapped, where a fresh buffer faults in
    every page); all of them together at most `max_bytes`, with the bytes written into the kept
    lz4 output buffers (`lz4_block`)."""
    if _core is not None:
        _core.set_spare_limit(max_bytes)


def spare_bytes() -> int:
    """Bytes the core's Streams and lz4 pool keep between batches now (counted in the in-flight
    bound)."""
    return _core.spare_bytes() if _core is not None else 0


def release_idle_lz4() -> int:
    """Frees the core's kept lz4 output buffers if no body was compressed since the last call
    (the modes' housekeeping calls it once a second: an agent with nothing to send keeps
    none); returns how many were freed."""
    return _core.lz4_release_idle() if _core is not None else 0


def lz4_block(senders: int) -> Callable[[Encoded], Encoded] | None:
    """The core's lz4 (None without the core): the same blocks as python-lz4, compressed
    without the GIL into an output buffer kept from block to block, where python-lz4 mallocs
    a fresh one per call whose pages all fault in (core/src/lz4.rs). At most `senders` buffers
    are kept (each sender holds one body at a time); the bytes written into them count with
    the Streams' spares, in the in-flight bound."""
    if _core is None:
        return None
    _core.set_lz4_spares(senders)
    compress: Callable[[Encoded], Encoded] = _core.lz4_block
    return compress
