"""End-to-end throughput of `llmtail run` on one core, against a naive script, in one run.

    python bench/bench_e2e.py [--size 100M] [--steady-seconds 20] [--profile]
    python bench/bench_e2e.py --no-naive --no-steady --runs 5 [--baseline-tree TREE]

file -> `llmtail run` (sls output, the real SDK) -> the local Logstore (`python -m
tests.logstore --count-only`) acknowledged. The agent is pinned to one CPU (`taskset`), the
Logstore to the other; the naive script (bench/naive_shipper.py) runs pinned like the agent over
the same generated file (bench/gen_logs.py, stamped in the last hours so SLS's 7-day window
accepts them; cached under bench/data/, which git ignores).

Measured:
- bulk: the file is hard-linked into the agent's watched directory once it is running (start-up
  is not counted); the clock stops when the Logstore has acknowledged every record. records/s,
  MB/s, the agent's CPU seconds per MB, and its peak RSS (VmHWM).
- steady: a writer appends the same kind of lines at 1 MB/s for `--steady-seconds`; the agent's
  CPU over that window, as % of one core.
- `--runs N`: N bulk runs, each through a fresh agent (alternating with `--baseline-tree`'s),
  each after two host gauges on the agent's CPU, in this process, over the file's first
  16 MiB: liblz4 alone and this tree's core Stream alone. The host's speed swings by a third
  between spells of minutes (other guests on the same machine): the gauges tell which spell a
  figure came from, and the summary gives the median and the worst run beside their ranges,
  and each run over its round's core gauge.
- `--profile`: py-spy samples the agent during the bulk run; active samples are grouped by
  where the time goes (parse, encode, lz4, SDK signing, HTTP, checkpoint, ...).
Results are printed and written to bench/results/ (also ignored by git).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import lz4.block  # noqa: E402
import yaml  # noqa: E402 (after the path set-up, as bench_parse does)

from bench.gen_logs import generate, parse_size  # noqa: E402
from llmtail.agent.config import load_config  # noqa: E402
from llmtail.agent.modes.pipeline import build_engine  # noqa: E402
from tests.agentproc import LogstoreProcess, free_port, rss_of, wait_for  # noqa: E402

DATA = REPO / "bench" / "data"
RESULTS = REPO / "bench" / "results"
AVG_RECORD_GAP = 0.010  # gen_logs advances 0-20 ms per record


# -- data ------------------------------------------------------------------------------------


def data_file(name: str, size: int) -> tuple[Path, int]:
    """A generated seed-format file of at least `size` bytes whose records are all recent.

    Reused while its times stay inside [now - 6 days, now]; returns (path, records)."""
    DATA.mkdir(parents=True, exist_ok=True)
    path, meta_path = DATA / f"{name}.log", DATA / f"{name}.json"
    now = datetime.now(UTC).replace(tzinfo=None)
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        start, end = (datetime.fromisoformat(meta[k]) for k in ("start", "end"))
        if meta["size"] == size and now - start < timedelta(days=6) and end < now:
            return path, int(meta["records"])
    span = timedelta(seconds=size / 215 * AVG_RECORD_GAP * 1.3)  # ~215 bytes a record
    start = now - span - timedelta(minutes=20)
    print(f"generating {path} ({size / 1e6:.0f} MB) ...", flush=True)
    stats = generate(path, size, multiline=0.1, seed=7, start=start)
    last = path.read_bytes()[-400:].decode(errors="replace")
    stamps = [ln[:23] for ln in last.splitlines() if ln[:4].isdigit()]
    end = datetime.strptime(stamps[-1], "%Y-%m-%d %H:%M:%S.%f")
    meta = {"size": size, "records": stats.records, "start": start.isoformat()}
    meta_path.write_text(json.dumps({**meta, "end": end.isoformat(), "bytes": stats.bytes}))
    return path, stats.records


# -- processes -------------------------------------------------------------------------------


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def minor_faults(pid: int) -> int:
    """Pages the process faulted in: fresh buffers cost one each, which CPU figures on a busy
    host hide in their noise (counted exactly)."""
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def thread_cpu_seconds(pid: int) -> dict[str, float]:
    """CPU seconds of the process's main thread (the reading loop and the core) and of all
    its other threads together (senders, metrics server)."""
    out = {"main": 0.0, "other threads": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the thread ended
        seconds = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        out["main" if task.name == str(pid) else "other threads"] += seconds
    return out


def peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


class AgentProcess:
    """`taskset -c CPU python -m llmtail run` following `workdir/logs/*.log` into the Logstore."""

    def __init__(
        self,
        workdir: Path,
        store: LogstoreProcess,
        cpu: int,
        tree: Path = REPO,
        engine: str | None = None,
        in_flight: int | None = None,
    ) -> None:
        """`tree`: the checkout whose `agent` runs (another commit, for a before/after run)."""
        if workdir.exists():
            subprocess.run(["rm", "-rf", str(workdir)], check=True)
        self.logs = workdir / "logs"
        self.logs.mkdir(parents=True)
        self.metrics_port = free_port()
        config = {
            "inputs": [{"paths": [str(self.logs / "*.log")], "start_at": "beginning"}],
            "parser": {"timezone": "UTC"},
            "output": store.output(),
            "state_dir": str(workdir / "state"),
            "metrics": {"listen": f"127.0.0.1:{self.metrics_port}"},
            "tail": {"multiline_flush": 0.2},
            **({"engine": engine} if engine else {}),
            **({"max_in_flight_bytes": in_flight} if in_flight else {}),
        }
        config_path = workdir / "llmtail.yaml"
        config_path.write_text(yaml.safe_dump(config))
        self.log_path = workdir / "agent.log"
        # Checkouts from before the move under `llmtail` (39f69c1) run as `python -m agent`.
        module = "llmtail" if (tree / "llmtail" / "__main__.py").exists() else "agent"
        command = ["taskset", "-c", str(cpu), sys.executable, "-m", module, "run"]
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(
                [*command, "-c", str(config_path)],
                cwd=tree,
                stdout=log,
                stderr=log,
                env={**os.environ, **store.env()},
            )
        wait_for(lambda: "watching" in self.log_path.read_text(), 60, "the agent to start")

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(60)


class Sampler(threading.Thread):
    """Samples a process's RSS every 0.1 s until stopped."""

    def __init__(self, pid: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.peak, self.stopping = pid, 0, threading.Event()

    def run(self) -> None:
        while not self.stopping.wait(0.1):
            try:
                self.peak = max(self.peak, rss_of(self.pid))
            except OSError:
                return


# -- the runs --------------------------------------------------------------------------------


def host_gauges(path: Path, cpu: int) -> dict[str, float]:
    """The agent's two largest costs timed alone over the first 16 MiB of `path`, on `cpu`, by
    this thread's CPU time, the best of three passes each: liblz4 (the senders' work) in MB/s,
    and this tree's core Stream with config.example.yaml (the main thread's) in CPU s/MB. Same
    code and bytes every time, so their swings are the host's; the core's tracks the end-to-end
    figure more closely (bench/README.md, "s13-host")."""
    with open(path, "rb") as f:
        data = f.read(16 << 20)
    pieces = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    engine = build_engine(load_config(REPO / "config.example.yaml"), wire="loggroup")

    def lz4_pass() -> None:
        for piece in pieces:
            lz4.block.compress(piece, store_size=False)

    def core_pass() -> None:
        stream = engine.open(str(path), str(path), 0, 0)
        for piece in pieces:
            stream.feed(piece, 0.0, 1.0)
        stream.drain(1.0)

    previous = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})
    try:
        lz4_s, core_s = best_of_three(lz4_pass), best_of_three(core_pass)
    finally:
        os.sched_setaffinity(0, previous)
    mb = len(data) / 1e6
    return {"host_lz4_mb_per_s": mb / lz4_s, "host_core_s_per_mb": core_s / mb}


