"""The composition root: builds the parts a mode needs from the config.

The stages never ask which mode they are in; the modes differ only in what is plugged together
here (which files, which sink, which checkpoint store).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from agent.acks import AckTracker
from agent.checkpoint import Checkpointer, CheckpointError, StateDirLock
from agent.config import Config, ConfigError, FileOutput, OutputConfig, StdoutOutput, load_config
from agent.daemon import Daemon
from agent.dispatch import Dispatcher
from agent.envelope import Envelope, EnvelopeMaker
from agent.events import Batch
from agent.ingest import Ingest
from agent.logsetup import RedactSecrets, setup_logging
from agent.metrics import AgentMetrics, MetricsError, MetricsServer, Registry
from agent.notify import Notifier
from agent.sinks import Outcome, Sink
from agent.sinks.file import FileSink
from agent.sinks.ndjson import encode_records
from agent.sinks.stdout import StdoutSink
from parsers.pattern import PatternError
from parsers.record import ParserSettings, Record, RecordParser

log = logging.getLogger(__name__)


class UserError(Exception):
    """Something the user must fix (config value, path, credentials); the message says what."""


def parser_settings(config: Config, encoding: str | None = None) -> ParserSettings:
    p = config.parser
    if encoding is None:
        encoding = config.inputs[0].encoding if config.inputs else "utf-8"
    return ParserSettings(
        pattern=p.pattern,
        timezone=p.timezone,
        payload_separator=p.payload.separator,
        payload_fields=tuple((f.name, f.type) for f in p.payload.fields),
        max_record_bytes=p.max_record_bytes,
        encoding=encoding,
    )


def parser_for(config: Config, encoding: str | None = None) -> RecordParser:
    """A compiled parser; a pattern it cannot compile is the user's to fix."""
    try:
        return RecordParser(parser_settings(config, encoding))
    except PatternError as exc:
        raise UserError(f"parser.pattern: {exc}") from None
    except ValueError as exc:
        raise UserError(f"parser: {exc}") from None


def parsers_for_inputs(config: Config) -> list[RecordParser]:
    """One parser per input (inputs differ in encoding); identical settings share one."""
    cache: dict[str, RecordParser] = {}
    out = []
    for inp in config.inputs or []:
        if inp.encoding not in cache:
            cache[inp.encoding] = parser_for(config, inp.encoding)
        out.append(cache[inp.encoding])
    return out or [parser_for(config)]


def envelope_maker(output: OutputConfig) -> EnvelopeMaker:
    return EnvelopeMaker(topic=output.topic, source=output.source, tags=dict(output.tags))


def build_sink(
    config: Config, envelopes: EnvelopeMaker, on_retry: Callable[[], None] | None = None
) -> Sink:
    """The configured output; credential and endpoint problems become a UserError.

    `envelopes` is shared with the dispatcher, which reserves each batch's `__pack_id__`
    sequence in file order (`EnvelopeMaker.assign`).
    """
    output = config.output
    if isinstance(output, FileOutput):
        return FileSink(output, envelopes, on_retry=on_retry)
    if isinstance(output, StdoutOutput):
        return StdoutSink(output, envelopes, on_retry=on_retry)
    # The SDK pulls in half of PyPI: import it only when the output is SLS.
    from agent.credentials import CredentialsError  # noqa: PLC0415
    from agent.retry import Backoff, RetryPolicy  # noqa: PLC0415
    from agent.sinks.sls import SlsSink  # noqa: PLC0415
    from agent.sinks.sls_client import EndpointError  # noqa: PLC0415

    policy = RetryPolicy(
        transient=Backoff(0.1, output.max_backoff), probe_interval=output.hold_probe_interval
    )
    try:
        return SlsSink(
            output,
            envelopes,
            on_retry=on_retry,
            policy=policy,
            give_up_after=output.give_up_after,
        )
    except (CredentialsError, EndpointError) as exc:
        raise UserError(str(exc)) from None


