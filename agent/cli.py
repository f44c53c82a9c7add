"""The `llmtail` command line (being assembled: see docs/architecture.md)."""

from __future__ import annotations

import typer

from agent import __version__

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Ship LLM call logs to SLS.")


def _version(value: bool) -> None:
    if value:
        typer.echo(f"llmtail {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True),
) -> None:
    """llmtail: a log-ingestion agent for LLM applications on Alibaba Cloud."""


def main() -> None:
    app()
