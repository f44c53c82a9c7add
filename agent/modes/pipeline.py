"""The composition root: builds the parts a mode needs from the config.

The stages never ask which mode they are in; the modes differ only in what is plugged together
here (which files, which sink, which checkpoint store).
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable
from pathlib import Path

from llmtail.agent.config import (
    Config,
    ConfigError,
    FileOutput,
    OutputConfig,
    SlsOutput,
    StdoutOutput,
    load_config,
)
from llmtail.agent.delivery.dispatch import Dispatcher
from llmtail.agent.delivery.file import FileSink
from llmtail.agent.delivery.sink import Sink
from llmtail.agent.delivery.stdout import StdoutSink
from llmtail.agent.engine.corestream import (
    CoreUnavailableError,
    limit_spares,
    lz4_block,
    spare_bytes,
)
from llmtail.agent.engine.engine import Engine, EngineKind
from llmtail.agent.engine.envelope import PackIds, host_ip
from llmtail.agent.engine.masking import MaskKeyError, mask_settings
from llmtail.agent.engine.stream import StreamSettings, Wire
from llmtail.agent.modes.daemon import Daemon
from llmtail.agent.modes.flow import Flow, OnDone, OnSealed
from llmtail.agent.ops.logsetup import RedactSecrets, setup_logging
from llmtail.agent.ops.malloc import tune_malloc
from llmtail.agent.ops.metrics import AgentMetrics, MetricsError, MetricsServer, Registry
from llmtail.agent.ops.notify import Notifier
from llmtail.agent.state.checkpoint import Checkpointer, CheckpointError, StateDirLock
from llmtail.parsers.mask import MaskConfigError
from llmtail.parsers.pattern import PatternError
from llmtail.parsers.record import ParserSettings

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
        feedback_fields=tuple((f.name, f.type) for f in p.feedback.fields),
        max_record_bytes=p.max_record_bytes,
        encoding=encoding,
    )


def wire_of(output: OutputConfig) -> Wire:
    return "loggroup" if isinstance(output, SlsOutput) else "ndjson"


def build_engine(
    config: Config,
    wire: Wire | None = None,
    hostname: str | None = None,
    max_label_sets: int | None = None,
    unmasked: bool = False,
    engine: EngineKind | None = None,
) -> Engine:
    """The engine for the config's inputs; a pattern it cannot compile, or a masking key it
    cannot use, is the user's to fix. `unmasked`: the local commands' `--unmasked`; `engine`:
    `--engine`, over the config's `engine:`."""
    output, b, tail = config.output, config.batch, config.tail
    try:
        mask, mask_key = (None, None) if unmasked else mask_settings(config)
    except MaskKeyError as exc:
        raise UserError(str(exc)) from None
    host = hostname if hostname is not None else socket.gethostname()
    encodings = [inp.encoding for inp in config.inputs] or ["utf-8"]
    settings = [
        StreamSettings(
            parser=parser_settings(config, encoding),
            wire=wire or wire_of(output),
            max_records=b.max_records,
            max_bytes=b.max_bytes,
            linger=b.linger,
            partial_after=tail.partial_line_flush,
            pending_after=tail.multiline_flush,
            topic=output.topic,
            source=output.source if output.source is not None else host_ip(),
            hostname=host,
            tags=tuple(output.tags.items()),
            max_label_sets=max_label_sets or config.metrics.max_label_sets,
            mask=mask,
            mask_key=mask_key,
        )
        for encoding in encodings
    ]
    try:
        return Engine(settings, PackIds(host), engine or config.engine)
    except CoreUnavailableError as exc:
        raise UserError(str(exc)) from None
    except PatternError as exc:
        raise UserError(f"parser.pattern: {exc}") from None
    except MaskConfigError as exc:
        raise UserError(f"mask: {exc}") from None
    except ValueError as exc:
        raise UserError(f"parser: {exc}") from None


