"""How a batch's delivery ended: what the ledger needs to know to move an offset."""

from __future__ import annotations

import enum


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
