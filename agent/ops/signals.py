"""Signals that arrive while `llmtail run` starts up.

Importing the agent and reading its config takes a good part of a second. Until the daemon
installs its handlers, SIGHUP (systemd's reload, a closed terminal) would kill the process by
its default action, and SIGTERM would skip the orderly shutdown. So the very first thing
`llmtail run` does is `install_early()`: the signals are recorded, and the daemon later
`adopt`s them, which installs its own handler and replays to it what arrived meanwhile (a stop
stops it before anything is read; a reload re-reads the config, which is harmless).

A second SIGTERM or SIGINT while still starting exits at once (status 128 + signal), for a start
that hangs (a config on a stalled network mount) and an impatient operator.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from types import FrameType

HANDLED = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

Handler = Callable[[int, FrameType | None], object]


class EarlySignals:
    """Records HANDLED signals until a handler adopts them."""

    def __init__(self) -> None:
        self._received: list[int] = []

    @property
    def received(self) -> tuple[int, ...]:
        return tuple(self._received)

    def install(self) -> EarlySignals:
        for handled in HANDLED:
            signal.signal(handled, self._record)
        return self

    def adopt(self, handler: Handler) -> None:
        """Install `handler` for HANDLED signals and give it those received so far, in order."""
        for handled in HANDLED:
            signal.signal(handled, handler)
        # From here on no signal reaches _record, so the list is complete.
        received, self._received = self._received, []
        for signum in received:
            handler(signum, None)

    def _record(self, signum: int, _frame: FrameType | None) -> None:
        stopping = signum != signal.SIGHUP
        if stopping and any(s != signal.SIGHUP for s in self._received):
            raise SystemExit(128 + signum)
        self._received.append(signum)


_early: EarlySignals | None = None


def install_early() -> EarlySignals:
    """Record HANDLED signals from now on, until `take_early().adopt(...)`."""
    global _early  # noqa: PLW0603 - signal dispositions are process-wide state anyway
    _early = EarlySignals().install()
    return _early


def take_early() -> EarlySignals | None:
    """The recorder `install_early` put in place (once), or None when it was not called."""
    global _early
    early, _early = _early, None
    return early