def best_of_three(work: Callable[[], None]) -> float:
    """The least thread CPU time of three calls of `work`."""
    best = float("inf")
    for _ in range(3):
        start = time.thread_time()
        work()
        best = min(best, time.thread_time() - start)
    return best


def bulk(agent: AgentProcess, store: LogstoreProcess, path: Path, records: int) -> dict[str, Any]:
    store.admin("POST", "reset")
    size = path.stat().st_size
    cpu0, t0, faults0 = cpu_seconds(agent.pid), time.perf_counter(), minor_faults(agent.pid)
    threads0 = thread_cpu_seconds(agent.pid)
    store_cpu0 = store.cpu_seconds()
    os.link(path, agent.logs / "bulk.log")  # appears whole, as a rotated-in file would
    wait_for(lambda: store.accepted_logs() >= records, 1800, "every record acknowledged")
    wall, cpu = time.perf_counter() - t0, cpu_seconds(agent.pid) - cpu0
    faults = minor_faults(agent.pid) - faults0
    threads = {k: v - threads0.get(k, 0.0) for k, v in thread_cpu_seconds(agent.pid).items()}
    store_cpu = store.cpu_seconds() - store_cpu0
    return {
        "records": records,
        "accepted": store.accepted_logs(),
        "bytes": size,
        "seconds": wall,
        "records_per_s": records / wall,
        "mb_per_s": size / 1e6 / wall,
        "cpu_seconds": cpu,
        "cpu_s_per_mb": cpu / (size / 1e6),
        "records_per_cpu_s": records / cpu,
        "peak_rss_mib": peak_rss(agent.pid) / 2**20,
        "agent_cpu_percent": 100 * cpu / wall,
        "store_cpu_percent": 100 * store_cpu / wall,
        "cpu_s_per_mb_by_thread": {k: v / (size / 1e6) for k, v in threads.items()},
        "minor_faults_per_mb": faults / (size / 1e6),
    }


