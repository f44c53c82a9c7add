"""Idle CPU: what an agent costs when nothing is written (target: under 1% of a core).

    PYTHONPATH=. python bench/bench_idle.py [--files 20] [--seconds 10] [--engine core]

Two measures, by CPU time, printed and never asserted (a loaded machine would make an assertion
fail for reasons that are not llmtail's):

- the watcher alone, polling `--files` files 4 times a second for 60 simulated seconds, rescans
  included (what the deterministic test `test_an_idle_poll_costs_one_fstat_per_file...` pins
  down as one fstat per file per poll);
- a real `llmtail run` over `--files` files into the file output, once their records arrived.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llmtail.agent.config import InputConfig, TailConfig
from llmtail.agent.reading.watcher import Watcher
from tests.agentproc import Agent, ids_in_output, record_line, wait_for


def watcher_idle(directory: Path, files: int) -> float:
    """CPU seconds per second of a watcher idling over `files` files (simulated clock)."""
    for n in range(files):
        (directory / f"w{n:03d}.log").write_bytes(b"".join(record_line(i) for i in range(3)))
    spec = InputConfig(paths=[str(directory / "w*.log")], start_at="beginning")
    w = Watcher([spec], {}, TailConfig(rescan_interval=10.0), first_start=True, watch=False)
    try:
        now = 0.0
        w.poll(now, 1 << 20)
        cpu = time.process_time()
        for _ in range(240):
            now += 0.25
            w.poll(now, 1 << 20)
        return (time.process_time() - cpu) / 60.0
    finally:
        w.close()


def agent_idle(workdir: Path, files: int, seconds: float, engine: str | None = None) -> float:
    """CPU seconds per second of a real `llmtail run` with nothing to do."""
    logs = workdir / "logs"
    logs.mkdir()
    for n in range(files):
        (logs / f"svc{n}.log").write_bytes(
            b"".join(record_line(i) for i in range(n * 10, n * 10 + 10))
        )
    config = {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "tail": {"rescan_interval": 10},
        "metrics": {"listen": "127.0.0.1:0"},
        **({"engine": engine} if engine else {}),
    }
    with Agent(workdir, config) as agent:
        agent.start()
        wanted = set(range(files * 10))
        wait_for(lambda: set(ids_in_output(agent.output)) >= wanted, 60, "the initial records")
        before, started = agent.cpu_seconds(), time.monotonic()
        time.sleep(seconds)  # the measured interval itself
        used = (agent.cpu_seconds() - before) / (time.monotonic() - started)
        agent.stop()
    return used


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--engine", choices=("core", "python"), help="default: the config's")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"watcher, {args.files} files: {watcher_idle(Path(tmp), args.files):.3%} of a core")
    with tempfile.TemporaryDirectory() as tmp:
        used = agent_idle(Path(tmp), args.files, args.seconds, args.engine)
        engine = f", engine {args.engine}" if args.engine else ""
        print(f"llmtail run, {args.files} files{engine}: {used:.3%} of a core")


if __name__ == "__main__":
    main()
