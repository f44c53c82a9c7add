"""The `sls` output: batches become LogGroups posted with PutLogs, retried until final.

Delivery trade-offs made here:
- Nothing gives up on its own by default: the files are the buffer, offsets stay put while a
  LogGroup is retried, and the reader stops when the in-flight bytes are full. So an outage or a
  missing Logstore holds data instead of losing it, loudly: one log line per change of state.
  `give_up_after` (seconds, off by default) turns a LogGroup that long undeliverable into
  REJECTED, for users who prefer a gap to a stall.
- Log times outside SLS's window [now - 7 d, now + 15 min] fail the whole request, so they are
  predicted before sending (with a margin) and handled by `time_policy`: `restamp` sends them at
  the current time with the original epoch seconds in the `original_time` field; `reject` drops
  them, counted and logged. A 400 "time is out of range" from the server (its clock differs)
  applies the same policy with a wider margin. A file never stalls on old records.
- Data the service refuses for good (a 400 other than the time window, a single log too large
  for a request) is REJECTED, counted and logged: retrying cannot change the answer.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from llmtail.agent.config import SlsOutput
from llmtail.agent.delivery.credential_sources import credentials_for
from llmtail.agent.delivery.credentials import CredentialsError, CredentialsSource
from llmtail.agent.delivery.retry import AdaptiveLimit, Failure, RetryPolicy, classify
from llmtail.agent.delivery.sink import Outcome
from llmtail.agent.delivery.sls_client import (
    Compress,
    SlsClient,
    SlsError,
    parse_endpoint,
)
from llmtail.agent.delivery.sls_group import (
    ORIGINAL_TIME_KEY,
    WIDE_WINDOW,
    Pending,
    TimeWindow,
)
from llmtail.agent.delivery.sls_health import Health, Tally
from llmtail.agent.engine.loggroup import (
    SerializedGroup,
    restamp_log,
    split_logs,
)
from llmtail.agent.engine.stream import SealedBatch

log = logging.getLogger(__name__)


@dataclass
class SlsStats:
    """Counters for metrics; `SlsSink.stats()` returns a copy."""

    requests: int = 0
    delivered_logs: int = 0
    delivered_groups: int = 0
    bytes_sent: int = 0  # raw (uncompressed) LogGroup bytes acknowledged
    retries: dict[str, int] = field(default_factory=dict)  # by Failure value
    rejected_logs: int = 0
    restamped_logs: int = 0
    last_error: str | None = None
    last_delivery: float | None = None  # wall-clock seconds
    concurrency_limit: int = 0  # requests allowed in flight now (shrinks on quota errors)


class SlsSink:
    """Posts each batch as one LogGroup (more when over the limits) to an SLS Logstore.

    `send` is called from `config.concurrency` sender threads; requests in flight are capped by
    an AIMD limit shared by them, which halves on quota errors and creeps back on success.
    """

    def __init__(
        self,
        config: SlsOutput,
        *,
        credentials: CredentialsSource | None = None,
        policy: RetryPolicy | None = None,
        window: TimeWindow | None = None,
        give_up_after: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        rand: Callable[[], float] = random.random,
        on_retry: Callable[[], None] | None = None,
        lz4: Compress | None = None,
    ) -> None:
        """Raises CredentialsError or EndpointError (one line each) on an unusable config.

        `on_retry` is called after each failed request that will be tried again (metrics, as
        for the file and stdout sinks); `stats()` has the details by reason. `lz4` compresses
        the bodies (python-lz4 unless given: the core's `lz4_block` when the agent runs on
        the core).
        """
        self._config = config
        self._lz4 = lz4
        self._credentials = credentials or credentials_for(config)
        self._endpoint = parse_endpoint(config.endpoint)
        self._policy = policy or RetryPolicy()
        self._window = window or TimeWindow()
        self._give_up_after = give_up_after
        self._clock = clock
        self._monotonic = monotonic
        self._rand = rand
        self._on_retry = on_retry
        self._limit = AdaptiveLimit(config.concurrency)
        self._aborted = threading.Event()
        self._health = Health(monotonic)
        self._restamps = Tally(monotonic)
        self._time_rejects = Tally(monotonic)
        self._stats = SlsStats()
        self._stats_lock = threading.Lock()
        self._idle: queue.SimpleQueue[SlsClient] = queue.SimpleQueue()
        self._clients: list[SlsClient] = []
        self._clients_lock = threading.Lock()
        self._closed = False

    # -- the Sink protocol -----------------------------------------------------------------

    def send(self, batch: SealedBatch) -> Outcome:
        if self._aborted.is_set():
            return Outcome.ABORTED
        pending, rejected = self._prepare(batch)
        if pending is None:
            return Outcome.REJECTED if rejected else Outcome.DELIVERED
        return self._deliver(pending)

    def state(self) -> str:
        return self._health.state()

    def abort(self) -> None:
        self._aborted.set()
        self._limit.abort()
        with self._clients_lock:
            clients = list(self._clients)
        for client in clients:  # a request in progress fails now, not at its deadline
            client.abort()

    def close(self) -> None:
        with self._clients_lock:
            clients, self._clients = self._clients, []
            self._closed = True
        for client in clients:
            client.close()

    def stats(self) -> SlsStats:
        with self._stats_lock:
            return replace(
                self._stats, retries=dict(self._stats.retries), concurrency_limit=self._limit.limit
            )

    # -- encoding --------------------------------------------------------------------------

    def _prepare(self, batch: SealedBatch) -> tuple[Pending | None, int]:
        """The batch as one LogGroup, with the time policy applied; and how many logs were
        rejected. A batch is sealed within the LogGroup limits, so it is never cut here."""
        if not batch.records:
            return None, 0
        now = self._clock()
        low, high = self._window.bounds(now)
        times = batch.record_times()
        if low <= batch.min_time and batch.max_time <= high:  # the hot path: all in the window
            return Pending(batch.data, None, times, batch.trailer), 0
        logs = split_logs(batch.data, batch.ends())
        kept_logs: list[bytes] = []
        kept_times: list[int] = []
        restamped: set[int] = set()
        dropped = 0
        for log_bytes, t in zip(logs, times, strict=True):
            if low <= t <= high:
                kept_logs.append(log_bytes)
            elif self._config.time_policy == "restamp":
                restamped.add(len(kept_logs))
                kept_logs.append(self._restamp(log_bytes, t, now))
            else:
                dropped += 1
                continue
            kept_times.append(t)
        if restamped:
            self._said_restamped(len(restamped))
        if dropped:
            self._rejected_by_time(dropped)
        if not kept_logs:
            return None, dropped
        return Pending.of(kept_logs, kept_times, batch.trailer, restamped), dropped

    def _restamp(self, log_bytes: bytes, original: int, now: float) -> bytes:
        """The log sent with the current time, its own time kept in ORIGINAL_TIME_KEY."""
        return restamp_log(log_bytes, int(now), ((ORIGINAL_TIME_KEY, str(original)),))

    def _said_restamped(self, count: int) -> None:
        self._count(restamped_logs=count)
        total = self._restamps.add(count)
        if total:
            log.warning(
                "SLS output: sent %d record(s) with the current time: their own time is outside "
                "SLS's window (now - 7 days .. now + 15 min); it is kept in field %s "
                "(time_policy: restamp)",
                total,
                ORIGINAL_TIME_KEY,
            )

    def _rejected_by_time(self, count: int) -> None:
        self._count(rejected_logs=count)
        total = self._time_rejects.add(count)
        if total:
            log.warning(
                "SLS output: dropped %d record(s): their time is outside SLS's window "
                "(now - 7 days .. now + 15 min) and time_policy is reject",
                total,
            )

    def _apply_time_policy(self, p: Pending) -> bool:
        """After the server refused the times: restamp or drop what is near the edges (or all).

        False when nothing is left to send."""
        now = self._clock()
        low, high = WIDE_WINDOW.bounds(now)
        fresh = [i for i in range(len(p)) if i not in p.restamped]
        suspects = {i for i in fresh if not low <= p.times[i] <= high}
        if not suspects:
            suspects = set(fresh)  # the server's clock is far from ours: trust neither
        logs = p.logs() if p.ends is not None else split_logs(p.data, p.framed_ends())
        if self._config.time_policy == "reject":
            keep = [i for i in range(len(p)) if i not in suspects]
            self._rejected_by_time(len(suspects))
            fixed = Pending.of(
                [logs[i] for i in keep],
                [p.times[i] for i in keep],
                p.trailer,
                {n for n, i in enumerate(keep) if i in p.restamped},
            )
        else:
            for i in suspects:
                logs[i] = self._restamp(logs[i], p.times[i], now)
            self._said_restamped(len(suspects))
            fixed = Pending.of(logs, p.times, p.trailer, p.restamped | suspects)
        p.data, p.ends, p.times, p.restamped = fixed.data, fixed.ends, fixed.times, fixed.restamped
        return bool(p.times)

    # -- delivery --------------------------------------------------------------------------

    def _deliver(self, p: Pending) -> Outcome:
        """One LogGroup until delivered, rejected or aborted."""
        attempts: dict[Failure, int] = {}
        started = self._monotonic()
        stuck_warned = False
        while True:
            if self._aborted.is_set() or not self._limit.acquire():
                return Outcome.ABORTED
            group = p.group()
            try:
                err = self._put(group)
            finally:
                self._limit.release()
            if err is None:
                self._limit.on_success()
                self._health.succeeded()
                self._count(delivered_logs=len(p), delivered_groups=1, bytes_sent=group.size)
                with self._stats_lock:
                    self._stats.last_delivery = self._clock()
                return Outcome.DELIVERED
            failure = classify(err.status, err.code, err.message)
            with self._stats_lock:
                self._stats.retries[failure.value] = self._stats.retries.get(failure.value, 0) + 1
                self._stats.last_error = str(err)
            n = attempts.get(failure, 0)
            attempts[failure] = n + 1
            final = self._react(failure, err, p, n)
            if final is not None:
                return final
            waited = self._monotonic() - started
            if self._give_up_after is not None and waited >= self._give_up_after:
                log.error(
                    "SLS output: giving up on %d record(s) after %.0f s (give_up_after): %s",
                    len(p),
                    waited,
                    err,
                )
                self._count(rejected_logs=len(p))
                return Outcome.REJECTED
            if not stuck_warned and waited >= self._policy.stuck_warning:
                stuck_warned = True
                log.warning(
                    "SLS output: %d record(s) undelivered for %.0f s, still retrying: %s",
                    len(p),
                    waited,
                    err,
                )
            if self._on_retry is not None:
                self._on_retry()
            if failure in (Failure.TOO_LARGE, Failure.TIME_RANGE):
                continue  # the request changed: send it now
            if self._aborted.wait(self._policy.delay(failure, n, self._rand)):
                return Outcome.ABORTED

    def _react(self, failure: Failure, err: SlsError, p: Pending, n: int) -> Outcome | None:
        """Side effects of one failure; an Outcome when the LogGroup is final."""
        target = f"{self._config.project}/{self._config.logstore} at {self._endpoint.netloc()}"
        if failure is Failure.TRANSIENT:
            self._health.failed(failure, err, "request failed, retrying", logging.WARNING)
        elif failure is Failure.QUOTA:
            self._limit.on_quota()
            self._health.failed(failure, err, "write quota exceeded, slowing down", logging.WARNING)
        elif failure is Failure.TOKEN_EXPIRED:
            self._health.failed(
                failure, err, "security token expired, re-reading credentials", logging.WARNING
            )
            try:
                self._credentials.refresh()
            except CredentialsError as exc:
                log.debug("credentials refresh failed: %s", exc)
        elif failure is Failure.HOLD:
            self._health.failed(
                failure,
                err,
                f"cannot write to {target}; holding the data and retrying every "
                f"{self._policy.probe_interval:g} s until fixed",
                logging.ERROR,
            )
        elif failure is Failure.CLOCK_SKEW:
            self._health.failed(
                failure,
                err,
                "this host's clock differs from SLS's by more than 15 minutes; fix the clock "
                f"(NTP); retrying every {self._policy.probe_interval:g} s",
                logging.ERROR,
            )
        elif failure is Failure.TOO_LARGE:
            return self._split(p, err)
        elif failure is Failure.TIME_RANGE:
            if n >= 3 or not self._apply_time_policy(p):
                return self._reject(p, err)
        elif failure is Failure.INVALID:
            return self._reject(p, err)
        return None

    def _split(self, p: Pending, err: SlsError) -> Outcome:
        if len(p) == 1:
            return self._reject(p, err)
        if p.ends is None:
            p.ends = p.framed_ends()
        outcomes = []
        for half in p.halves():
            outcome = self._deliver(half)
            if outcome is Outcome.ABORTED:
                return outcome
            outcomes.append(outcome)
        return Outcome.DELIVERED if Outcome.DELIVERED in outcomes else Outcome.REJECTED

    def _reject(self, p: Pending, err: SlsError) -> Outcome:
        self._count(rejected_logs=len(p))
        log.error("SLS output: rejected %d record(s) for good: %s", len(p), err)
        return Outcome.REJECTED

    def _put(self, group: SerializedGroup) -> SlsError | None:
        self._count(requests=1)
        client = self._client()
        try:
            client.put(self._config.project, self._config.logstore, group)
        except SlsError as err:
            return err
        except CredentialsError as exc:
            return SlsError(401, "CredentialsUnavailable", str(exc))
        except Exception as exc:  # a sender thread must survive a bug under the client
            # Retried with backoff like a network error, and said once by Health; only the
            # type is shown, as the text of an unknown error might echo request headers.
            return SlsError(0, "ClientError", type(exc).__name__)
        finally:
            self._idle.put(client)
        return None

    def _client(self) -> SlsClient:
        try:
            return self._idle.get_nowait()
        except queue.Empty:
            pass
        client = SlsClient(
            self._endpoint,
            self._credentials,
            source=self._config.source or "127.0.0.1",
            timeout=self._config.request_timeout,
            compress=self._config.compress == "lz4",
            lz4=self._lz4,
        )
        with self._clients_lock:
            self._clients.append(client)
        return client

    def _count(self, **deltas: int) -> None:
        with self._stats_lock:
            for name, delta in deltas.items():
                setattr(self._stats, name, getattr(self._stats, name) + delta)