def steady(agent: AgentProcess, store: LogstoreProcess, seconds: float) -> dict[str, Any]:
    """Append at 1 MB/s (in 50 ms pieces of whole lines); the agent's CPU over the window."""
    path, _ = data_file("steady", int((seconds + 4) * 1e6))
    data = path.read_bytes()
    rate, tick = 1_000_000, 0.05
    before = store.accepted_logs()
    sampler = Sampler(agent.pid)
    sampler.start()
    out = agent.logs / "steady.log"
    written = 0
    measured: tuple[float, float] | None = None
    with open(out, "ab") as f:
        started = time.perf_counter()
        warmup = 2.0
        while True:
            elapsed = time.perf_counter() - started
            if measured is None and elapsed >= warmup:
                measured = (time.perf_counter(), cpu_seconds(agent.pid))
            if elapsed >= warmup + seconds:
                break
            want = int(rate * (elapsed + tick))
            if want > written:
                cut = data.rfind(b"\n", written, want) + 1
                if cut > written:
                    f.write(data[written:cut])
                    f.flush()
                    written = cut
            time.sleep(tick)
    assert measured is not None
    wall = time.perf_counter() - measured[0]
    cpu = cpu_seconds(agent.pid) - measured[1]
    lines = data[:written].count(b"\n")
    sampler.stopping.set()
    return {
        "seconds": wall,
        "bytes_written": written,
        "mb_per_s": written / 1e6 / (wall + 2.0),
        "cpu_percent": 100 * cpu / wall,
        "peak_rss_mib": sampler.peak / 2**20,
        "arrived_logs": store.accepted_logs() - before,
        "lines_written": lines,
    }