def verify_output(config: Config) -> str:
    """`llmtail check-output`: one harmless write that proves the output works, or UserError."""
    output = config.output
    if isinstance(output, FileOutput):
        path = Path(output.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(path, "ab"):
                pass
        except OSError as exc:
            raise UserError(f"output.path {path}: cannot append: {exc.strerror}") from None
        return f"OK: {path} is writable"
    if isinstance(output, StdoutOutput):
        return "OK: stdout"
    from agent.sinks.sls import OutputCheckError, check_output  # noqa: PLC0415 (the SDK is heavy)

    try:
        return check_output(output)
    except OutputCheckError as exc:
        raise UserError(str(exc)) from None


def record_printer(config: Config, stream: BinaryIO) -> Callable[[Record, str], None]:
    """For `validate --records`: each record as the configured output would receive it."""
    envelopes = envelope_maker(config.output)
    wall = time.time()
    by_path: dict[str, Envelope] = {}

    def emit(record: Record, path: str) -> None:
        if record.time is None:
            record.time, record.time_ns = int(wall), int((wall % 1) * 1e9)
        envelope = by_path.get(path)
        if envelope is None:
            envelope = by_path[path] = envelopes.make(path, path)
        stream.write(encode_records([record], envelope))

    return emit


def run_daemon(config_path: str) -> int:
    """`llmtail run`: build the daemon from the config file and run it until SIGTERM/SIGINT."""
    config = load_config(config_path)
    setup_logging(config.log_level)
    if not config.inputs:
        raise UserError(f"{config_path}: inputs: list at least one input with paths to follow")
    parsers_for_inputs(config)  # a bad pattern fails here, before anything starts
    lock = StateDirLock(config.state_dir)
    try:
        lock.acquire()
        checkpointer = Checkpointer(config.state_dir)
        first_start = not checkpointer.path.exists()
        saved = checkpointer.load()
    except CheckpointError as exc:
        raise UserError(str(exc)) from None
    registry = Registry()
    metrics = AgentMetrics.register(
        registry,
        output=config.output.type,
        inputs=[i.paths[0] for i in config.inputs],
        max_label_sets=config.metrics.max_label_sets,
    )
    metrics.buffer_capacity_bytes.set(config.max_in_flight_bytes)
    envelopes = envelope_maker(config.output)
    sink = build_sink(config, envelopes, on_retry=metrics.batch_retries.inc)
    acks = AckTracker()
    concurrency = getattr(config.output, "concurrency", 1)
    holder: list[Daemon] = []

    def on_done(batch: Batch, outcome: Outcome, seconds: float) -> None:
        if holder:
            holder[0].on_batch_done(batch, outcome, seconds)

    dispatcher = Dispatcher(
        sink, acks, concurrency, config.max_in_flight_bytes, on_done, envelopes.assign
    )
    daemon = Daemon(
        config,
        lambda cfg: Ingest(parsers_for_inputs(cfg)),
        dispatcher,
        acks,
        checkpointer,
        metrics,
        Notifier.from_environment(),
        saved=saved,
        first_start=first_start,
        config_loader=lambda: _reload_config(config_path),
    )
    holder.append(daemon)
    daemon.last_error.addFilter(RedactSecrets())  # it is shown in /status and STATUS=
    logging.getLogger().addHandler(daemon.last_error)
    server = None
    if config.metrics.listen:
        server = MetricsServer(registry, config.metrics.listen, daemon.status)
        try:
            server.start()
        except MetricsError as exc:
            dispatcher.stop(time.monotonic())
            raise UserError(str(exc)) from None
        host, port = server.address
        log.info("metrics on http://%s:%d/metrics, status on /status", host, port)
    daemon.install_signal_handlers()
    try:
        return daemon.run()
    finally:
        if server is not None:
            server.close()
        lock.release()


def _reload_config(path: str) -> Config:
    config = load_config(path)
    try:
        parsers_for_inputs(config)
    except UserError as exc:  # a pattern that does not compile is refused like a bad key
        raise ConfigError(str(exc)) from None
    return config
