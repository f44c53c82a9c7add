"""`llmtail run`: the tailing daemon's main loop.

One thread reads: it polls the watcher for bytes and hands them to the flow (streams -> sealed
batches -> senders). Outcomes come back through the completion queue, drained on this thread,
and become checkpoints at an interval and at shutdown. Reading stops while the senders hold
`max_in_flight_bytes` (backpressure: the files are the buffer).
"""

from __future__ import annotations

import faulthandler
import logging
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType
from typing import Any

from llmtail.agent.config import Config, ConfigError
from llmtail.agent.delivery.dispatch import Done
from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.engine.corestream import release_idle_lz4
from llmtail.agent.engine.stream import SealedBatch
from llmtail.agent.modes.flow import Flow, OnDone, OnSealed
from llmtail.agent.ops.logsetup import setup_logging
from llmtail.agent.ops.malloc import Trimmer
from llmtail.agent.ops.metrics import AgentMetrics
from llmtail.agent.ops.notify import Notifier
from llmtail.agent.ops.signals import SignalFlag, take_early
from llmtail.agent.ops.throughput import Throughput
from llmtail.agent.reading.newlines import count_lines
from llmtail.agent.reading.notices import Opened, Released, Resume, Rotated, Truncated
from llmtail.agent.reading.watcher import Watcher
from llmtail.agent.state.checkpoint import Checkpointer, CheckpointError, SavedPosition

log = logging.getLogger(__name__)

READ_BUDGET = 1 << 20  # file bytes per loop turn: timers stay responsive, and one turn's
# batches never overshoot the in-flight bound by much
# Short, so that a crash re-sends little: a save with nothing new committed costs no I/O.
CHECKPOINT_INTERVAL = 0.2
# With nothing read, acknowledged or noticed since the last look, the positions cannot have
# moved: the look (checkpoint, gauges, status view), 45% of an idle agent's CPU at one every
# turn, is then taken once a second, for the gauges that change on their own (output state).
IDLE_OBSERVE_INTERVAL = 1.0
STATUS_INTERVAL = 10.0

FlowFactory = Callable[[Config, OnSealed, OnDone], Flow]


@dataclass(slots=True)
class _Released:
    """A file let go whose last records may still be in flight; checkpointed until they are."""

    path: str
    identity: dict[str, str | int]


class LastError(logging.Handler):
    """Remembers the latest warning or error, for `/status` and the systemd STATUS line."""

    def __init__(self) -> None:
        super().__init__(level=logging.WARNING)
        self.at: float | None = None
        self.message: str | None = None

    def emit(self, record: logging.LogRecord) -> None:
        self.at = record.created
        self.message = record.getMessage()


