"""Signals sent while `llmtail run` starts: a SIGHUP must not kill it, a SIGTERM stops it cleanly.

The start is held at a known point by a config file that is a FIFO: the agent blocks reading
it until the test writes the config, so a signal sent before that lands, for sure, in the
window where the agent imports its modules and reads its config (not yet the daemon's handlers).
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from llmtail.agent.ops.signals import EarlySignals, SignalFlag, install_early, take_early
from tests.agentproc import Agent, record_line, wait_for


def catches(pid: int, signum: int) -> bool:
    """Whether the process has a handler for `signum` (SigCgt in /proc/PID/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (signum - 1)))
    return False


class Starting:
    """`python -m llmtail run -c FIFO`, held before its config is read."""

    def __init__(self, tmp_path: Path, config: dict[str, Any]) -> None:
        self.fifo = tmp_path / "llmtail.yaml"
        os.mkfifo(self.fifo)
        self.config = yaml.safe_dump(config).encode()
        self.log = tmp_path / "agent.log"
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "llmtail", "run", "-c", str(self.fifo)],
                stdout=out,
                stderr=out,
                cwd=tmp_path,
            )

    def release(self) -> None:
        """Hand the agent its config (it blocks opening the FIFO until then)."""

        def opened() -> bool:
            try:
                self.fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                assert exc.errno == errno.ENXIO  # no reader yet
                assert self.proc.poll() is None, f"the agent died: {self.logs()}"
                return False
            return True

        wait_for(opened, 60, "the agent to read its config")
        os.set_blocking(self.fd, True)
        os.write(self.fd, self.config)
        os.close(self.fd)

    def logs(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def config_for(tmp_path: Path) -> dict[str, Any]:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(b"".join(record_line(i) for i in range(50)))
    return {
        "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
        "state_dir": str(tmp_path / "state"),
        "output": {"type": "file", "path": str(tmp_path / "out" / "records.ndjson")},
        "metrics": {"listen": None},
        "tail": {"poll_interval": 0.05},
        "shutdown_timeout": 5,
    }


@pytest.mark.slow
def test_a_sighup_while_starting_is_survived_and_reloads(tmp_path: Path) -> None:
    agent = Starting(tmp_path, config_for(tmp_path))
    try:
        wait_for(lambda: catches(agent.proc.pid, signal.SIGHUP), 60, "early handlers")
        agent.proc.send_signal(signal.SIGHUP)
        agent.release()
        wait_for(lambda: "watching" in agent.logs(), 60, "the start")
        agent.release()  # the recorded SIGHUP makes the daemon read its config again
        wait_for(lambda: "reloaded" in agent.logs(), 60, "the reload")
        assert agent.proc.poll() is None
        agent.proc.send_signal(signal.SIGTERM)
        assert agent.proc.wait(60) == 0
    finally:
        agent.kill()
    assert "Traceback" not in agent.logs()


@pytest.mark.slow
def test_a_sigterm_while_starting_stops_cleanly_once_started(tmp_path: Path) -> None:
    agent = Starting(tmp_path, config_for(tmp_path))
    try:
        wait_for(lambda: catches(agent.proc.pid, signal.SIGTERM), 60, "early handlers")
        agent.proc.send_signal(signal.SIGTERM)
        agent.release()
        assert agent.proc.wait(60) == 0
    finally:
        agent.kill()
    logs = agent.logs()
    assert "stopping" in logs and "stopped" in logs
    assert "Traceback" not in logs
    assert (tmp_path / "state" / "checkpoints.json").exists()  # the orderly shutdown ran


def test_adopt_replays_what_arrived_in_order_and_installs_the_handler() -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    seen: list[int] = []
    try:
        early = install_early()
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGTERM)
        assert early.received == (signal.SIGHUP, signal.SIGTERM)
        assert take_early() is early and take_early() is None
        early.adopt(lambda signum, frame: seen.append(signum))
        assert seen == [signal.SIGHUP, signal.SIGTERM]
        signal.raise_signal(signal.SIGHUP)  # now straight to the adopted handler
        assert seen == [signal.SIGHUP, signal.SIGTERM, signal.SIGHUP]
        assert early.received == ()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def test_a_second_stop_signal_while_starting_raises_system_exit() -> None:
    previous = {s: signal.getsignal(s) for s in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    try:
        EarlySignals().install()
        signal.raise_signal(signal.SIGHUP)
        signal.raise_signal(signal.SIGHUP)  # reloads never escalate
        signal.raise_signal(signal.SIGTERM)
        with pytest.raises(SystemExit) as info:
            signal.raise_signal(signal.SIGINT)
        assert info.value.code == 128 + signal.SIGINT
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# A child that lands a signal at every bytecode of the flag's methods in turn. The handler
# raises the flag, as the daemon's does. A lock taken inside a method (threading.Event's)
# deadlocks the child at the next instruction while it is held: with `threading.Event` in place
# of SignalFlag, this child hangs.
EVERY_BYTECODE = """
import signal, sys
from llmtail.agent.ops.signals import SignalFlag

flag = SignalFlag()
signal.signal(signal.SIGHUP, lambda signum, frame: flag.set())
seen = target = 0

def tracer(frame, event, arg):
    frame.f_trace_opcodes = True
    return step

def step(frame, event, arg):
    global seen
    if event == "opcode":
        seen += 1
        if seen == target:
            signal.raise_signal(signal.SIGHUP)  # handled at the next check, lock or no lock
    return step

def at_every_bytecode(action, must_stay_raised):
    global seen, target
    target = 0
    while True:
        target += 1
        seen = 0
        sys.settrace(tracer)
        action()
        sys.settrace(None)
        if target > seen:
            return seen
        if must_stay_raised and not flag.wait(0):
            sys.exit(f"the signal at bytecode {target} of {action.__name__} was lost")
        flag.clear()

def poll():
    flag.wait(0)
    flag.is_set()

waiting = at_every_bytecode(poll, must_stay_raised=True)
clearing = at_every_bytecode(flag.clear, must_stay_raised=False)  # may merge: no deadlock
print(f"survived a signal at each of {waiting} + {clearing} bytecodes")
"""


def test_a_signal_at_any_bytecode_of_the_flag_neither_deadlocks_nor_is_lost() -> None:
    """threading.Event.set() from a handler deadlocked `llmtail run` on a SIGTERM that landed
    while the loop held the Event's lock (seen once in CI: the agent never exited)."""
    child = subprocess.run(
        [sys.executable, "-c", EVERY_BYTECODE],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,  # a deadlock; the run itself takes well under a second
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("survived a signal at each of")


def test_a_raised_flag_wakes_its_waiter_and_stays_raised_until_cleared(tmp_path: Path) -> None:
    with SignalFlag() as flag:
        assert not flag.wait(0)
        waker = threading.Timer(0.05, flag.set)
        waker.start()
        assert flag.wait(3600)  # returns on the pipe's byte, not after an hour
        waker.join()
        assert flag.is_set() and flag.wait(0)
        flag.clear()
        assert not flag.is_set() and not flag.wait(0)  # the pipe was drained too
        for _ in range(100_000):  # more than a pipe holds: set() never blocks
            flag.set()
        flag.clear()
        assert not flag.wait(0)
    flag.set()  # after close: nothing is written to a number another file may have now
    assert flag.is_set()


def test_wait_any_returns_on_whichever_flag_is_raised_first() -> None:
    with SignalFlag() as stop, SignalFlag() as finished:
        SignalFlag.wait_any((stop, finished), 0)
        finished.set()
        SignalFlag.wait_any((stop, finished), 3600)  # raised before: at once
        finished.clear()
        waker = threading.Timer(0.05, stop.set)
        waker.start()
        SignalFlag.wait_any((stop, finished), 3600)  # on the pipe's byte, not after an hour
        waker.join()
        assert stop.is_set() and not finished.is_set()


def test_sigusr1_dumps_every_threads_stack_and_the_agent_runs_on(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "app.log").write_bytes(record_line(1))
    with Agent(tmp_path, {"inputs": [{"paths": [str(logs / "*.log")]}]}) as agent:
        agent.start()
        agent.signal(signal.SIGUSR1)
        # The main thread comes last, down to `python -m`'s entry: then the dump is whole.
        wait_for(lambda: "in _run_module_as_main" in agent.logs(), 30, "the stack dump")
        dump = agent.logs()
        assert "in _work" in dump  # a sender thread: every thread is shown, not only the main one
        assert "daemon.py" in dump  # the main loop, where a hang would show
        assert agent.running()
        assert agent.stop() == 0
