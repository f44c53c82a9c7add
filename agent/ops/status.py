"""`llmtail status`: what the agent on this host is doing, for a person at a shell.

The running agent knows best, so its metrics endpoint (`GET /status`) is asked first. When it is
not reachable (agent stopped, crashed or metrics disabled) the checkpoint file in state_dir still
says how far each file was delivered, and a stat of each file says how far behind that is.

`/status` answers `AgentStatus.to_document()`, built by the daemon's status function from its
own state; keys may be missing and unknown keys are ignored:

    {"pid": 1234, "started_at": 1764270000.0, "records_per_second": 120.5,
     "records_delivered": 250000,                        # since the agent started
     "last_delivery_at": 1764270300.0,                   # epoch seconds, or null
     "last_error": {"at": 1764270200.0, "message": "..."},  # or a string, or null
     "files": [{"path": "/var/log/app/app.log", "offset": 1048576, "size": 1050000}]}

where `offset` is the committed (delivered) offset and `size` the file's current size, and
`records_per_second` the deliveries of the last minute (ops/throughput.py).

Exit status of `llmtail status`: 0 an agent runs (its endpoint answered, or the checkpoint's
lock holder is alive); 3 no agent runs (LSB's "program is not running", as `systemctl status`),
said in one line with what the last checkpoint holds; 1 nothing to report at all.
"""

from __future__ import annotations

import dataclasses
import http.client
import json
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from llmtail.agent.config import Config
from llmtail.agent.ops.metrics import MetricsError, parse_listen

CHECKPOINT_NAME = "checkpoints.json"  # agent.state.checkpoint.Checkpointer's default name
LOCK_NAME = "lock"  # agent.state.checkpoint.StateDirLock: holds the running agent's pid


@dataclasses.dataclass(frozen=True, slots=True)
class FileState:
    """One followed file: the committed offset and, when known, the file's size now."""

    path: str
    offset: int
    size: int | None
    note: str = ""  # why `behind` is unknown, e.g. "rotated" or "missing"

    @property
    def behind(self) -> int | None:
        """Bytes written but not yet delivered."""
        return None if self.size is None else max(self.size - self.offset, 0)


@dataclasses.dataclass(frozen=True, slots=True)
class AgentStatus:
    """What could be learned about the agent, and where it came from."""

    source: str
    live: bool = False  # True: from the running agent itself, which knows deliveries and errors
    files: list[FileState] = dataclasses.field(default_factory=list)
    running: bool | None = None  # None: cannot tell
    pid: int | None = None
    started_at: float | None = None
    records_per_second: float | None = None
    records_delivered: int | None = None  # since the agent started
    last_delivery_at: float | None = None
    last_error: str | None = None
    last_error_at: float | None = None
    saved_at: float | None = None  # when the checkpoint file was written
    remarks: tuple[str, ...] = ()

    @property
    def behind(self) -> int:
        """Bytes not yet delivered, over the files whose lag is known."""
        return sum(f.behind or 0 for f in self.files)

    def to_document(self) -> dict[str, Any]:
        """The `/status` JSON the daemon serves (agent.ops.metrics.MetricsServer's status=)."""
        error = None
        if self.last_error is not None:
            error = {"at": self.last_error_at, "message": self.last_error}
        return {
            "pid": self.pid,
            "started_at": self.started_at,
            "records_per_second": self.records_per_second,
            "records_delivered": self.records_delivered,
            "last_delivery_at": self.last_delivery_at,
            "last_error": error,
            "files": [{"path": f.path, "offset": f.offset, "size": f.size} for f in self.files],
        }

    @classmethod
    def from_document(cls, doc: Any, source: str) -> AgentStatus:
        """Read a `/status` document; raises ValueError, TypeError or KeyError if malformed."""
        if not isinstance(doc, dict):
            raise TypeError("not a JSON object")
        error = doc.get("last_error")
        error_at = None
        if isinstance(error, dict):
            error_at = _opt_float(error.get("at"))
            error = error.get("message")
        files = [
            FileState(path=str(f["path"]), offset=int(f["offset"]), size=_opt_int(f.get("size")))
            for f in doc.get("files") or []
        ]
        return cls(
            source=source,
            live=True,
            files=sorted(files, key=lambda f: f.path),
            running=True,
            pid=_opt_int(doc.get("pid")),
            started_at=_opt_float(doc.get("started_at")),
            records_per_second=_opt_float(doc.get("records_per_second")),
            records_delivered=_opt_int(doc.get("records_delivered")),
            last_delivery_at=_opt_float(doc.get("last_delivery_at")),
            last_error=None if error is None else " ".join(str(error).split()),
            last_error_at=error_at,
        )

    def summary(self) -> str:
        """One line for systemd's STATUS= (`systemctl status`): files, rate, lag, last error."""
        count = len(self.files)
        parts = [f"{count} file{'' if count == 1 else 's'}"]
        if self.records_per_second is not None:
            parts.append(f"{self.records_per_second:.1f} records/s")
        parts.append(f"{_bytes(self.behind)} behind")
        if self.last_error is not None:
            parts.append(f"last error: {' '.join(self.last_error.split())}")
        return ", ".join(parts)