def build_sink(config: Config, on_retry: Callable[[], None] | None = None) -> Sink:
    """The configured output; credential and endpoint problems become a UserError."""
    output = config.output
    if isinstance(output, FileOutput):
        return FileSink(output, on_retry=on_retry)
    if isinstance(output, StdoutOutput):
        return StdoutSink(output, on_retry=on_retry)
    # The SDK pulls in half of PyPI: import it only when the output is SLS.
    from llmtail.agent.delivery.credentials import CredentialsError  # noqa: PLC0415
    from llmtail.agent.delivery.retry import Backoff, RetryPolicy  # noqa: PLC0415
    from llmtail.agent.delivery.sls import SlsSink  # noqa: PLC0415
    from llmtail.agent.delivery.sls_client import EndpointError  # noqa: PLC0415

    policy = RetryPolicy(
        transient=Backoff(0.1, output.max_backoff), probe_interval=output.hold_probe_interval
    )
    # On the core, the core's lz4 (same blocks, a kept output buffer); the Python engine keeps
    # python-lz4, so `engine: python` runs no compiled code at all.
    core_lz4 = lz4_block(output.concurrency) if config.engine == "core" else None
    try:
        return SlsSink(
            output,
            on_retry=on_retry,
            policy=policy,
            give_up_after=output.give_up_after,
            lz4=core_lz4,
        )
    except (CredentialsError, EndpointError) as exc:
        raise UserError(str(exc)) from None


def build_dispatcher(config: Config, sink: Sink) -> Dispatcher:
    """The senders; the core's spare buffers (the Streams' LogGroup buffers and the senders' lz4
    output buffers) count against the in-flight bound past half of it, which the reader's next
    batches reuse (Dispatcher). They may hold 1.25 times the bound, so that every buffer a full
    bound lets exist can be kept, and the reader still has a quarter of the bound with nothing
    in flight: batches in flight and kept buffers together stay within 1.5 times the bound."""
    concurrency = getattr(config.output, "concurrency", 1)
    bound = config.max_in_flight_bytes
    limit_spares(bound + bound // 4)
    return Dispatcher(sink, concurrency, bound, held=spare_bytes, reuse=bound // 2)


def unfinished_bound(config: Config) -> int:
    """Unfinished records may hold up to half of the in-flight bound on top of it."""
    return config.max_in_flight_bytes // 2


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
    from llmtail.agent.delivery.sls_check import OutputCheckError, check_output  # noqa: PLC0415

    try:
        return check_output(output)
    except OutputCheckError as exc:
        raise UserError(str(exc)) from None


def run_daemon(config_path: str) -> int:
    """`llmtail run`: build the daemon from the config file and run it until SIGTERM/SIGINT."""
    tune_malloc()  # before any thread starts (agent/ops/malloc.py says why)
    config = load_config(config_path)
    setup_logging(config.log_level)
    if not config.inputs:
        raise UserError(f"{config_path}: inputs: list at least one input with paths to follow")
    build_engine(config)  # a bad pattern fails here, before anything starts
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
    dispatcher = build_dispatcher(config, build_sink(config, on_retry=metrics.batch_retries.inc))
    pack_ids = PackIds()

    def flow_for(cfg: Config, on_sealed: OnSealed, on_done: OnDone) -> Flow:
        engine = build_engine(cfg, hostname=pack_ids.hostname)
        engine.pack_ids = pack_ids  # numbering goes on across reloads
        metrics.count_rules(engine.mask_rules)
        return Flow(
            engine,
            dispatcher,
            max_unfinished=unfinished_bound(cfg),
            on_sealed=on_sealed,
            on_done=on_done,
        )

    daemon = Daemon(
        config,
        flow_for,
        checkpointer,
        metrics,
        Notifier.from_environment(),
        saved=saved,
        first_start=first_start,
        config_loader=lambda: _reload_config(config_path),
    )
    daemon.last_error.addFilter(RedactSecrets())  # it is shown in /status and STATUS=
    logging.getLogger().addHandler(daemon.last_error)
    server = None
    try:
        if config.metrics.listen:
            server = MetricsServer(registry, config.metrics.listen, daemon.status, daemon.ready)
            try:
                server.start()
            except MetricsError as exc:
                dispatcher.stop(time.monotonic())
                raise UserError(str(exc)) from None
            host, port = server.address
            log.info("metrics on http://%s:%d/metrics, status on /status", host, port)
        daemon.install_signal_handlers()
        return daemon.run()
    finally:
        if server is not None:
            server.close()
        daemon.close()
        lock.release()


def _reload_config(path: str) -> Config:
    config = load_config(path)
    try:
        build_engine(config)
    except UserError as exc:  # a pattern that does not compile is refused like a bad key
        raise ConfigError(str(exc)) from None
    return config
