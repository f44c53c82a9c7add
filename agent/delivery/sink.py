"""Outputs. Each sink delivers whole batches and says how each one ended."""

from __future__ import annotations

import enum
from typing import Protocol

from agent.engine.events import Batch


class Outcome(enum.Enum):
    """How `Sink.send` ended for one batch.

    DELIVERED and REJECTED are final: the ack tracker may move offsets past the batch.
    REJECTED means the destination refused the data for good (it is counted and logged loudly).
    ABORTED is not final: the agent is shutting down and the batch was not confirmed, so its
    offsets must stay where they are and the records are read again on the next start.
    """

    DELIVERED = "delivered"
    REJECTED = "rejected"
    ABORTED = "aborted"


class Sink(Protocol):
    """Where batches go. `send` may be called from several threads at once."""

    def send(self, batch: Batch) -> Outcome:
        """Deliver the batch; retries are the sink's job. Returns only when the outcome is known."""
        ...

    def abort(self) -> None:
        """Make sends in progress and future sends give up promptly with ABORTED (shutdown)."""
        ...

    def close(self) -> None:
        """Release connections and files after the last send returned."""
        ...
