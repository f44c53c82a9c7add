"""Real Logback writers for tests (design.md section 8).

The Java harness under tests/java logs through logback 1.2 itself (Debian's liblogback-java), so
rotation, gzip, AsyncAppender and exception rendering are the writer users run, not a simulation.
It is compiled once per source hash into a cache directory shared by every test session.

    build = build_writer()                                  # cached classes dir
    proc = start_writer(log_dir, "rolling-gz", records=0, rate=500)  # until SIGTERM
    proc.send_signal(signal.SIGTERM); proc.wait()           # logback drains and finishes its gzip
    ids = read_ids(log_dir)                                 # every id, all generations, in order

Each record carries a unique id on its first line: `seq=N` in the message, or for `llm_call`
payloads the last group of the request id (`xxxxxxxx-xxxx-xxxx-xxxx-00000000000N`).
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

JAVA_SOURCES = Path(__file__).resolve().parent / "java"
JAVA_LIB = Path(os.environ.get("LLMTAIL_JAVA_LIB", "/usr/share/java"))
JARS = ("logback-classic.jar", "logback-core.jar", "slf4j-api.jar")
MAIN_CLASS = "llmtail.writer.LlmLogWriter"
MODES = ("plain", "async", "rolling-gz", "rolling-plain")
# The zone the JVM writes %d in; tests give the parser the same zone (it is not the host's).
JVM_TIMEZONE = "Asia/Shanghai"
SEED_PATTERN = (
    "%d{yyyy-MM-dd HH:mm:ss.SSS} %-5p [traceId:%X{traceId}] [%c{3}#%method\\(\\):%L] "
    "[%thread] - %m%n"
)
LOGGER_LENGTH = 3  # the {3} of %c{3} above

_RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} ")
_ID = re.compile(r"seq=(\d+)|\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-(\d{12})\b")
_ROLLED = re.compile(r"\.(\d{4}-\d\d-\d\d)\.(\d+)\.log(?:\.gz)?$")  # logback: app.DATE.N.log[.gz]
_ROTATED = re.compile(r"\.log\.(\d+)(?:\.gz)?$")  # logrotate: app.log.N[.gz]
_PENDING_GZIP = re.compile(r"\.log\d+\.tmp$")  # logback renamed it and is gzipping it


def unavailable() -> str | None:
    """Why the real writer cannot run here, or None when it can."""
    for tool in ("java", "javac"):
        if shutil.which(tool) is None:
            return f"{tool} not found (CI installs a JDK)"
    missing = [jar for jar in JARS if not (JAVA_LIB / jar).is_file()]
    if missing:
        return (
            f"{', '.join(missing)} not in {JAVA_LIB} "
            "(apt-get install liblogback-java libslf4j-java; CI installs them)"
        )
    return None


def classpath(build: Path) -> str:
    return os.pathsep.join([str(build), *(str(JAVA_LIB / jar) for jar in JARS)])


def _source_key() -> str:
    """Hash of what the build depends on: sources, configs and the jars it links against."""
    digest = hashlib.sha256()
    for path in sorted(JAVA_SOURCES.rglob("*")):
        if path.suffix in (".java", ".xml"):
            digest.update(str(path.relative_to(JAVA_SOURCES)).encode())
            digest.update(path.read_bytes())
    for jar in JARS:
        real = (JAVA_LIB / jar).resolve()
        digest.update(f"{real}:{real.stat().st_size}".encode())
    return digest.hexdigest()[:16]


def build_writer(cache_dir: Path | None = None) -> Path:
    """Compile the harness (once per source hash) and return its classes directory.

    Concurrent sessions each compile into a private directory and rename it into place; the
    loser of the race discards its copy, so a half-written cache is never used.
    """
    reason = unavailable()
    if reason is not None:
        raise RuntimeError(f"real logback writer unavailable: {reason}")
    root = cache_dir or Path(
        os.environ.get("LLMTAIL_WRITER_CACHE", Path(tempfile.gettempdir()) / "llmtail-writer")
    )
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"classes-{_source_key()}"
    if final.is_dir():
        return final
    work = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
    try:
        sources = sorted(str(p) for p in JAVA_SOURCES.rglob("*.java"))
        jars = os.pathsep.join(str(JAVA_LIB / jar) for jar in JARS)
        cmd = ["javac", "-nowarn", "-encoding", "UTF-8", "-d", str(work), "-cp", jars, *sources]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"javac failed:\n{done.stderr}")
        for xml in JAVA_SOURCES.glob("*.xml"):
            shutil.copy2(xml, work / xml.name)
        try:
            work.rename(final)
        except OSError:
            if not final.is_dir():
                raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return final


def writer_command(
    log_dir: Path,
    mode: str,
    records: int,
    rate: float = 0.0,
    *,
    truth: Path | None = None,
    start: int = 1,
    seed: int = 1,
    max_file_size: str = "64KB",
    charset: str = "UTF-8",
    timezone: str = JVM_TIMEZONE,
    build: Path | None = None,
) -> list[str]:
    """The java command line; records <= 0 writes until SIGTERM, rate 0 writes flat out.

    charset is the encoder's (Java name): GBK is what a JVM on Chinese Windows writes.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
    cmd = [
        "java",
        "-Xmx128m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",  # starts faster; the writer is never the bottleneck
        f"-Duser.timezone={timezone}",
        "-Dfile.encoding=UTF-8",
        f"-Dllmtail.maxFileSize={max_file_size}",
        f"-Dllmtail.charset={charset}",
        "-cp",
        classpath(build or build_writer()),
        MAIN_CLASS,
        *("--mode", mode, "--dir", str(log_dir), "--records", str(records)),
        *("--rate", repr(float(rate)), "--start", str(start), "--seed", str(seed)),
    ]
    if truth is not None:
        cmd += ["--truth", str(truth)]
    return cmd