def naive(store: LogstoreProcess, path: Path, records: int, cpu: int) -> dict[str, Any]:
    store.admin("POST", "reset")
    command = ["taskset", "-c", str(cpu), sys.executable, str(REPO / "bench" / "naive_shipper.py")]
    command += [str(path), "--endpoint", store.endpoint, "--project", store.project]
    command += ["--logstore", store.logstore, "--timezone", "UTC"]
    t0 = time.perf_counter()
    store_cpu0 = store.cpu_seconds()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, text=True, env={**os.environ, **store.env()}
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    assert proc.stdout is not None
    output = proc.stdout.read()
    proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, output
    work = float(output.strip().splitlines()[-1].split()[1])  # "naive: 12.3 s", start-up excluded
    size = path.stat().st_size
    cpu_used = usage.ru_utime + usage.ru_stime
    store_cpu = store.cpu_seconds() - store_cpu0
    return {
        "accepted": store.accepted_logs(),
        "records": records,
        "seconds": work,
        "seconds_with_startup": wall,
        "records_per_s": records / work,
        "mb_per_s": size / 1e6 / work,
        "cpu_seconds": cpu_used,
        "cpu_s_per_mb": cpu_used / (size / 1e6),
        "records_per_cpu_s": records / cpu_used,
        "peak_rss_mib": usage.ru_maxrss / 1024,
        "agent_cpu_percent": 100 * cpu_used / wall,
        "store_cpu_percent": 100 * store_cpu / wall,
    }


# -- profile ---------------------------------------------------------------------------------

# First match from the innermost frame outwards decides where a sample's time went.
CATEGORIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("lz4 compress", ("lz4", "compress.py")),
    ("SDK signing + Content-MD5", ("auth.py", "hmac", "hashlib", "md5")),
    ("HTTP (requests, urllib3, http.client, socket)", ("requests/", "urllib3/", "http/client")),
    ("SDK other (put_log_raw, response)", ("aliyun/",)),
    ("LogGroup encode", ("loggroup.py", "ndjson.py", "batch.py", "sls.py", "sls_client.py")),
    ("parse + framing (parsers/)", ("parsers/",)),
    ("checkpoint", ("checkpoint.py",)),
    ("stream, dispatch, ledger", ("pystream.py", "dispatch.py", "ledger.py", "flow.py")),
    ("read, watch, fingerprint", ("watcher.py", "tailer.py", "discovery.py", "fingerprint.py")),
    ("daemon loop", ("daemon.py", "envelope.py")),
    ("metrics", ("metrics.py",)),
    ("threading, queues, logging", ("threading.py", "queue.py", "logging/")),
)


def self_time(raw: Path, top: int = 15) -> list[tuple[str, int]]:
    """The innermost frames with the most samples (where the CPU actually was)."""
    leaves: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            frame = stack.split(";")[-1]
            name, _, where = frame.partition(" (")
            leaves[f"{name} ({where.split('/')[-1]}"] += int(count)
    return leaves.most_common(top)


def categorize(raw: Path) -> Counter[str]:
    """py-spy's collapsed stacks (`frame;frame;... count`) summed by category."""
    totals: Counter[str] = Counter()
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        for frame in reversed(frames):
            name = next((c for c, keys in CATEGORIES if any(k in frame for k in keys)), None)
            if name is not None:
                break
        else:
            name = "other"
        totals[name] += int(count)
    return totals


def start_profiler(pid: int, out: Path) -> subprocess.Popen[bytes] | None:
    spy = Path(sys.executable).with_name("py-spy")
    if not spy.exists():
        print("py-spy not found next to this python: no profile", flush=True)
        return None
    command = [str(spy), "record", "--pid", str(pid), "--rate", "200", "--format", "raw"]
    command += ["--threads", "--nonblocking", "-o", str(out)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.0)  # attach before the work starts
    return proc


