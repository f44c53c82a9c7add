"""What a user writes instead of llmtail: `re` per line, the SDK's `put_logs` with `LogItem`s.

    python bench/naive_shipper.py FILE --endpoint 127.0.0.1:PORT --project P --logstore L
        [--timezone UTC]        (credentials: ALIBABA_CLOUD_ACCESS_KEY_ID / _SECRET)

Reads FILE once to its end, joins continuation lines onto the record before them, splits the
llm_call payload on commas, and posts 4096 records per PutLogs request through the official
SDK (which protobuf-encodes, lz4-compresses and signs). No checkpoints, retries or tailing: the
baseline is the cheapest script that still ships typed records. The one concession to the test
setup: the SDK reaches a project by name (`{project}.{endpoint}`) and cannot reach the local
Logstore's `IP:PORT`, so an `IP:PORT` endpoint is reached as tests/logstore does it: by the name
`sls.llmtail.test:PORT`, through `requests`' HTTP proxy set to the endpoint. Prints one line:
records, requests, seconds.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from datetime import datetime
from zoneinfo import ZoneInfo

from aliyun.log import LogClient, LogItem, PutLogsRequest

HEADER = re.compile(
    r"^(\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}\.\d{3}) +(\w+) +\[traceId:(.*?)\] "
    r"\[(.*?)#(.*?)\(\):(.*?)\] \[(.*?)\] - (.*)$"
)
KEYS = ("time", "level", "trace_id", "logger", "method", "line", "thread", "message")
PAYLOAD = (
    "app",
    "module",
    "model",
    "workspace",
    "request_id",
    "status_code",
    "duration_ms",
    "input_tokens",
    "output_tokens",
    "total_tokens",
    "error_code",
    "error_message",
)
PER_REQUEST = 4096


def to_item(fields: list[str], zone: ZoneInfo) -> LogItem:
    when = datetime.strptime(fields[0], "%Y-%m-%d %H:%M:%S.%f").replace(tzinfo=zone)
    contents = list(zip(KEYS, fields, strict=True))
    parts = fields[7].split("\n", 1)[0].split(",", len(PAYLOAD) - 1)
    if len(parts) == len(PAYLOAD):
        contents += list(zip(PAYLOAD, parts, strict=True))
    return LogItem(int(when.timestamp()), contents)


def ship(path: str, client: LogClient, project: str, logstore: str, zone: ZoneInfo) -> int:
    items: list[LogItem] = []
    records = requests = 0
    current: list[str] | None = None

    def flush() -> None:
        nonlocal items, requests
        if items:
            client.put_logs(PutLogsRequest(project, logstore, "", "", items))
            requests += 1
            items = []

    with open(path, encoding="utf-8", errors="replace") as f:
        for raw in f:
            line = raw.rstrip("\n")
            m = HEADER.match(line)
            if m:
                if current is not None:
                    items.append(to_item(current, zone))
                    records += 1
                    if len(items) >= PER_REQUEST:
                        flush()
                current = list(m.groups())
            elif current is not None:
                current[7] += "\n" + line
    if current is not None:
        items.append(to_item(current, zone))
        records += 1
    flush()
    print(f"naive: {records} records in {requests} requests", flush=True)
    return records


def sdk_endpoint(endpoint: str) -> str:
    """`endpoint` for the SDK; an IPv4 `IP:PORT` becomes the local Logstore's name behind the
    HTTP proxy of this process (no private SDK flag is set)."""
    host, _, port = endpoint.removeprefix("http://").rpartition(":")
    if port.isdigit() and host.replace(".", "").isdigit():
        os.environ.update(http_proxy=f"http://{host}:{port}", no_proxy="", NO_PROXY="")
        return f"sls.llmtail.test:{port}"
    return endpoint


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("path")
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--project", required=True)
    ap.add_argument("--logstore", required=True)
    ap.add_argument("--timezone", default="UTC")
    args = ap.parse_args(argv)
    client = LogClient(
        sdk_endpoint(args.endpoint),
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_ID"],
        os.environ["ALIBABA_CLOUD_ACCESS_KEY_SECRET"],
        source="127.0.0.1",
    )
    started = time.perf_counter()
    ship(args.path, client, args.project, args.logstore, ZoneInfo(args.timezone))
    print(f"naive: {time.perf_counter() - started:.1f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
