"""The `llmtail` command line.

Every user mistake (config, path, credential) ends as one line on stderr and exit status 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer

from llmtail.agent import __version__
from llmtail.agent.config import Config, ConfigError, InputConfig, check_encoding, load_config
from llmtail.agent.engine.llm_aggregate import LOCAL_LABEL_SETS
from llmtail.agent.engine.masking import MaskKeyError, masker_for
from llmtail.agent.engine.stream import SealedBatch, Wire
from llmtail.agent.modes.backfill import input_index_for, run_backfill
from llmtail.agent.modes.mask_report import mask_report
from llmtail.agent.modes.pipeline import (
    UserError,
    build_engine,
    parser_settings,
    run_daemon,
    verify_output,
)
from llmtail.agent.modes.report import (
    LlmReport,
    ReportError,
    parse_by,
    parse_since,
)
from llmtail.agent.modes.scan import core_available
from llmtail.agent.modes.trace import trace as trace_records
from llmtail.agent.modes.validate import validate_files
from llmtail.agent.ops.status import show_status
from llmtail.agent.reading.wholefile import PathError, expand_paths
from llmtail.parsers.pattern import PatternError
from llmtail.parsers.record import RecordParser

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="llmtail: ship the logs of LLM applications to Alibaba Cloud SLS.",
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="YAML config file (see config.example.yaml).")
]


ParserConfigOption = Annotated[
    Path | None, typer.Option("--config", "-c", help="Take the parser settings from here.")
]
EncodingOption = Annotated[
    str | None, typer.Option(help="File encoding (default: each file's input's, else utf-8).")
]
UnmaskedOption = Annotated[
    bool,
    typer.Option(
        "--unmasked",
        help="Show values as written, unmasked (for someone who may read the files anyway).",
    ),
]
EngineOption = Annotated[
    str | None,
    typer.Option("--engine", help="python or core (the compiled core); default: the config's."),
]


def _fail(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"llmtail: {message}", err=True)
    raise typer.Exit(code)


def _load(path: Path | None) -> Config:
    if path is None:
        return Config()
    try:
        return load_config(path)
    except ConfigError as exc:
        _fail(str(exc))


def _with_encoding(config: Config, encoding: str | None) -> Config:
    """`--encoding`: one encoding for every file, whatever the inputs say."""
    if encoding is None:
        return config
    try:  # the config's own check: `model_copy` would skip it
        check_encoding(encoding)
    except ValueError as exc:
        _fail(f"--encoding: {exc}")
    inputs = config.inputs or [InputConfig(paths=["*"])]
    return config.model_copy(
        update={"inputs": [i.model_copy(update={"encoding": encoding}) for i in inputs]}
    )


_ENGINES = ("python", "core")


def _with_engine(config: Config, engine: str | None) -> Config:
    """`--engine`: the Python reference or the compiled core, over the config's `engine:`."""
    if engine is None:
        return config
    if engine not in _ENGINES:
        _fail(f"--engine must be python or core, not {engine!r}")
    return config.model_copy(update={"engine": engine})


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmtail {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    """llmtail: a log-ingestion agent for LLM applications on Alibaba Cloud."""


@app.command()
def validate(
    paths: Annotated[list[str], typer.Argument(help="Files or globs, plain or .gz.")],
    config: ParserConfigOption = None,
    encoding: EncodingOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The summary as one JSON object.")
    ] = False,
    records: Annotated[
        bool, typer.Option("--records", help="Every record as NDJSON on stdout; summary on stderr.")
    ] = False,
    max_error_rate: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Highest parse-error rate that exits 0.")
    ] = 0.0,
    mask: Annotated[
        bool,
        typer.Option(
            "--mask-report", help="How many values each masking rule would mask, with examples."
        ),
    ] = False,
    unmasked: UnmaskedOption = False,
    engine_kind: EngineOption = None,
) -> None:
    """Parse files without sending anything and report what was found (a dry run)."""
    cfg = _with_engine(_with_encoding(_load(config), encoding), engine_kind)
    if mask and records:
        _fail("--mask-report and --records cannot be combined; run them one after the other")
    try:
        files = expand_paths(paths)
        # Only --records reads the batches' bytes: otherwise they are not encoded at all.
        wire: Wire = "ndjson" if records else "count"
        engine = build_engine(cfg, wire=wire, max_label_sets=LOCAL_LABEL_SETS, unmasked=unmasked)
        masker = masker_for(cfg) if mask else None
    except (PathError, PatternError, UserError, MaskKeyError) as exc:
        _fail(str(exc))
    if masker is not None:
        found = mask_report(files, RecordParser(parser_settings(cfg)), masker)
        typer.echo(orjson.dumps(found.to_dict()).decode() if as_json else found.render())
        raise typer.Exit(0)
    out = sys.stdout.buffer

    def print_records(batch: SealedBatch) -> None:
        out.write(batch.data)

    report = validate_files(
        files, engine, lambda path: input_index_for(cfg, path), print_records if records else None
    )
    summary = orjson.dumps(report.to_dict()).decode() if as_json else report.render(max_error_rate)
    typer.echo(summary, err=records)
    raise typer.Exit(0 if report.ok(max_error_rate) else 1)