# -- report ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--size", default="100M", help="bulk file size (e.g. 100M, 1G)")
    ap.add_argument("--steady-seconds", type=float, default=20.0)
    ap.add_argument("--agent-cpu", type=int, default=0)
    ap.add_argument("--store-cpu", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="py-spy the agent's bulk run")
    ap.add_argument("--no-naive", action="store_true")
    ap.add_argument("--no-steady", action="store_true")
    ap.add_argument(
        "--baseline-tree",
        type=Path,
        help="also run the bulk file through the agent of this checkout (git worktree of an "
        "older commit), first, in the same run",
    )
    ap.add_argument(
        "--runs",
        type=int,
        default=1,
        help="bulk runs, each through a fresh agent after a host-speed probe (alternating "
        "with the baseline tree's); steady, naive and the profile follow the last",
    )
    ap.add_argument(
        "--engine", choices=("core", "python"), help="the agent's engine (default: the config's)"
    )
    ap.add_argument(
        "--python-engine-too",
        action="store_true",
        help="also run the bulk file through engine: python first, in the same run",
    )
    ap.add_argument(
        "--in-flight-mib",
        type=int,
        help="max_in_flight_bytes of every agent run (default: the config's, 16)",
    )
    args = ap.parse_args(argv)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    in_flight = args.in_flight_mib << 20 if args.in_flight_mib else None
    size = parse_size(args.size)
    path, records = data_file(f"bulk-{args.size}", size)
    print(f"{path}: {path.stat().st_size / 1e6:.1f} MB, {records} records", flush=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {"python": sys.version.split()[0], "cpus": os.cpu_count()}
    rounds: list[dict[str, Any]] = []
    results["runs"] = rounds
    with LogstoreProcess(count_only=True, cpu=args.store_cpu) as store:

        def agent_of(
            tree: Path = REPO, name: str = "run-agent", engine: str | None = None
        ) -> AgentProcess:
            return AgentProcess(DATA / name, store, args.agent_cpu, tree, engine, in_flight)

        def baseline_run(this_round: dict[str, Any]) -> None:
            if args.baseline_tree is None:
                return
            before = agent_of(args.baseline_tree, "run-baseline", args.engine)
            try:
                this_round["baseline"] = bulk(before, store, path, records)
                print_run("baseline", this_round["baseline"])
            finally:
                before.stop()

        def probe() -> dict[str, Any]:
            gauges = host_gauges(path, args.agent_cpu)
            print(
                f"    host: liblz4 {gauges['host_lz4_mb_per_s']:,.0f} MB/s, the core alone "
                f"{gauges['host_core_s_per_mb']:.4f} CPU s/MB on CPU {args.agent_cpu}",
                flush=True,
            )
            rounds.append(gauges)
            return rounds[-1]

        for _ in range(args.runs - 1):
            this_round = probe()
            baseline_run(this_round)
            agent = agent_of(engine=args.engine)
            try:
                this_round["llmtail"] = bulk(agent, store, path, records)
                print_run("llmtail", this_round["llmtail"])
            finally:
                agent.stop()
        this_round = probe()
        baseline_run(this_round)
        if "baseline" in this_round:
            results["baseline"] = this_round["baseline"]
        if args.python_engine_too:
            python = agent_of(name="run-python", engine="python")
            try:
                results["python_engine"] = bulk(python, store, path, records)
                print_run("python engine", results["python_engine"])
            finally:
                python.stop()
        agent = agent_of(engine=args.engine)
        profiler = None
        raw = RESULTS / "profile-raw.txt"
        if args.profile:
            profiler = start_profiler(agent.pid, raw)
        try:
            results["llmtail"] = this_round["llmtail"] = bulk(agent, store, path, records)
            print_run("llmtail", results["llmtail"])
            if args.runs > 1:
                print_summary(rounds)
            if profiler is not None:
                report_profile(results, profiler, raw)
            if not args.no_steady:
                results["steady"] = steady(agent, store, args.steady_seconds)
                s = results["steady"]
                print(
                    f" steady: {s['mb_per_s']:.2f} MB/s appended for {s['seconds']:.0f} s: "
                    f"agent CPU {s['cpu_percent']:.1f}% of a core, peak RSS "
                    f"{s['peak_rss_mib']:.0f} MiB",
                    flush=True,
                )
        finally:
            code = agent.stop()
            results["agent_exit"] = code
        if not args.no_naive:
            compare_naive(results, store, path, records, args.agent_cpu)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out = RESULTS / f"bench_e2e-{stamp}.json"
    out.write_text(json.dumps(results, indent=2))
    print(f"results: {out}")
    return 0


def report_profile(results: dict[str, Any], profiler: subprocess.Popen[bytes], raw: Path) -> None:
    profiler.send_signal(signal.SIGINT)
    profiler.wait(60)
    results["profile"] = dict(categorize(raw).most_common())
    print_profile(results["profile"], results["llmtail"]["cpu_seconds"])
    results["profile_self"] = self_time(raw)
    total = sum(results["profile"].values()) or 1
    print("  innermost frames (self time):")
    for frame, n in results["profile_self"]:
        print(f"  {100 * n / total:5.1f}%  {frame}")


def compare_naive(
    results: dict[str, Any], store: LogstoreProcess, path: Path, records: int, cpu: int
) -> None:
    results["naive"] = naive(store, path, records, cpu)
    print_run("naive", results["naive"])
    ours, theirs = results["llmtail"], results["naive"]
    ratio = ours["records_per_s"] / theirs["records_per_s"]
    cpu_ratio = ours["records_per_cpu_s"] / theirs["records_per_cpu_s"]
    results["ratio"], results["cpu_ratio"] = ratio, cpu_ratio
    print(
        f"  ratio: llmtail / naive = {ratio:.2f}x by wall time, {cpu_ratio:.2f}x by CPU time",
        flush=True,
    )


def print_summary(rounds: list[dict[str, Any]]) -> None:
    """Median and worst CPU s/MB of each tree over the rounds, beside the host gauges' ranges,
    and each tree's end-to-end figure over the core gauge of its round (the host's speed
    divided out, roughly)."""
    speeds = [r["host_lz4_mb_per_s"] for r in rounds]
    cores = [r["host_core_s_per_mb"] for r in rounds]
    print(
        f"{len(rounds)} rounds; host liblz4 {min(speeds):,.0f}-{max(speeds):,.0f} MB/s "
        f"(median {statistics.median(speeds):,.0f}), the core alone "
        f"{min(cores):.4f}-{max(cores):.4f} CPU s/MB (median {statistics.median(cores):.4f})",
        flush=True,
    )
    for name in ("baseline", "llmtail"):
        figures = [r[name]["cpu_s_per_mb"] for r in rounds if name in r]
        gauged = [r[name]["cpu_s_per_mb"] / r["host_core_s_per_mb"] for r in rounds if name in r]
        if figures:
            print(
                f"{name:>8}: CPU s/MB median {statistics.median(figures):.4f}, "
                f"best {min(figures):.4f}, worst {max(figures):.4f}; "
                f"over the core gauge median {statistics.median(gauged):.2f}x "
                f"({min(gauged):.2f}-{max(gauged):.2f})",
                flush=True,
            )
    pairs = [
        r["baseline"]["cpu_s_per_mb"] / r["llmtail"]["cpu_s_per_mb"]
        for r in rounds
        if "baseline" in r
    ]
    if pairs:
        lower = sum(p > 1 for p in pairs)
        print(
            f"   pairs: baseline / llmtail median {statistics.median(pairs):.3f}x, "
            f"llmtail lower in {lower} of {len(pairs)}",
            flush=True,
        )


def print_run(name: str, r: dict[str, Any]) -> None:
    print(
        f"{name:>8}: {r['records']:,} records ({r['accepted']:,} acknowledged) in "
        f"{r['seconds']:.1f} s: {r['records_per_s']:,.0f} records/s, {r['mb_per_s']:.1f} MB/s, "
        f"{r['cpu_s_per_mb']:.4f} CPU s/MB ({r['records_per_cpu_s']:,.0f} records per CPU s), "
        f"peak RSS {r['peak_rss_mib']:.0f} MiB; "
        f"CPU busy: {name} {r['agent_cpu_percent']:.0f}%, Logstore {r['store_cpu_percent']:.0f}%",
        flush=True,
    )
    threads = r.get("cpu_s_per_mb_by_thread")
    if threads:
        print(
            "          CPU s/MB by thread: "
            + ", ".join(f"{k} {v:.4f}" for k, v in threads.items())
            + f"; minor faults {r.get('minor_faults_per_mb', 0):,.0f}/MB",
            flush=True,
        )


def print_profile(profile: dict[str, int], cpu_seconds: float) -> None:
    total = sum(profile.values()) or 1
    print(f"profile (py-spy, active samples, {total} in all):")
    for name, n in profile.items():
        print(f"  {100 * n / total:5.1f}%  ~{cpu_seconds * n / total:5.1f} CPU s  {name}")


if __name__ == "__main__":
    sys.exit(main())
