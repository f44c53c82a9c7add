"""Signals that arrive while `llmtail run` starts up.

Importing the agent and reading its config takes a good part of a second. Until the daemon
installs its handlers, SIGHUP (systemd's reload, a closed terminal) would kill the process by
its default action, and SIGTERM would skip the orderly shutdown. So the very first thing
`llmtail run` does is `install_early()`: the signals are recorded, and the daemon later
`adopt`s them, which installs its own handler and replays to it what arrived meanwhile (a stop
stops it before anything is read; a reload re-reads the config, which is harmless).

A second SIGTERM or SIGINT while still starting exits at once (status 128 + signal), for a start
that hangs (a config on a stalled network mount) and an impatient operator.

Once running, handlers only raise a `SignalFlag`, which takes no lock (see there why).
"""

from __future__ import annotations

import contextlib
import math
import os
import select
import signal
from collections.abc import Callable, Sequence
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


class SignalFlag:
    """A stop or reload request that a signal handler may raise (or any thread's news).

    A Python signal handler runs in the main thread between two of its bytecodes, possibly
    while that thread holds a lock. `threading.Event.set()` takes the Event's own lock, so a
    SIGTERM landing while the main loop is inside `Event.wait()` or `clear()` deadlocks the
    process for good (python/cpython#126434 describes the same for multiprocessing).
    `set()` here takes no lock: it raises a plain attribute and writes a byte to a pipe, which
    wakes `wait()` at once. `set()` may be called from a handler or from any thread.
    """

    def __init__(self) -> None:
        self._raised = False
        self._read, self._write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._poll = select.poll()  # not select(): no FD_SETSIZE limit on the pipe's number
        self._poll.register(self._read, select.POLLIN)

    def set(self) -> None:
        self._raised = True
        write = self._write
        if write < 0:  # closed: never write to a number that may belong to another file now
            return
        with contextlib.suppress(BlockingIOError):  # full: a wake-up is pending anyway
            os.write(write, b"!")

    def is_set(self) -> bool:
        return self._raised

    def clear(self) -> None:
        """Lower the flag, as its request is acted on: one raised while this runs may merge
        into that request; one raised after it stays raised."""
        self._raised = False
        with contextlib.suppress(BlockingIOError):
            while os.read(self._read, 512):
                pass

    def wait(self, timeout: float) -> bool:
        """Until the flag is raised or `timeout` seconds pass; returns whether it is raised."""
        if not self._raised:
            self._poll.poll(max(0, math.ceil(timeout * 1000)))
        return self._raised

    @staticmethod
    def wait_any(flags: Sequence[SignalFlag], timeout: float) -> None:
        """Until one of `flags` is raised (or was, and not cleared since) or `timeout` passes."""
        if any(f._raised for f in flags):
            return
        poll = select.poll()
        for f in flags:
            poll.register(f._read, select.POLLIN)
        poll.poll(max(0, math.ceil(timeout * 1000)))

    def close(self) -> None:
        """Free the pipe. A handler may still fire afterwards (its set() then writes
        nothing); another thread must be done with set() before this is called."""
        write, self._write = self._write, -1
        if write >= 0:
            os.close(write)
            self._poll.unregister(self._read)
            os.close(self._read)

    def __enter__(self) -> SignalFlag:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
