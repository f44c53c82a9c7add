"""The objects provision wants in SLS, built from the config alone (no I/O).

Names are lowercase (`{prefix}-...`). Each object is the JSON body the SDK sends; `plan`
compares it with what SLS returns, key by key, so fields SLS adds are not differences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from agent.config import Config, ProvisionConfig, SlsOutput
from agent.provision import queries as q
from agent.provision.index import index_body


class Kind(StrEnum):
    """What an object is; also the order objects are applied in (a logstore before its index)."""

    LOGSTORE = "logstore"
    INDEX = "index"
    ACTION_POLICY = "action_policy"
    DASHBOARD = "dashboard"
    ALERT = "alert"
    SEARCH = "search"


# `--only` groups: what a user asks for -> the kinds it covers.
GROUPS: dict[str, tuple[Kind, ...]] = {
    "index": (Kind.LOGSTORE, Kind.INDEX),
    "dashboards": (Kind.DASHBOARD,),
    "alerts": (Kind.ACTION_POLICY, Kind.ALERT),
    "searches": (Kind.SEARCH,),
}
ACTION_POLICY_RESOURCE = "sls.alert.action_policy"
_REGION = re.compile(r"^([a-z]+-[a-z0-9-]+?)(?:-intranet|-share)?\.log\.aliyuncs\.com$")


@dataclass(frozen=True, slots=True)
class Wanted:
    kind: Kind
    name: str
    body: dict[str, Any]


class ProvisionError(Exception):
    """Something the user must fix before provisioning; the message says what."""


def region_of(output: SlsOutput, settings: ProvisionConfig) -> str:
    """The region alerts query in: configured, or read from `cn-hangzhou[-intranet].log...`."""
    if settings.region:
        return settings.region
    host = output.endpoint.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    m = _REGION.match(host)
    if m is None:
        raise ProvisionError(
            f"provision.region: cannot tell the region from endpoint {output.endpoint!r}; "
            "set provision.region (e.g. cn-hangzhou)"
        )
    return m.group(1)


def wanted(config: Config, output: SlsOutput) -> list[Wanted]:
    """Every object, in apply order."""
    p = config.provision
    out = [
        Wanted(Kind.LOGSTORE, output.logstore, _logstore(output.logstore, p)),
        Wanted(Kind.INDEX, output.logstore, index_body(config)),
    ]
    if p.action_policy is not None and p.action_policy.create:
        out.append(Wanted(Kind.ACTION_POLICY, p.action_policy.id, _action_policy(p)))
    out += [Wanted(Kind.DASHBOARD, d["dashboardName"], d) for d in _dashboards(output, p)]
    region = region_of(output, p)
    out += [Wanted(Kind.ALERT, a["name"], a) for a in _alerts(output, p, region)]
    out += [Wanted(Kind.SEARCH, s["savedsearchName"], s) for s in _searches(output, p)]
    return out


def _logstore(name: str, p: ProvisionConfig) -> dict[str, Any]:
    # Standard mode: alerts and SQL analytics need it (query mode cannot run them).
    return {"logstoreName": name, "ttl": p.ttl, "shardCount": p.shards, "mode": "standard"}


def _action_policy(p: ProvisionConfig) -> dict[str, Any]:
    ap = p.action_policy
    assert ap is not None and ap.script is not None  # checked by the config
    return {
        "action_policy_id": ap.id,
        "action_policy_name": ap.name,
        "is_default": False,
        "primary_policy_script": ap.script,
        "secondary_policy_script": "",
        "escalation_start_enabled": False,
        "escalation_inprogress_enabled": False,
        "escalation_enabled": False,
        "labels": {"managed_by": "llmtail"},
    }


# -- dashboards -----------------------------------------------------------------------------------


def _chart(
    output: SlsOutput,
    title: str,
    kind: str,
    query: str,
    x: list[str],
    y: list[str],
    pos: tuple[int, int, int, int],
) -> dict[str, Any]:
    return {
        "title": title,
        "type": kind,
        "search": {
            "logstore": output.logstore,
            "topic": "",
            "query": query,
            "start": "-3600s",
            "end": "now",
        },
        "display": {
            "displayName": title,
            "xAxis": x,
            "yAxis": y,
            "xPos": pos[0],
            "yPos": pos[1],
            "width": pos[2],
            "height": pos[3],
        },
    }


def _dashboard(prefix: str, name: str, title: str, about: str, charts: list[Any]) -> dict[str, Any]:
    return {
        "dashboardName": f"{prefix}-{name}",
        "displayName": title,
        "description": about,
        "charts": charts,
    }


def _dashboards(o: SlsOutput, p: ProvisionConfig) -> list[dict[str, Any]]:
    quotas = _quotas(p)
    neg = p.negative_ratings
    business = [
        _chart(
            o,
            "calls and success rate",
            "table",
            q.calls_and_success(),
            [],
            ["calls", "success_pct"],
            (0, 0, 4, 4),
        ),
        _chart(
            o,
            "failures by error_code",
            "pie",
            q.errors_by("error_code"),
            ["error_code"],
            ["failures"],
            (4, 0, 4, 4),
        ),
        _chart(
            o,
            "failures by status_code",
            "pie",
            q.errors_by("status_code"),
            ["status_code"],
            ["failures"],
            (8, 0, 4, 4),
        ),
        _chart(
            o,
            "error rate per minute",
            "line",
            q.error_rate_per_minute(),
            ["t"],
            ["error_pct"],
            (0, 4, 12, 5),
        ),
        _chart(
            o,
            "latency avg p50 p95 p99",
            "table",
            q.latency(),
            [],
            ["avg_ms", "p50_ms", "p95_ms", "p99_ms"],
            (0, 9, 4, 4),
        ),
        _chart(
            o,
            "latency per model",
            "table",
            q.latency_by_model(),
            ["model"],
            ["p50_ms", "p95_ms", "p99_ms"],
            (4, 9, 8, 4),
        ),
    ]
    resources = [
        _chart(
            o, "qpm and tpm", "line", q.qpm_tpm_per_minute(), ["t"], ["qpm", "tpm"], (0, 0, 12, 5)
        ),
        _chart(
            o,
            "qpm and tpm per core model",
            "line",
            q.qpm_tpm_per_model(p.core_models),
            ["t"],
            ["qpm", "tpm"],
            (0, 5, 12, 5),
        ),
        _chart(
            o,
            "qpm and tpm per model and workspace",
            "line",
            q.qpm_tpm_per_model_workspace(),
            ["t"],
            ["qpm", "tpm"],
            (0, 10, 12, 5),
        ),
        _chart(
            o,
            "peak per model and workspace against quota",
            "table",
            q.peak_against_quota(quotas),
            ["model", "workspace"],
            ["qpm_pct", "tpm_pct"],
            (0, 15, 12, 5),
        ),
    ]
    feedback = [
        _chart(
            o,
            "negative feedback rate",
            "table",
            q.negative_feedback(neg),
            [],
            ["negative_pct"],
            (0, 0, 4, 4),
        ),
        _chart(
            o,
            "negative feedback per hour",
            "line",
            q.negative_feedback_per_hour(neg),
            ["t"],
            ["negative_pct"],
            (4, 0, 8, 4),
        ),
        _chart(
            o,
            "negative feedback per model and workspace",
            "table",
            q.negative_feedback_by_model(neg),
            ["model", "workspace"],
            ["negative_pct"],
            (0, 4, 12, 4),
        ),
    ]
    drill = [
        _chart(
            o,
            f"by {' and '.join(cols)}",
            "table",
            q.breakdown(cols),
            list(cols),
            ["calls", "error_pct", "p95_ms"],
            (0, 5 * i, 12, 5),
        )
        for i, cols in enumerate(
            (
                ("app",),
                ("app", "module"),
                ("model", "workspace"),
                ("app", "module", "model", "workspace"),
            )
        )
    ]
    pre = p.prefix
    return [
        _dashboard(
            pre, "business", "LLM calls", "Is anything wrong? Calls, failures, latency.", business
        ),
        _dashboard(
            pre, "resources", "LLM resource water level", "QPM and TPM against quota.", resources
        ),
        _dashboard(
            pre, "feedback", "LLM user feedback", "How often users dislike answers.", feedback
        ),
        _dashboard(
            pre,
            "drilldown",
            "LLM drill-down",
            "Where does it come from? Per app, module, model, workspace.",
            drill,
        ),
    ]


def _quotas(p: ProvisionConfig) -> list[q.QuotaLimit]:
    return [q.QuotaLimit(x.model, x.workspace, x.qpm, x.tpm) for x in p.quotas]


# -- alerts ---------------------------------------------------------------------------------------

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


def _alerts(o: SlsOutput, p: ProvisionConfig, region: str) -> list[dict[str, Any]]:
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
    quotas = _quotas(p)
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


# -- saved searches -------------------------------------------------------------------------------


def _searches(o: SlsOutput, p: ProvisionConfig) -> list[dict[str, Any]]:
    found = [
        ("traces-with-failures", "Traces with failed calls", q.traces_with_failures()),
        (
            "requests-failed-or-disliked",
            "Requests failed or disliked",
            q.requests_failed_or_disliked(p.negative_ratings),
        ),
        (
            "errors-last-hour",
            "Errors of the last hour by app, model, workspace",
            q.errors_last_hour(),
        ),
        (
            "slow-calls",
            f"Calls slower than {p.thresholds.slow_ms} ms",
            q.slow_calls(p.thresholds.slow_ms),
        ),
    ]
    return [
        {
            "savedsearchName": f"{p.prefix}-{name}",
            "displayName": title,
            "logstore": o.logstore,
            "topic": "",
            "searchQuery": query,
        }
        for name, title, query in found
    ]