class Daemon:
    """Owns the reading loop; built by `agent.modes.pipeline.run_daemon`."""

    def __init__(
        self,
        config: Config,
        flow_factory: FlowFactory,
        checkpointer: Checkpointer,
        metrics: AgentMetrics,
        notifier: Notifier,
        *,
        saved: dict[str, SavedPosition],
        first_start: bool,
        config_loader: Callable[[], Config] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        """`saved` is the checkpoint as loaded; `first_start`: there was none at all, so
        `start_at` applies to the files found by the first scan. `flow_factory` builds the
        engine side for a config (again after a reload), calling back this daemon's
        `on_sealed` and `on_done`."""
        self._config = config
        self._flow_factory = flow_factory
        self._flow = flow_factory(config, self.on_sealed, self.on_done)
        self._checkpointer = checkpointer
        self._metrics = metrics
        self._notifier = notifier
        self._config_loader = config_loader
        self._clock = clock
        # freed record and batch buffers back to the kernel, unused lz4 buffers first
        self._trim = Trimmer(idle=release_idle_lz4)
        self._moved = True  # read, acknowledged or noticed anything since the last `_observe`
        self._wall = wall_clock
        self._stop = SignalFlag()
        self._failed = False
        self._reload = SignalFlag()
        self._finished = SignalFlag()  # raised by a sender thread as a batch finishes
        self._released: dict[str, _Released] = {}
        self._last_delivery: float | None = None
        self._output_state = "delivering"
        self._throughput = Throughput()
        self.last_error = LastError()
        self._started_at = time.time()
        self._identities: dict[str, dict[str, str | int]] = {}
        self._files_view: list[dict[str, Any]] = []
        self._watcher = self._new_watcher(config, saved, first_start=first_start)
        self._flow.dispatcher.on_finish = self._finished.set  # one dispatcher for every flow

    # -- control -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        # `kill -USR1` writes every thread's stack to stderr (the journal): a hung agent can
        # say where it hangs before it is restarted. Code locations only, never values.
        faulthandler.register(signal.SIGUSR1, all_threads=True)
        early = take_early()  # `llmtail run` recorded signals from its first instruction
        if early is not None:
            early.adopt(self._on_signal)
            return
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)

    def close(self) -> None:
        """Release the flags' pipes; a signal arriving after this is ignored."""
        self._stop.close()
        self._reload.close()
        self._finished.close()

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload.set()
        else:
            self._stop.set()

    def on_sealed(self, batch: SealedBatch) -> None:
        """Counted once, when the engine sealed the batch (never again on a retry)."""
        records = self._metrics.records
        for kind, n in batch.events.items():
            records.labels(kind).inc(n)
        if batch.parse_errors:
            self._metrics.parse_errors.inc(batch.parse_errors)
        if batch.llm is not None:
            self._metrics.count_sealed(batch.llm)
        for rule, n in batch.masked.items():
            self._metrics.masked.labels(rule).inc(n)

    def on_done(self, done: Done) -> None:
        """A batch reached its outcome (on this thread, through the completion queue)."""
        self._metrics.batch_finished(done.outcome.value, done.records, done.nbytes, done.seconds)
        if done.outcome is Outcome.DELIVERED:
            self._last_delivery = time.time()
            self._throughput.add(done.records)
        elif done.outcome is Outcome.ABORTED and not self._stop.is_set():
            # The output gave up outside a shutdown (stdout closed, a sink bug): reading on
            # would only pile up batches that can never commit. Stop; the supervisor restarts.
            log.error("the output stopped accepting records; shutting down")
            self._failed = True
            self._stop.set()

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Read and ship until asked to stop; returns the process exit status."""
        self._turn(self._clock())  # the first scan: READY means the inputs are watched
        files = self._watcher.files()
        log.info(
            "watching %s: %d files open (engine: %s)",
            ", ".join(p for i in self._config.inputs for p in i.paths),
            len(files),
            self._config.engine,  # which engine read what, when two are compared on one host
        )
        self._notifier.ready(f"watching {len(files)} files")
        next_checkpoint = next_status = next_idle = self._clock()
        while not self._stop.is_set():
            now = self._clock()
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload()
            read, budget = self._turn(now)
            if now >= next_checkpoint and (self._moved or now >= next_idle):
                self._moved = False
                self._observe()
                next_checkpoint = now + CHECKPOINT_INTERVAL
                next_idle = now + IDLE_OBSERVE_INTERVAL
            self._trim(now)
            if now >= next_status:
                self._notifier.status(self.status_line())
                next_status = now + STATUS_INTERVAL
            self._notifier.ping_if_due(now)
            self._pause(read, budget)
        return self._shutdown()

    def _pause(self, read: int, budget: int) -> None:
        """Wait for what the next turn needs: new bytes, or room at the output.

        Short of its budget, the turn read every file to its end: nothing more until a poll
        finds them grown. Held to a smaller budget by the output, it waits until a full turn's
        room is back (or nothing is left in flight), woken as each batch finishes: sleeping a
        whole poll interval there left the reader and the output idle together, and a backlog
        was caught up at half the pace the output allows; reading on as soon as any room was
        back cut the reading into small turns (bench/README.md). A stop wakes either wait."""
        poll = self._config.tail.poll_interval
        if read < budget:
            self._stop.wait(poll)
            return
        if budget >= READ_BUDGET:
            return
        dispatcher = self._flow.dispatcher
        deadline = self._clock() + poll
        while not self._stop.is_set():
            self._finished.clear()  # before the look: a batch finishing after it raises it
            left = deadline - self._clock()
            if left <= 0 or not dispatcher.pending or dispatcher.room() >= READ_BUDGET:
                return
            SignalFlag.wait_any((self._stop, self._finished), left)

    def _turn(self, now: float) -> tuple[int, int]:
        """One pass: outcomes, notices, new bytes, idle flushes.

        Returns the bytes read and the most it was allowed to read (room at the output)."""
        flow = self._flow
        if flow.settle():
            self._moved = True
        budget = min(flow.dispatcher.room(), READ_BUDGET)
        chunks = self._watcher.poll(now, budget)
        for notice in self._watcher.notices():
            self._moved = True
            self._on_notice(notice)
        read = lines = 0
        wall = self._wall()
        for chunk in chunks:
            read += len(chunk.data)
            lines += count_lines(chunk.data)
            flow.feed(chunk.key, chunk.data, now, wall)
        if read:
            self._moved = True
            self._metrics.bytes_read.inc(read)
            self._metrics.lines_read.inc(lines)
        flow.due(now, wall, self._caught_up)
        flow.bound_unfinished(wall, self._caught_up)
        for key in flow.ledger.settled():
            self._released.pop(key, None)
        return read, budget

    def _on_notice(self, notice: Opened | Truncated | Rotated | Released) -> None:
        flow, wall = self._flow, self._wall()
        if isinstance(notice, Opened):
            flow.open(notice.key, notice.path, notice.offset, notice.input_index)
            self._released.pop(notice.key, None)
            log.info("reading %s from offset %d", notice.path, notice.offset)
        elif isinstance(notice, Truncated):
            self._metrics.truncations.inc()
            log.warning("%s was truncated; reading it again from the start", notice.path)
            flow.restart(notice.key, notice.path, self._input_of(notice.key), wall)
        elif isinstance(notice, Rotated):
            self._metrics.rotations.inc()
            where = notice.new_path or "(no longer under a watched path)"
            log.info("rotated: %s is now %s; reading it to its end", notice.old_path, where)
            flow.rename(notice.key, notice.new_path or notice.old_path)
        elif isinstance(notice, Released):
            flow.finish(notice.key, notice.offset, wall)
            identity = self._identities.pop(notice.key, {})
            if flow.ledger.position(notice.key) is not None:
                self._released[notice.key] = _Released(notice.path, identity)
            log.info("finished %s at offset %d", notice.path, notice.offset)

    def _caught_up(self, key: str) -> bool:
        return self._watcher.idle_since(key) is not None

    def _input_of(self, key: str) -> int:
        for f in self._watcher.files():
            if f.key == key:
                return f.input_index
        return 0

    # -- checkpoints ---------------------------------------------------------------------

    def positions(self) -> dict[str, SavedPosition]:
        """Committed offsets of every file still open or still owed an acknowledgement."""
        return self._look()[0]

    def _look(self) -> tuple[dict[str, SavedPosition], list[dict[str, Any]]]:
        """One pass over the files: checkpoint positions, and the per-file view for status."""
        ledger = self._flow.ledger
        positions: dict[str, SavedPosition] = {}
        view: list[dict[str, Any]] = []
        for f in self._watcher.files():
            offset = ledger.position(f.key)
            offset = f.offset if offset is None else offset
            identity = f.identity.to_dict()
            self._identities[f.key] = identity
            marker = self._watcher.marker(f.key, offset)
            positions[f.key] = SavedPosition(f.key, f.path, offset, identity, marker)
            view.append({"path": f.path, "offset": offset, "size": f.size, "input": f.input_index})
        for key, gone in self._released.items():
            offset = ledger.position(key)
            positions[key] = SavedPosition(key, gone.path, offset or 0, gone.identity)
        return positions, view

    def _observe(self) -> None:
        """Checkpoint, gauges and the status view; main thread only (the watcher is not shared)."""
        self._flow.settle()
        positions, view = self._look()
        try:
            self._checkpointer.save(positions)
        except CheckpointError as exc:  # retried at the next interval; offsets only lag
            log.error("%s", exc)
        self._metrics.buffer_bytes.set(self._flow.dispatcher.charged)
        self._output_state = self._flow.dispatcher.output_state()
        self._metrics.set_output_state(self._output_state)
        self._metrics.files_watched.set(len(view))
        behind: dict[int, int] = {}  # per input: a label per rotated path would explode
        for f in view:
            behind[f["input"]] = behind.get(f["input"], 0) + max(0, f["size"] - f["offset"])
        self._metrics.set_bytes_behind(behind)
        self._files_view = view  # replaced whole: the metrics thread reads it without a lock

    # -- reload and shutdown -------------------------------------------------------------

    def _apply_reload(self) -> None:
        if self._config_loader is None:
            return
        self._notifier.reloading()
        try:
            new = self._config_loader()
        except ConfigError as exc:
            log.error("reload refused, the running config stays: %s", exc)
            self._notifier.ready(self.status_line())
            return
        setup_logging(new.log_level)
        for key in ("output", "state_dir", "metrics", "max_in_flight_bytes"):
            if getattr(new, key) != getattr(self._config, key):
                log.warning("reload: %s changed; it takes effect after a restart", key)
        # Files rotated away or deleted are reachable only through the fds this watcher
        # holds: let them drain first (bounded), or their unread tails would be lost.
        deadline = self._clock() + self._config.shutdown_timeout
        while self._draining() and self._clock() < deadline and not self._stop.is_set():
            self._turn(self._clock())
            self._notifier.ping_if_due(self._clock())
            self._stop.wait(self._config.tail.poll_interval)
        # Deliver what was parsed, then resume every file from its committed offset under
        # the new inputs: nothing is read twice and nothing is skipped.
        self._flow.cut_all()
        self._flow.dispatcher.wait_idle(self._config.shutdown_timeout)
        self._flow.settle()
        saved = self.positions()
        self._watcher.close()
        self._config = new.model_copy(
            update={
                "output": self._config.output,
                "state_dir": self._config.state_dir,
                "metrics": self._config.metrics,
                "max_in_flight_bytes": self._config.max_in_flight_bytes,
            }
        )
        self._flow = self._flow_factory(self._config, self.on_sealed, self.on_done)
        self._released.clear()
        self._watcher = self._new_watcher(self._config, saved, first_start=False)
        log.info("reloaded: watching %s", ", ".join(p for i in new.inputs for p in i.paths))
        self._notifier.ready(self.status_line())

    def _draining(self) -> bool:
        return any(not f.followed for f in self._watcher.files())

    def _shutdown(self) -> int:
        deadline = self._clock() + self._config.shutdown_timeout
        self._notifier.stopping("delivering what is in flight")
        log.info(
            "stopping: delivering in-flight records (deadline %.0f s)",
            self._config.shutdown_timeout,
        )
        # Sealed records are delivered; a pending multi-line record or partial line is not:
        # its offset stays uncommitted and it is read again on the next start.
        self._flow.cut_all()
        drained = self._flow.dispatcher.stop(deadline)
        self._observe()
        self._watcher.close()
        stats = self._flow.ledger.stats()
        log.info(
            "stopped: %d records delivered, %d rejected%s",
            stats.delivered_records,
            stats.rejected_records,
            "" if drained else "; undelivered batches will be read again",
        )
        return 1 if self._failed else 0

    # -- status --------------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """The `/status` document; called from the metrics thread, so it reads snapshots only."""
        error = (
            {"at": self.last_error.at, "message": self.last_error.message}
            if self.last_error.message
            else None
        )
        return {
            "pid": os.getpid(),
            "started_at": self._started_at,
            "records_per_second": round(self._throughput.rate(), 1),
            "records_delivered": self._throughput.total,
            "last_delivery_at": self._last_delivery,
            "last_error": error,
            "files": self._files_view,
        }

    def ready(self) -> bool:
        """`/ready`: the output is delivering or retrying, not held until someone fixes it."""
        return self._output_state != "held"

    def status_line(self) -> str:
        n = len(self._files_view)
        line = f"{n} files, {self._throughput.rate():.0f} records/s"
        if self.last_error.message:
            line += f"; last error: {self.last_error.message[:200]}"
        return line

    # -- construction helpers ------------------------------------------------------------

    def _new_watcher(
        self, config: Config, saved: dict[str, SavedPosition], *, first_start: bool
    ) -> Watcher:
        self._identities.clear()
        positions = {
            key: resume
            for key, p in saved.items()
            if (resume := Resume.from_saved(key, p.path, p.offset, p.identity, p.marker))
            is not None
        }
        tail = config.tail
        return Watcher(
            config.inputs,
            positions,
            tail,
            first_start=first_start,
            rotate_wait=tail.rotate_wait,
            max_open=tail.max_open_files,
        )