def start_writer(
    log_dir: Path,
    mode: str,
    records: int,
    rate: float = 0.0,
    **options: Any,
) -> subprocess.Popen[bytes]:
    """Start a writer into log_dir (active file app.log); see writer_command for options.

    SIGTERM makes it stop logging, drain the AsyncAppender, finish a pending gzip and exit 0.
    """
    log_dir.mkdir(parents=True, exist_ok=True)
    cmd = writer_command(log_dir, mode, records, rate, **options)
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_until_writing(log_dir: Path, timeout: float = 30.0) -> None:
    """Block until the writer's first record is in app.log (the JVM takes ~0.5 s to start)."""
    active = log_dir / "app.log"
    deadline = time.monotonic() + timeout
    while not (active.is_file() and active.stat().st_size > 0):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no record in {active} after {timeout} s")
        time.sleep(0.02)


@dataclass(frozen=True)
class Truth:
    """What the harness asked logback to log for one record (the sidecar's JSON line)."""

    seq: int
    level: str
    logger: str  # the full name; the file holds its %c{3} abbreviation
    method: str  # the real caller, even in async mode where the file holds '?'
    line: int
    thread: str
    trace_id: str
    message: str  # the formatted message, without the stack trace
    throwable: str | None  # logback's rendering of the exception, ending in a newline
    ts_min_ms: int  # the event's timestamp lies within [ts_min_ms, ts_max_ms]
    ts_max_ms: int
    payload: dict[str, str | int] | None

    @property
    def full_message(self) -> str:
        """The record's message as a parser should return it: continuation lines included."""
        if self.throwable is None:
            return self.message
        return f"{self.message}\n{self.throwable.removesuffix(chr(10))}"

    @property
    def event(self) -> str:
        if self.payload is not None:
            return "llm_call"
        for kind in ("prompt", "result"):
            if self.message.startswith(f"{kind}:"):
                return kind
        return "log"


def run_writer(
    log_dir: Path, mode: str, records: int, *, timeout: float = 120.0, **options: Any
) -> list[Truth]:
    """Write `records` records, wait for the writer, and return the truth of each record."""
    truth = log_dir.parent / f"{log_dir.name}.truth.jsonl"
    proc = start_writer(log_dir, mode, records, truth=truth, **options)
    _, err = proc.communicate(timeout=timeout)
    if proc.returncode != 0:
        raise RuntimeError(f"writer exited {proc.returncode}:\n{err.decode(errors='replace')}")
    return read_truth(truth)


def read_truth(path: Path) -> list[Truth]:
    with path.open(encoding="utf-8") as lines:
        return [Truth(**json.loads(line)) for line in lines]


def abbreviate_logger(name: str, length: int = LOGGER_LENGTH) -> str:
    """Logback's %c{length}: shorten packages to initials, left to right, until the name fits
    (TargetLengthBasedClassNameAbbreviator); the last segment is never shortened."""
    if len(name) < length or "." not in name:
        return name
    parts = name.split(".")
    to_trim = len(name) - length
    out = []
    for part in parts[:-1]:
        keep = part[:1] if to_trim > 0 else part
        to_trim -= len(part) - len(keep)
        out.append(keep)
    return ".".join([*out, parts[-1]])


def _generation_key(path: Path) -> tuple[int, str, int]:
    """Oldest first: logback's rolled files by date and index, logrotate's by falling N,
    the active file last."""
    name = _PENDING_GZIP.sub(".log", path.name)  # app.DATE.N.log<nanos>.tmp: that generation
    if m := _ROLLED.search(name):
        return (0, m.group(1), int(m.group(2)))
    if m := _ROTATED.search(name):
        return (1, "", -int(m.group(1)))
    return (2, name, 0)


def log_generations(log_dir: Path) -> list[Path]:
    """Every generation of the log in log_dir (plain, .gz, logback's pending .tmp), oldest first."""
    names = [p for p in log_dir.iterdir() if p.is_file() and ".log" in p.name]
    return sorted(names, key=_generation_key)


def read_log_bytes(path: Path) -> bytes:
    """A generation's content; a .gz cut short (writer killed mid-gzip) yields what it holds."""
    data = path.read_bytes()
    if not path.name.endswith(".gz"):
        return data
    try:
        return gzip.decompress(data)
    except (EOFError, OSError):
        return zlib.decompressobj(wbits=31).decompress(data)


def record_id(text: str) -> int | None:
    """The unique id of a record from its first line (or its parsed message)."""
    m = _ID.search(text)
    if m is None:
        return None
    return int(m.group(1) or m.group(2))


def _record_first_lines(text: str) -> Iterator[str]:
    for line in text.split("\n"):
        if _RECORD_START.match(line):
            yield line


def read_ids(log_dir: Path) -> list[int]:
    """Every record id in every generation of log_dir, in write order; duplicates kept.

    Call it once the writer has exited: mid-gzip, a record is in both the .tmp and the .gz.
    """
    ids: list[int] = []
    for path in log_generations(log_dir):
        text = read_log_bytes(path).decode("utf-8", errors="replace")
        for first_line in _record_first_lines(text):
            found = record_id(first_line)
            if found is not None:
                ids.append(found)
    return ids


@pytest.fixture(scope="session")
def logback_writer() -> Path:
    """The compiled harness; skips the test when java or the logback jars are missing."""
    reason = unavailable()
    if reason is not None:
        pytest.skip(f"real logback writer unavailable: {reason}")
    return build_writer()
