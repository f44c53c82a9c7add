"""Masking end to end: prompts and results that carry planted secrets reach the Logstore with
none of them in any stored byte, through a real `llmtail run` and the local Logstore; the
per-rule counters say what was masked."""

from __future__ import annotations

from pathlib import Path

import orjson

from tests.agentproc import (
    Agent,
    LogstoreProcess,
    StampedLines,
    free_port,
    metrics_text,
    wait_for,
)

ZONE = "Asia/Shanghai"
PLANTED = {
    "mobile": "13812345678",
    "resident_id": "11010519491231002X",
    "bank_card": "4111111111111111",
    "email": "li.lei@example.com",
    "alibaba_access_key": "LTAI5tQ8mZ3xYk9Wv2Rb7Nc1",
    "api_key": "sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c",
}
ROUNDS = 50


def prompt_lines(lines: StampedLines, seq: int) -> bytes:
    """A DEBUG prompt spread over two lines and a result, carrying the planted values."""
    head = lines.line(seq).split(b" - ", 1)[0].replace(b"INFO ", b"DEBUG")
    prompt = (
        f"prompt: 我的手机号码{PLANTED['mobile']}，身份证号{PLANTED['resident_id']}\n"
        f"卡号 {PLANTED['bank_card']} 邮箱 {PLANTED['email']}"
    )
    result = (
        f'result: {{"AccessKeyId":"{PLANTED["alibaba_access_key"]}","key":"{PLANTED["api_key"]}"}}'
    )
    return head + b" - " + prompt.encode() + b"\n" + head + b" - " + result.encode() + b"\n"


def masked_counts(port: int) -> dict[str, float]:
    out = {}
    for line in metrics_text(port).splitlines():
        if line.startswith("llmtail_masked_total{"):
            rule = line.split('rule="', 1)[1].split('"', 1)[0]
            out[rule] = float(line.rsplit(" ", 1)[1])
    return out


def test_planted_secrets_never_reach_the_logstore_and_the_counters_match(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    app = logs / "app.log"
    app.write_bytes(b"".join(prompt_lines(lines, i) + lines.line(i) for i in range(ROUNDS)))
    port = free_port()
    with LogstoreProcess() as store:
        config = {
            "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
            "parser": {"timezone": ZONE},
            "output": store.output(),
            "metrics": {"listen": f"127.0.0.1:{port}"},
            "tail": {"poll_interval": 0.05, "multiline_flush": 0.2},
        }
        with Agent(tmp_path, config) as agent:
            agent.start(env=store.env())
            wait_for(lambda: store.accepted_logs() >= 3 * ROUNDS, 60, "every record")
            counts = masked_counts(port)
            assert agent.stop() == 0
        stored = orjson.dumps(store.records())
    for rule, value in PLANTED.items():
        assert value.encode() not in stored, f"{rule}: {value} reached the Logstore"
        assert counts.get(rule) == ROUNDS, (rule, counts)
    assert b"***" in stored
