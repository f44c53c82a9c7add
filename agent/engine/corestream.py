"""The compiled core's Stream (`llmtail._core`, core/) as an agent.engine.stream.Stream.

The core frames, parses, masks, encodes and aggregates in Rust and hands back each sealed batch's
fields; this module only turns them into the engine's own types: a `SealedBatch`, whose `llm`
is an `LlmAggregate` built from the flat columns the core returns (nothing per record).
"""

from __future__ import annotations

from functools import partial
from typing import Any

from llmtail.agent.engine.llm_aggregate import LabelKey, LlmAggregate
from llmtail.agent.engine.stream import SealedBatch, Stream, StreamSettings

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
    make = partial(_batch, settings.max_label_sets)
    stream: Stream = _core.Stream(
        settings, key, path, offset, pack_prefix, pack_seq, make=make, parser=compiled
    )
    return stream


def _batch(max_label_sets: int, *, llm: Any, **fields: Any) -> SealedBatch:
    return SealedBatch(llm=None if llm is None else aggregate(llm, max_label_sets), **fields)


def aggregate(columns: Any, max_label_sets: int) -> LlmAggregate:
    """The LlmAggregate of the core's flat columns (core/src/lib.rs says their order)."""
    (keys, calls, inp, out, total, ms, dur_b, in_b, out_b), rest = columns
    minutes, feedback, dropped_calls, dropped_minutes = rest
    label_keys: list[LabelKey] = [tuple(k) for k in keys]
    return LlmAggregate(
        max_label_sets=max_label_sets,
        keys=label_keys,
        calls=calls,
        input_tokens=inp,
        output_tokens=out,
        total_tokens=total,
        duration_ms=ms,
        duration_buckets=dur_b,
        input_buckets=in_b,
        output_buckets=out_b,
        minutes={(i, minute): [n, tokens] for i, minute, n, tokens in minutes},
        feedback=dict(feedback),
        dropped_calls=dropped_calls,
        dropped_minutes=dropped_minutes,
    )
