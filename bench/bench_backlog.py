"""Peak RSS of `llmtail run` with the output down and a 1 GB backlog, per engine and per tree.

    PYTHONPATH=. python bench/bench_backlog.py [--engine core] [--baseline-tree /tmp/main-copy]

The scenario of tests/test_backpressure.py (the local Logstore's listener closed for the whole
run, defaults otherwise: 32 MiB in flight), with the engine chosen: the agent reads until its
in-flight bytes are full, then stops; RSS is sampled from /proc all along and for 5 s stalled.
The backlog is written once under bench/data/ (ignored by git) and hard-linked into each run.
With `--baseline-tree`, that checkout's agent runs first, in the same run, for a before/after.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.agentproc import Agent, LogstoreProcess, StampedLines, free_port  # noqa: E402
from tests.test_backpressure import (  # noqa: E402
    BACKLOG_BYTES,
    ZONE,
    Stall,
    agent_config,
    write_backlog,
)

DATA = REPO / "bench" / "data"


def backlog_file() -> Path:
    path = DATA / "backlog-1G.log"
    if not path.exists() or path.stat().st_size < BACKLOG_BYTES:
        DATA.mkdir(parents=True, exist_ok=True)
        write_backlog(path, StampedLines(ZONE), BACKLOG_BYTES)
    return path


def stalled(tree: Path, engine: str, backlog: Path, workdir: Path) -> Stall:
    """One agent of `tree` against the down output; returns its Stall (RSS, bytes read)."""
    if workdir.exists():
        for p in sorted(workdir.rglob("*"), reverse=True):
            p.unlink() if not p.is_dir() else p.rmdir()
    logs = workdir / "logs"
    logs.mkdir(parents=True)
    os.link(backlog, logs / "app.log")
    port = free_port()
    with LogstoreProcess() as store:
        store.outage(600)  # longer than the run: the output stays down throughout
        config = agent_config(logs, store.output(), port, engine=engine)
        with Agent(workdir, config) as agent:
            agent.start(env={**store.env(), "PYTHONPATH": str(tree)})
            stall = Stall(agent, port)
            stall.wait(timeout=120)
            agent.kill()
    return stall


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--engine", choices=("core", "python"), default="core")
    ap.add_argument("--baseline-tree", type=Path, help="a checkout to measure first")
    args = ap.parse_args(argv)
    backlog = backlog_file()
    trees = [("baseline", args.baseline_tree)] if args.baseline_tree else []
    trees.append(("this tree", REPO))
    for name, tree in trees:
        stall = stalled(tree.resolve(), args.engine, backlog, DATA / "run-backlog")
        print(f"{name} ({tree}), engine {args.engine}: {stall.report('1 GiB backlog')}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
