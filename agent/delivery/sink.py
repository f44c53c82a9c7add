"""Outputs. Each sink delivers whole batches and says how each one ended."""

from __future__ import annotations

from typing import Protocol

from llmtail.agent.engine.outcome import Outcome
from llmtail.agent.engine.stream import SealedBatch

__all__ = ["Outcome", "Sink"]


class Sink(Protocol):
    """Where batches go. `send` may be called from several threads at once."""

    def send(self, batch: SealedBatch) -> Outcome:
        """Deliver the batch; retries are the sink's job. Returns only when the outcome is known."""
        ...

    def state(self) -> str:
        """`delivering`, `retrying` (transient failures) or `held` (needs a fix: keys, a
        missing Logstore, the clock): for `llmtail_output_state` and `/ready`."""
        ...

    def abort(self) -> None:
        """Make sends in progress and future sends give up promptly with ABORTED (shutdown)."""
        ...

    def close(self) -> None:
        """Release connections and files after the last send returned."""
        ...
