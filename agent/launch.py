"""The `llmtail` entry point: signal handlers before anything slow, then the command line.

Kept free of imports beyond the standard library and `agent.ops.signals`, because everything
imported before `install_early` runs widens the window in which a SIGHUP kills `llmtail run`.
"""

from __future__ import annotations

import sys

from llmtail.agent.ops.signals import install_early


def main() -> None:
    if sys.argv[1:2] == ["run"]:
        install_early()
    from llmtail.agent.cli import main as cli  # noqa: PLC0415 - after the handlers, on purpose

    cli()
