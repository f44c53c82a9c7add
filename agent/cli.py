"""The `llmtail` command line.

Every user mistake (config, path, credential) ends as one line on stderr and exit status 2;
tracebacks are for bugs only.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, NoReturn

import orjson
import typer

from agent import __version__
from agent.backfill import run_backfill
from agent.config import Config, ConfigError, load_config
from agent.mask_report import mask_report
from agent.masking import MaskKeyError, masker_for
from agent.pipeline import UserError, parser_for, record_printer, run_daemon, verify_output
from agent.reading import PathError, expand_paths
from agent.status import show_status
from agent.validate import validate_files
from parsers.pattern import PatternError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="llmtail: ship the logs of LLM applications to Alibaba Cloud SLS.",
)

ConfigOption = Annotated[
    Path, typer.Option("--config", "-c", help="YAML config file (see config.example.yaml).")
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
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Take the parser settings from here.")
    ] = None,
    encoding: Annotated[
        str | None, typer.Option(help="File encoding (default: the config's first input's).")
    ] = None,
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
) -> None:
    """Parse files without sending anything and report what was found (a dry run)."""
    cfg = _load(config)
    if mask and records:
        _fail("--mask-report and --records cannot be combined; run them one after the other")
    try:
        files = expand_paths(paths)
        parser = parser_for(cfg, encoding)
        masker = masker_for(cfg) if mask else None
    except (PathError, PatternError, UserError, MaskKeyError) as exc:
        _fail(str(exc))
    if masker is not None:
        found = mask_report(files, parser, masker)
        typer.echo(orjson.dumps(found.to_dict()).decode() if as_json else found.render())
        raise typer.Exit(0)
    on_record = None
    if records:
        on_record = record_printer(cfg, sys.stdout.buffer)
    report = validate_files(files, parser, on_record)
    summary = orjson.dumps(report.to_dict()).decode() if as_json else report.render(max_error_rate)
    typer.echo(summary, err=records)
    raise typer.Exit(0 if report.error_rate <= max_error_rate else 1)


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
