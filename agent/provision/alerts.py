"""Alert rules (SLS alert JSON 2.0): one row per model+workspace, grouped on those columns so
each pair fires and recovers on its own."""

from __future__ import annotations

from typing import Any

from llmtail.agent.config import ProvisionConfig, SlsOutput
from llmtail.agent.provision import queries as q

# SLS severities: 10 critical, 8 high, 6 medium, 4 low, 2 report.
CRITICAL, HIGH, MEDIUM = 10, 8, 6


def _alert(
    o: SlsOutput,
    p: ProvisionConfig,
    region: str,
    name: str,
    title: str,
    query: str,
    window: str,
    severities: list[tuple[int, str]],
    desc: str,
) -> dict[str, Any]:
    truncated = window == "1m"  # the last whole minute, for per-minute rates
    policy = p.action_policy
    return {
        "name": f"{p.prefix}-{name}",
        "displayName": title,
        "type": "Alert",
        "state": "Enabled",
        "schedule": {"type": "FixedRate", "interval": "1m"},
        "configuration": {
            "version": "2.0",
            "type": "default",
            "dashboard": "internal-alert-analysis",
            "queryList": [
                {
                    "storeType": "log",
                    "region": region,
                    "project": o.project,
                    "store": o.logstore,
                    "query": query,
                    "timeSpanType": "Truncated" if truncated else "Relative",
                    "start": f"-{window}",
                    "end": "absolute" if truncated else "now",
                    "powerSqlMode": "auto",
                }
            ],
            "groupConfiguration": {"type": "custom", "fields": ["model", "workspace"]},
            "joinConfigurations": [],
            "severityConfigurations": [
                {"severity": sev, "evalCondition": {"condition": cond, "countCondition": ""}}
                for sev, cond in severities
            ],
            "labels": [{"key": "managed_by", "value": "llmtail"}],
            "annotations": [
                {"key": "title", "value": f"{title}: ${{model}} / ${{workspace}}"},
                {"key": "desc", "value": desc},
            ],
            "autoAnnotation": True,
            "sendResolved": True,
            "threshold": 1,
            "noDataFire": False,
            "noDataSeverity": MEDIUM,
            "policyConfiguration": {
                "alertPolicyId": "sls.builtin.dynamic",
                "actionPolicyId": policy.id if policy is not None else "",
                "repeatInterval": "5m",
                "useDefault": False,
            },
        },
    }


def alerts(o: SlsOutput, p: ProvisionConfig, region: str) -> list[dict[str, Any]]:
    t = p.thresholds
    out = [
        _alert(
            o,
            p,
            region,
            "failures",
            "LLM call failures",
            q.alert_failures(),
            t.window,
            [(CRITICAL, f"success_pct < {t.success_rate}"), (HIGH, f"failures >= {t.failures}")],
            "${failures} of ${calls} calls failed (success ${success_pct}%) in " + t.window,
        ),
        _alert(
            o,
            p,
            region,
            "latency",
            "LLM p95 latency",
            q.alert_latency(),
            t.window,
            [(HIGH, f"p95_ms > {t.p95_ms}")],
            "p95 latency ${p95_ms} ms over ${calls} calls in " + t.window,
        ),
    ]
    quotas = q.quota_limits(p.quotas)
    if quotas:
        out.append(
            _alert(
                o,
                p,
                region,
                "quota",
                "LLM quota water level",
                q.alert_quota(quotas),
                "1m",
                [(HIGH, f"qpm_pct >= {t.quota_percent}"), (HIGH, f"tpm_pct >= {t.quota_percent}")],
                "last minute: ${qpm} calls (${qpm_pct}% of quota), ${tpm} tokens (${tpm_pct}%)",
            )
        )
    return out