class StatusUnavailableError(Exception):
    """Nothing to report from one source; the message says why, in one line."""


def show_status(config: Config, out: TextIO, err: TextIO, timeout: float = 1.0) -> int:
    """Print the agent's status table to `out`; exit code 1 with one line on `err` if none."""
    reasons = []
    endpoint = config.metrics.listen
    if endpoint:
        try:
            out.write(render(from_endpoint(endpoint, timeout), time.time()))
            return 0
        except StatusUnavailableError as exc:
            reasons.append(str(exc))
    else:
        reasons.append("metrics endpoint disabled (metrics.listen: null)")
    try:
        status = from_checkpoint(Path(config.state_dir))
    except StatusUnavailableError as exc:
        reasons.append(str(exc))
        err.write(f"llmtail: no agent status found: {'; '.join(reasons)}\n")
        return 1
    if not status.running:
        err.write(f"llmtail: {not_running(status, time.time())}\n")
        return 3
    status = dataclasses.replace(status, remarks=(*reasons, *status.remarks))
    out.write(render(status, time.time()))
    return 0


def not_running(status: AgentStatus, now: float) -> str:
    """One line: no agent runs, and how far its last checkpoint got."""
    who = "no pid recorded" if status.pid is None else f"last pid {status.pid}"
    saved = "" if status.saved_at is None else f", saved {_when(status.saved_at, now)}"
    count = len(status.files)
    return (
        f"no agent is running ({who}); its last checkpoint{saved}: "
        f"{count} file{'' if count == 1 else 's'}, {_bytes(status.behind)} behind"
    )


def from_endpoint(listen: str, timeout: float = 1.0) -> AgentStatus:
    """Ask the running agent's metrics endpoint (`host:port`) for `/status`."""
    host, port = _connect_address(listen)
    url = f"http://{_bracket(host)}:{port}/status"
    # http.client, not urllib: an http_proxy variable must never route a loopback call.
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/status", headers={"Accept": "application/json"})
        response = conn.getresponse()
        body = response.read(16 * 1024 * 1024)
    except (OSError, http.client.HTTPException) as exc:
        raise StatusUnavailableError(f"no agent answering at {url} ({_why(exc)})") from None
    finally:
        conn.close()
    if response.status != 200:
        raise StatusUnavailableError(f"{url} answered HTTP {response.status}")
    try:
        doc = json.loads(body)
        return AgentStatus.from_document(doc, url)
    except (ValueError, TypeError, KeyError, AttributeError):
        raise StatusUnavailableError(f"{url} did not answer the expected JSON") from None


def from_checkpoint(state_dir: Path) -> AgentStatus:
    """Committed offsets from the checkpoint file, compared with the files on disk now.

    Read-only on purpose: the agent may be saving at this very moment, and its temp file is
    none of our business.
    """
    path = state_dir / CHECKPOINT_NAME
    try:
        raw = path.read_bytes()
        saved_at = path.stat().st_mtime
    except FileNotFoundError:
        raise StatusUnavailableError(f"no checkpoint file at {path}") from None
    except PermissionError:
        raise StatusUnavailableError(
            f"cannot read {path}: permission denied (run as root or as the llmtail user)"
        ) from None
    except OSError as exc:
        raise StatusUnavailableError(f"cannot read {path}: {_why(exc)}") from None
    try:
        doc = json.loads(raw)
        version = doc["version"]
        entries = doc["checkpoints"]
        if not isinstance(version, int) or not isinstance(entries, list):
            raise TypeError
        files = [_checkpoint_file(entry) for entry in entries]
    except (ValueError, TypeError, KeyError, AttributeError):
        raise StatusUnavailableError(f"{path} is not a checkpoint file llmtail can read") from None
    pid = _lock_holder(state_dir / LOCK_NAME)
    return AgentStatus(
        source=f"checkpoint file {path}",
        files=sorted(files, key=lambda f: f.path),
        running=None if pid is None else _alive(pid),
        pid=pid,
        saved_at=saved_at,
    )


