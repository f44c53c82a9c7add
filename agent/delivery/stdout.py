"""The `stdout` output: NDJSON on standard output, for debugging and for piping into tools.

Broken pipe (the reader exited, as in `llmtail run | head`): there is nowhere left to deliver,
so this and every later send end ABORTED. ABORTED keeps offsets where they are, so nothing is
lost: the next run prints those records again. The pipeline should treat it as a reason to stop.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from typing import BinaryIO

from llmtail.agent.config import StdoutOutput
from llmtail.agent.delivery.lines import LineSink, TargetGoneError
from llmtail.agent.engine.stream import Encoded


class _Stream:
    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def write(self, data: Encoded) -> None:
        try:
            self._stream.write(data)
            self._stream.flush()
        except BrokenPipeError:
            self._silence()
            raise TargetGoneError("the reader of standard output went away (broken pipe)") from None

    def close(self) -> None:
        # Nothing buffered can reach a reader that is gone (or a stream already closed).
        with contextlib.suppress(BrokenPipeError, ValueError):
            self._stream.flush()

    def _silence(self) -> None:
        # Python flushes stdout again at exit and would print a BrokenPipeError traceback; point
        # the descriptor at /dev/null, as the Python docs advise for SIGPIPE handling.
        try:
            fd = self._stream.fileno()
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, fd)
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass


class StdoutSink(LineSink):
    """Writes each batch as NDJSON lines and flushes; DELIVERED once the write returned."""

    def __init__(
        self,
        config: StdoutOutput,
        *,
        stream: BinaryIO | None = None,
        initial_backoff: float = 0.1,
        max_backoff: float = 30.0,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        super().__init__(
            _Stream(stream if stream is not None else sys.stdout.buffer),
            "stdout output",
            initial_backoff=initial_backoff,
            max_backoff=max_backoff,
            on_retry=on_retry,
        )
