"""docs/prometheus: the alert rules and the Grafana dashboard are valid PromQL over the metrics
llmtail really exposes (checked with promtool, from Debian's prometheus package)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import orjson
import pytest
import yaml
from prometheus_client import generate_latest

from llmtail.agent.engine.llm_aggregate import LlmAggregate
from llmtail.agent.ops.metrics import AgentMetrics, Registry

DOCS = Path(__file__).resolve().parent.parent / "docs" / "prometheus"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool missing (apt-get install prometheus)"
)
NAME = re.compile(r"\b((?:llmtail|gen_ai)_[a-z0-9_]+)")
LABELS = re.compile(r"\{[^}]*\}|\b(?:by|on|without|ignoring|group_left)\s*\([^)]*\)")
GRAFANA = {"$__rate_interval": "5m", "$__range": "1h", "$model": ".*", "$workspace": ".*"}


def promtool(*args: str, cwd: Path = DOCS) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *args], cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )


def dashboard_exprs() -> list[str]:
    dash = orjson.loads((DOCS / "llmtail-dashboard.json").read_bytes())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    assert len(exprs) >= 15
    return exprs


def rule_exprs() -> list[str]:
    doc = yaml.safe_load((DOCS / "llmtail-rules.yml").read_text())
    return [r["expr"] for g in doc["groups"] for r in g["rules"]]


def exposed_names() -> set[str]:
    """Every family name on an agent's /metrics once it has counted a call and a feedback."""
    registry = Registry()
    metrics = AgentMetrics.register(registry, inputs=["/var/log/app/*.log"])
    batch = LlmAggregate()
    batch.add({"event": "llm_call", "model": "qwen-max", "status_code": 429}, 1.0)
    batch.add({"event": "feedback", "rating": "down"}, 1.0)
    metrics.count_sealed(batch)
    text = generate_latest(registry).decode()
    return {line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")}


@needs_promtool
def test_the_alert_rules_pass_promtool_check() -> None:
    out = promtool("check", "rules", "llmtail-rules.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_the_alerts_fire_on_the_series_llmtail_exposes() -> None:
    out = promtool("test", "rules", "llmtail-rules.test.yml")
    assert out.returncode == 0, out.stdout + out.stderr


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    rules = []
    for n, query in enumerate(dashboard_exprs()):
        expr = query
        for variable, value in GRAFANA.items():
            expr = expr.replace(variable, value)
        rules.append({"record": f"dashboard:panel_{n}", "expr": expr})
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    out = promtool("check", "rules", str(path), cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr


def test_rules_and_dashboard_use_only_metrics_llmtail_exposes() -> None:
    exposed = exposed_names() | {
        "llmtail_llm_quota_calls_per_minute",  # the quotas users write in the rules file
        "llmtail_llm_quota_tokens_per_minute",
    }
    used = set()
    for expr in [*rule_exprs(), *dashboard_exprs()]:
        for name in NAME.findall(LABELS.sub("", expr)):
            used.add(re.sub(r"_(bucket|sum|count)$", "", name))
    assert used - exposed == set()
    assert {"gen_ai_client_operation_duration_seconds", "gen_ai_client_token_usage"} <= used
