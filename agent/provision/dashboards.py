"""The four dashboards of the guide: business calls, resource water level, user feedback and
the drill-down (docs/observability.md says what each panel answers)."""

from __future__ import annotations

from typing import Any

from llmtail.agent.config import ProvisionConfig, SlsOutput
from llmtail.agent.provision import queries as q


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


def dashboards(o: SlsOutput, p: ProvisionConfig) -> list[dict[str, Any]]:
    quotas = q.quota_limits(p.quotas)
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