@app.command()
def report(
    paths: Annotated[list[str], typer.Argument(help="Files or globs, plain, rotated or .gz.")],
    since: Annotated[
        str | None, typer.Option(help="Only records from then on: 30m, 1h, 2d or 2025-07-09 14:00.")
    ] = None,
    by: Annotated[
        str | None, typer.Option(help="Break down by these, e.g. model,workspace.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object for scripts.")] = False,
    config: ParserConfigOption = None,
    encoding: EncodingOption = None,
    unmasked: UnmaskedOption = False,
    engine_kind: EngineOption = None,
) -> None:
    """LLM calls, errors, latency, QPM/TPM and feedback from local files; sends nothing."""
    cfg = _with_engine(_with_encoding(_load(config), encoding), engine_kind)
    try:
        files = expand_paths(paths)
        engine = build_engine(  # the report reads counters and aggregates, never bytes
            cfg, wire="count", max_label_sets=LOCAL_LABEL_SETS, unmasked=unmasked
        )
        tz = cfg.parser.timezone
        result = LlmReport(
            by=parse_by(by),
            since=parse_since(since, tz, time.time()) if since else None,
            timezone=tz,
        )
    except (PathError, PatternError, UserError, ReportError) as exc:
        _fail(str(exc))
    result.read(files, engine, lambda path: input_index_for(cfg, path))
    typer.echo(orjson.dumps(result.to_dict()).decode() if as_json else result.render())
    for damage in result.damaged:
        typer.echo(f"llmtail: damaged: {damage}", err=True)
    raise typer.Exit(1 if result.damaged else 0)


@app.command()
def trace(
    ident: Annotated[str, typer.Argument(metavar="ID", help="A trace id or a request id.")],
    paths: Annotated[list[str], typer.Argument(help="Files or globs, plain, rotated or .gz.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON record per line instead of the log text.")
    ] = False,
    config: ParserConfigOption = None,
    encoding: EncodingOption = None,
    unmasked: UnmaskedOption = False,
    engine_kind: EngineOption = None,
) -> None:
    """Every record of a trace or request across the files, in time order; exit 1 if none."""
    cfg = _with_engine(_with_encoding(_load(config), encoding), engine_kind)
    if cfg.engine == "core" and not core_available():
        _fail(
            "engine: core needs the compiled core (pip install -e . with a Rust toolchain); "
            "or pass --engine python"
        )
    try:
        files = expand_paths(paths)
        parser = RecordParser(parser_settings(cfg))
        masker = masker_for(cfg) if cfg.mask.enabled and not unmasked else None
    except PatternError as exc:
        _fail(f"parser.pattern: {exc}")
    except (PathError, ValueError, MaskKeyError) as exc:
        _fail(str(exc))
    result = trace_records(ident, files, parser, engine=cfg.engine)
    out = sys.stdout.buffer
    for item in result.records:
        if as_json:
            doc = result.as_json(item)
            if masker is not None:
                masker.mask_fields(doc)
            out.write(orjson.dumps(doc) + b"\n")
        else:
            text = item.text if masker is None else masker.mask_text(item.text)[0]
            out.write(text.encode("utf-8", "surrogateescape") + b"\n")
    out.flush()
    for damage in result.damaged:
        typer.echo(f"llmtail: damaged: {damage}", err=True)
    if result.truncated:
        typer.echo(f"llmtail: only the first {len(result.records):,} records shown", err=True)
    if not result.records:
        typer.echo(f"llmtail: no record of {ident} in the files", err=True)
    raise typer.Exit(0 if result.records and not result.damaged else 1)


@app.command()
def run(config: ConfigOption) -> None:
    """Follow the configured files and ship their records until SIGTERM or SIGINT."""
    try:
        code = run_daemon(str(config))
    except (ConfigError, UserError, PatternError) as exc:
        _fail(str(exc))
    raise typer.Exit(code)


@app.command("check-output")
def check_output(config: ConfigOption) -> None:
    """Prove the configured output accepts writes (one harmless request); says what is wrong."""
    cfg = _load(config)
    try:
        typer.echo(verify_output(cfg))
    except UserError as exc:
        _fail(str(exc), code=1)


@app.command()
def backfill(
    config: ConfigOption,
    paths: Annotated[list[str], typer.Argument(help="Files or globs, plain or .gz.")],
    since: Annotated[
        str | None,
        typer.Option(help="Skip records before this time (parser timezone), e.g. 2025-07-09."),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option(help="Skip records from this time on, e.g. '2025-07-09 14:00'."),
    ] = None,
    max_rate: Annotated[
        str | None,
        typer.Option("--max-rate", help="At most N records/s (5000) or bytes/s (10MB)."),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Parse and report; send nothing.")
    ] = False,
) -> None:
    """Load old log files once, oldest first; a rerun resumes and never sends twice."""
    try:
        code = run_backfill(
            str(config), paths, since=since, until=until, max_rate=max_rate, dry_run=dry_run
        )
    except (ConfigError, UserError, PatternError) as exc:
        _fail(str(exc))
    except KeyboardInterrupt:  # a Ctrl-C after the run's own handler was removed: it is over
        _fail("interrupted after the summary; rerun the same command to check", code=130)
    raise typer.Exit(code)


@app.command()
def provision(
    config: ConfigOption,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; write nothing.")
    ] = False,
    only: Annotated[
        str | None,
        typer.Option(help="Only these parts, comma-separated: index,dashboards,alerts,searches."),
    ] = None,
) -> None:
    """Create or update the Logstore, its index, dashboards, alerts and saved searches."""
    from llmtail.agent.provision.command import parse_only, run_provision  # noqa: PLC0415
    from llmtail.agent.provision.desired import ProvisionError  # noqa: PLC0415

    cfg = _load(config)
    try:
        code = run_provision(cfg, dry_run, parse_only(only), typer.echo)
    except ProvisionError as exc:
        _fail(str(exc), code=1)
    raise typer.Exit(code)


@app.command()
def status(
    config: Annotated[Path, typer.Option("--config", "-c", help="The agent's config file.")] = Path(
        "/etc/llmtail/config.yaml"
    ),
) -> None:
    """Show the running agent's files, offsets, bytes behind, last delivery and last error."""
    raise typer.Exit(show_status(_load(config), sys.stdout, sys.stderr))


def main() -> None:
    app()
