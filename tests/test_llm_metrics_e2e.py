"""The running agent counts every llm_call once on /metrics, however often its batch is retried.

A real `llmtail run` ships through the real SDK to the local Logstore, which fails the first
PutLogs requests with 500s; the agent retries them. The LLM counters must still equal the
records in the files, exactly.
"""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from tests.agentproc import (
    Agent,
    LogstoreProcess,
    StampedLines,
    free_port,
    metrics_text,
    wait_for,
)

ZONE = "Asia/Shanghai"
RECORDS = 1200


def samples(port: int) -> dict[str, float]:
    """Sample values summed over labels, by sample name; plus `name{k=v,...}` for each series."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(metrics_text(port)):
        for s in family.samples:
            out[s.name] = out.get(s.name, 0.0) + s.value
            labels = ",".join(f"{k}={v}" for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}"] = s.value
    return out


def test_retried_batches_are_not_counted_again(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    lines = StampedLines(ZONE)
    (logs / "a.log").write_bytes(lines.block(range(RECORDS)))
    port = free_port()
    with LogstoreProcess() as store:
        store.fault(code="InternalServerError", count=6)  # the first six requests fail
        config = {
            "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
            "parser": {"timezone": ZONE},
            "output": store.output(max_backoff=0.2),
            "tail": {"poll_interval": 0.05, "rescan_interval": 0.5},
            "batch": {"linger": 0.1, "max_records": 100},
            "metrics": {"listen": f"127.0.0.1:{port}"},
        }
        with Agent(tmp_path, config) as agent:
            agent.start(env=store.env())
            delivered = "llmtail_output_records_total{outcome=delivered,output=sls}"
            wait_for(lambda: samples(port).get(delivered) == RECORDS, 60, "every record delivered")
            got = samples(port)
            assert agent.stop() == 0
    assert got["llmtail_batch_retries_total"] >= 6  # batches were sent more than once
    assert got["llmtail_llm_calls_total"] == RECORDS
    assert got["gen_ai_client_operation_duration_seconds_count"] == RECORDS
    # Each record: 10 input, 20 output, 30 total tokens, 120 ms, status 200 (StampedLines.line).
    tokens = "llmtail_llm_tokens_total{app=chatbot,error_code=,model=qwen-plus,module=qa,"
    assert got[tokens + "status_code=200,token_type=input,workspace=ws-1}"] == 10 * RECORDS
    assert got[tokens + "status_code=200,token_type=total,workspace=ws-1}"] == 30 * RECORDS
    assert got["gen_ai_client_operation_duration_seconds_sum"] == 0.12 * RECORDS