def render(status: AgentStatus, now: float) -> str:
    """The human table `llmtail status` prints."""
    lines = [f"source:         {status.source}"]
    lines += [f"note:           {remark}" for remark in status.remarks]
    lines.append(f"agent:          {_agent_line(status, now)}")
    if status.saved_at is not None:
        lines.append(f"saved:          {_when(status.saved_at, now)}")
    if status.records_per_second is not None:
        total = ""
        if status.records_delivered is not None:
            total = f"; {status.records_delivered:,} delivered since start"
        lines.append(f"throughput:     {status.records_per_second:.1f} records/s{total}")
    if status.live:
        lines.append(f"last delivery:  {_when(status.last_delivery_at, now)}")
        error = status.last_error or "none"
        at = f" ({_when(status.last_error_at, now)})" if status.last_error_at is not None else ""
        lines.append(f"last error:     {error}{at}")
    lines.append("")
    lines.extend(_table(status.files))
    return "\n".join(lines) + "\n"


def _table(files: list[FileState]) -> list[str]:
    if not files:
        return ["no files followed yet"]
    rows = [("FILE", "OFFSET", "SIZE", "BEHIND")]
    for f in files:
        size = "?" if f.size is None else str(f.size)
        behind = (f.note or "?") if f.behind is None else _bytes(f.behind)
        rows.append((f.path, str(f.offset), size, behind))
    width = max(len(row[0]) for row in rows)
    nums = [max(len(row[i]) for row in rows) for i in (1, 2, 3)]
    return [
        f"{row[0]:<{width}}  {row[1]:>{nums[0]}}  {row[2]:>{nums[1]}}  {row[3]:>{nums[2]}}"
        for row in rows
    ]


def _checkpoint_file(entry: Any) -> FileState:
    path, offset = str(entry["path"]), int(entry["offset"])
    identity = entry.get("identity") or {}
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return FileState(path, offset, None, "missing")
    except OSError:
        return FileState(path, offset, None, "unreadable")
    if "dev" in identity and (st.st_dev, st.st_ino) != (identity["dev"], identity.get("ino")):
        # The path now names a newer file: the checkpointed one was rotated away.
        return FileState(path, offset, None, "rotated")
    return FileState(path, offset, st.st_size)


def _agent_line(status: AgentStatus, now: float) -> str:
    if status.running is None:
        return "unknown (no pid recorded)" if status.pid is None else f"unknown, pid {status.pid}"
    if not status.running:
        return f"not running (last pid {status.pid})"
    parts = ["running"]
    if status.pid is not None:
        parts.append(f"pid {status.pid}")
    if status.started_at is not None:
        parts.append(f"up {_duration(now - status.started_at)}")
    return ", ".join(parts)


def _when(stamp: float | None, now: float) -> str:
    if stamp is None:
        return "never"
    local = datetime.fromtimestamp(stamp).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    return f"{local} ({_duration(now - stamp)} ago)"


def _duration(seconds: float) -> str:
    s = max(int(seconds), 0)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d{hours:02d}h"
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{s:02d}s" if minutes else f"{s}s"


def _bytes(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    size, unit = n / 1024, "KiB"
    for bigger in ("MiB", "GiB", "TiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    return f"{size:.1f} {unit}"


def _connect_address(listen: str) -> tuple[str, int]:
    try:
        host, port = parse_listen(listen)
    except MetricsError as exc:
        raise StatusUnavailableError(str(exc)) from None
    # A wildcard listen address is reached through loopback.
    return {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host), port


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _lock_holder(path: Path) -> int | None:
    try:
        return int(path.read_text(encoding="ascii").strip())
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__
