"""Run the local Logstore as its own process (end-to-end tests, benchmarks).

    python -m tests.logstore --port 0 --project p --logstore l --ak-id ID --ak-secret SECRET

The first line on stdout is the bound port; the server runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from types import FrameType

from tests.logstore.server import LocalLogstore


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.logstore", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project", default="llmtail-test")
    parser.add_argument("--logstore", default="llmtail")
    parser.add_argument("--ak-id", default="LTAIlocaltestkey")
    parser.add_argument("--ak-secret", default="local-test-secret")
    parser.add_argument("--sts-token", default=None, help="require this security token")
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="PROJECT/LOGSTORE",
        help="another logstore that exists (repeatable)",
    )
    parser.add_argument("--count-only", action="store_true", help="count logs, keep none")
    args = parser.parse_args(argv)

    server = LocalLogstore(
        args.project,
        args.logstore,
        access_key_id=args.ak_id,
        access_key_secret=args.ak_secret,
        security_token=args.sts_token,
        host=args.host,
        port=args.port,
        count_only=args.count_only,
    )
    for extra in args.also:
        project, _, logstore = extra.partition("/")
        server.add_logstore(project, logstore)
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server.start()
    print(server.port, flush=True)
    print(f"local Logstore on {server.url} ({args.project}/{args.logstore})", flush=True)
    stopping.wait()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
