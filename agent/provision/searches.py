"""The saved searches of the troubleshooting SOP."""

from __future__ import annotations

from typing import Any

from llmtail.agent.config import ProvisionConfig, SlsOutput
from llmtail.agent.provision import queries as q


def searches(o: SlsOutput, p: ProvisionConfig) -> list[dict[str, Any]]:
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
