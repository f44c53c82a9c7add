"""`llmtail run`: the tailing daemon's main loop.

One thread reads: it polls the watcher for bytes, turns them into events, cuts batches and hands
them to the dispatcher's sender threads. Acknowledgements come back through the ack tracker and
become checkpoints here, at an interval and at shutdown. Reading stops while the dispatcher has
no room (backpressure: the files are the buffer).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from types import FrameType
from typing import Any

from agent.acks import AckTracker
from agent.batcher import Batcher
from agent.checkpoint import Checkpointer, CheckpointError, SavedPosition
from agent.config import Config, ConfigError
from agent.dispatch import Dispatcher, raw_budget
from agent.events import Batch, Event
from agent.ingest import Ingest
from agent.llm_aggregate import LlmAggregate
from agent.logsetup import setup_logging
from agent.metrics import AgentMetrics
from agent.notify import Notifier
from agent.sinks import Outcome
from agent.watcher import Opened, Released, Resume, Rotated, Truncated, Watcher

log = logging.getLogger(__name__)

READ_BUDGET = 1 << 20  # file bytes per loop turn: timers stay responsive, and one turn's
# parsed records (about 12x the bytes) never overshoot the in-flight bound by much
# Short, so that a crash re-sends little: a save with nothing new committed costs no I/O.
CHECKPOINT_INTERVAL = 0.2
STATUS_INTERVAL = 10.0


@dataclass(slots=True)
class _Released:
    """A file let go whose last records may still be in flight; checkpointed until they are."""

    path: str
    end: int
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
    """Owns the reading loop; built by `agent.pipeline.run_daemon`."""

    def __init__(
        self,
        config: Config,
        ingest_factory: Callable[[Config], Ingest],
        dispatcher: Dispatcher,
        acks: AckTracker,
        checkpointer: Checkpointer,
        metrics: AgentMetrics,
        notifier: Notifier,
        *,
        saved: dict[str, SavedPosition],
        first_start: bool,
        config_loader: Callable[[], Config] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """`saved` is the checkpoint as loaded; `first_start`: there was none at all, so
        `start_at` applies to the files found by the first scan."""
        self._config = config
        self._ingest_factory = ingest_factory
        self._ingest = ingest_factory(config)
        self._dispatcher = dispatcher
        self._acks = acks
        self._checkpointer = checkpointer
        self._metrics = metrics
        # Kept across turns (numbers reset after each hand-over) so label sets are looked up,
        # not rebuilt, for each record; bounded by metrics.max_label_sets like the metrics.
        self._llm = LlmAggregate(config.metrics.max_label_sets)
        self._notifier = notifier
        self._config_loader = config_loader
        self._clock = clock
        self._stop = threading.Event()
        self._failed = False
        self._reload = threading.Event()
        self._batcher = self._new_batcher(config)
        self._base: dict[str, int] = {}  # where reading of a key started (its floor)
        self._released: dict[str, _Released] = {}
        self._last_delivery: float | None = None
        self._records_out = 0
        self._rate = 0.0
        self.last_error = LastError()
        self._started_at = time.time()
        self._identities: dict[str, dict[str, str | int]] = {}
        self._files_view: list[dict[str, Any]] = []
        self._watcher = self._new_watcher(config, saved, first_start=first_start)

    # -- control -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGHUP, self._on_signal)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            self._reload.set()
        else:
            self._stop.set()

    def on_batch_done(self, batch: Batch, outcome: Outcome, seconds: float) -> None:
        """Called from sender threads when a batch reached its outcome."""
        self._metrics.batch_finished(outcome.value, len(batch.events), batch.nbytes, seconds)
        if outcome is Outcome.DELIVERED:
            self._last_delivery = time.time()
            self._records_out += len(batch.events)
        elif outcome is Outcome.ABORTED and not self._stop.is_set():
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
            "watching %s: %d files open",
            ", ".join(p for i in self._config.inputs for p in i.paths),
            len(files),
        )
        self._notifier.ready(f"watching {len(files)} files")
        next_checkpoint = next_status = self._clock()
        out_before, rate_since = self._records_out, self._clock()
        while not self._stop.is_set():
            now = self._clock()
            if self._reload.is_set():
                self._reload.clear()
                self._apply_reload()
            read = self._turn(now)
            if now >= next_checkpoint:
                self._observe()
                next_checkpoint = now + CHECKPOINT_INTERVAL
            if now >= next_status:
                elapsed = max(now - rate_since, 1e-9)
                self._rate = (self._records_out - out_before) / elapsed
                out_before, rate_since = self._records_out, now
                self._notifier.status(self.status_line())
                next_status = now + STATUS_INTERVAL
            self._notifier.ping_if_due(now)
            if read < READ_BUDGET:
                self._stop.wait(self._config.tail.poll_interval)
        return self._shutdown()

    def _turn(self, now: float) -> int:
        """One pass: notices, new bytes, idle flushes, due batches. Returns bytes read."""
        budget = min(raw_budget(self._dispatcher.room()), READ_BUDGET)
        chunks = self._watcher.poll(now, budget)
        for notice in self._watcher.notices():
            self._on_notice(notice)
        read = 0
        lines = 0
        for chunk in chunks:
            read += len(chunk.data)
            lines += chunk.data.count(b"\n")
            self._emit(self._ingest.feed(chunk.key, chunk.data, now), now)
        if read:
            self._metrics.bytes_read.inc(read)
            self._metrics.lines_read.inc(lines)
        tail = self._config.tail
        caught_up = self._caught_up
        flushed = self._ingest.due(now, tail.partial_line_flush, tail.multiline_flush, caught_up)
        self._emit(flushed, now)
        for batch in self._batcher.due(now):
            self._dispatcher.submit(batch)
        self._drop_settled_releases()
        return read

    def _emit(self, events: Sequence[Event], now: float) -> None:
        if not events:
            return
        kinds: dict[str, int] = {}
        errors = 0
        llm = self._llm
        push, submit = self._batcher.push, self._dispatcher.submit
        for event in events:
            fields = event.record.fields
            kind = str(fields.get("event", "raw"))
            kinds[kind] = kinds.get(kind, 0) + 1
            if "parse_error" in fields:
                errors += 1
            elif kind in {"llm_call", "feedback"}:
                llm.add(fields, event.record.time)
            for batch in push(event, now):
                submit(batch)
        for kind, n in kinds.items():
            self._metrics.records.labels(kind).inc(n)
        if errors:
            self._metrics.parse_errors.inc(errors)
        if llm.keys or llm.feedback:
            self._metrics.count_sealed(llm)  # each event is emitted once: a retry never recounts
            llm.reset()

    def _on_notice(self, notice: Opened | Truncated | Rotated | Released) -> None:
        now = self._clock()
        if isinstance(notice, Opened):
            self._ingest.open(notice.key, notice.path, notice.offset, notice.input_index)
            self._base[notice.key] = notice.offset
            self._released.pop(notice.key, None)
            log.info("reading %s from offset %d", notice.path, notice.offset)
        elif isinstance(notice, Truncated):
            # copytruncate: what the old content still holds is shipped, then the file is a
            # new stream from 0. Open batches are cut first so none mixes the two contents.
            self._metrics.truncations.inc()
            log.warning("%s was truncated; reading it again from the start", notice.path)
            self._emit(self._ingest.finish(notice.key), now)
            for batch in self._batcher.drain(notice.key):
                self._dispatcher.submit(batch)
            self._acks.forget(notice.key)
            input_index = self._ingest_input(notice.key)
            self._ingest.open(notice.key, notice.path, 0, input_index)
            self._base[notice.key] = 0
        elif isinstance(notice, Rotated):
            self._metrics.rotations.inc()
            where = notice.new_path or "(no longer under a watched path)"
            log.info("rotated: %s is now %s; reading it to its end", notice.old_path, where)
            self._ingest.rename(notice.key, notice.new_path or notice.old_path)
        elif isinstance(notice, Released):
            self._emit(self._ingest.finish(notice.key), now)
            identity = self._identities.pop(notice.key, {})
            self._released[notice.key] = _Released(notice.path, notice.offset, identity)
            log.info("finished %s at offset %d", notice.path, notice.offset)

    def _caught_up(self, key: str) -> bool:
        return self._watcher.idle_since(key) is not None

    def _ingest_input(self, key: str) -> int:
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
        committed = self._acks.committed()
        positions: dict[str, SavedPosition] = {}
        view: list[dict[str, Any]] = []
        for f in self._watcher.files():
            offset = committed.get(f.key, self._base.get(f.key, f.offset))
            identity = f.identity.to_dict()
            self._identities[f.key] = identity
            positions[f.key] = SavedPosition(f.key, f.path, offset, identity)
            view.append({"path": f.path, "offset": offset, "size": f.size, "input": f.input_index})
        for key, gone in self._released.items():
            offset = committed.get(key, self._base.get(key, 0))
            positions[key] = SavedPosition(key, gone.path, offset, gone.identity)
        return positions, view

    def _observe(self) -> None:
        """Checkpoint, gauges and the status view; main thread only (the watcher is not shared)."""
        positions, view = self._look()
        try:
            self._checkpointer.save(positions)
        except CheckpointError as exc:  # retried at the next interval; offsets only lag
            log.error("%s", exc)
        self._metrics.buffer_bytes.set(self._dispatcher.in_flight)
        self._metrics.files_watched.set(len(view))
        behind: dict[int, int] = {}  # per input: a label per rotated path would explode
        for f in view:
            behind[f["input"]] = behind.get(f["input"], 0) + max(0, f["size"] - f["offset"])
        self._metrics.set_bytes_behind(behind)
        self._files_view = view  # replaced whole: the metrics thread reads it without a lock

    def _drop_settled_releases(self) -> None:
        if not self._released:
            return
        committed = self._acks.committed()
        settled = [
            key
            for key, gone in self._released.items()
            if committed.get(key, self._base.get(key, 0)) >= gone.end
        ]
        for key in settled:
            del self._released[key]
            self._base.pop(key, None)
            self._acks.forget(key)

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
        for batch in self._batcher.drain():
            self._dispatcher.submit(batch)
        self._dispatcher.wait_idle(self._config.shutdown_timeout)
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
        self._ingest = self._ingest_factory(self._config)
        self._batcher = self._new_batcher(self._config)
        self._base.clear()
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
        # Parsed records are delivered; a pending multi-line record or partial line is not:
        # its offset stays uncommitted and it is read again on the next start.
        for batch in self._batcher.drain():
            self._dispatcher.submit(batch)
        drained = self._dispatcher.stop(deadline)
        self._observe()
        self._watcher.close()
        stats = self._acks.stats()
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
            "records_per_second": round(self._rate, 1),
            "last_delivery_at": self._last_delivery,
            "last_error": error,
            "files": self._files_view,
        }

    def status_line(self) -> str:
        n = len(self._files_view)
        line = f"{n} files, {self._rate:.0f} records/s"
        if self.last_error.message:
            line += f"; last error: {self.last_error.message[:200]}"
        return line

    # -- construction helpers ------------------------------------------------------------

    def _new_batcher(self, config: Config) -> Batcher:
        b = config.batch
        return Batcher(b.max_records, b.max_bytes, b.linger)

    def _new_watcher(
        self, config: Config, saved: dict[str, SavedPosition], *, first_start: bool
    ) -> Watcher:
        self._identities.clear()
        positions = {
            key: resume
            for key, p in saved.items()
            if (resume := Resume.from_saved(key, p.path, p.offset, p.identity)) is not None
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
