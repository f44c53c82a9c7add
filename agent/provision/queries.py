"""Every SLS query provision writes: one function per question, each returning `search | SQL`.

Rules (docs/observability.md): calls are `event = 'llm_call'` records only (the Logstore also
holds prompts, results, feedback and log lines); a failure is `status_code <> 200` (network
errors are -1); minutes are `__time__ - __time__ % 60` (`__time__` is epoch seconds). Values a
user configures (models, ratings, quotas) are quoted with `literal`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

CALLS = "event = 'llm_call'"
FEEDBACK = "event = 'feedback'"
FAILED = "status_code <> 200"
MINUTE = "__time__ - __time__ % 60"


class HasQuota(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def workspace(self) -> str: ...
    @property
    def qpm(self) -> int | None: ...
    @property
    def tpm(self) -> int | None: ...


@dataclass(frozen=True, slots=True)
class QuotaLimit:
    model: str
    workspace: str
    qpm: int | None
    tpm: int | None


def quota_limits(quotas: Iterable[HasQuota]) -> list[QuotaLimit]:
    """The configured quotas (`provision.quotas`) as the queries take them."""
    return [QuotaLimit(x.model, x.workspace, x.qpm, x.tpm) for x in quotas]


def literal(text: str) -> str:
    """A SQL string literal: single quotes, doubled inside."""
    return "'" + text.replace("'", "''") + "'"


def _in(values: Iterable[str]) -> str:
    return "(" + ", ".join(literal(v) for v in values) + ")"


def _sql(select: str, where: str = CALLS, tail: str = "") -> str:
    return f"* | SELECT {select} FROM log WHERE {where}" + (f" {tail}" if tail else "")


# -- business calls --------------------------------------------------------------------------


def calls_and_success() -> str:
    return _sql(
        "count(*) AS calls, count_if(status_code = 200) AS succeeded, "
        "round(count_if(status_code = 200) * 100.0 / count(*), 2) AS success_pct"
    )


def errors_by(column: str) -> str:
    """Failed calls per value of `column` (error_code, status_code), most frequent first."""
    return _sql(
        f"{column}, count(*) AS failures",
        f"{CALLS} AND {FAILED}",
        f"GROUP BY {column} ORDER BY failures DESC LIMIT 50",
    )


def error_rate_per_minute() -> str:
    return _sql(
        f"{MINUTE} AS t, count(*) AS calls, count_if({FAILED}) AS failures, "
        f"round(count_if({FAILED}) * 100.0 / count(*), 2) AS error_pct",
        tail="GROUP BY t ORDER BY t LIMIT 10000",
    )


_LATENCY = (
    "round(avg(duration_ms), 1) AS avg_ms, approx_percentile(duration_ms, 0.5) AS p50_ms, "
    "approx_percentile(duration_ms, 0.95) AS p95_ms, approx_percentile(duration_ms, 0.99) AS p99_ms"
)


def latency() -> str:
    return _sql(_LATENCY)


def latency_by_model() -> str:
    return _sql(f"model, count(*) AS calls, {_LATENCY}", tail="GROUP BY model ORDER BY calls DESC")


# -- resource water level ---------------------------------------------------------------------


def qpm_tpm_per_minute() -> str:
    return _sql(
        f"{MINUTE} AS t, count(*) AS qpm, sum(total_tokens) AS tpm, "
        "sum(input_tokens) AS input_tpm, sum(output_tokens) AS output_tpm",
        tail="GROUP BY t ORDER BY t LIMIT 10000",
    )


def qpm_tpm_per_model(core_models: Sequence[str]) -> str:
    where = f"{CALLS} AND model IN {_in(core_models)}" if core_models else CALLS
    return _sql(
        f"{MINUTE} AS t, model, count(*) AS qpm, sum(total_tokens) AS tpm",
        where,
        "GROUP BY t, model ORDER BY t LIMIT 10000",
    )


def qpm_tpm_per_model_workspace() -> str:
    return _sql(
        f"{MINUTE} AS t, concat(model, ' / ', workspace) AS model_workspace, "
        "count(*) AS qpm, sum(total_tokens) AS tpm",
        tail="GROUP BY t, model, workspace ORDER BY t LIMIT 10000",
    )


def _quota_case(quotas: Sequence[QuotaLimit], attr: str) -> str:
    arms = [
        f"WHEN model = {literal(q.model)} AND workspace = {literal(q.workspace)} THEN {value}"
        for q in quotas
        if (value := getattr(q, attr)) is not None
    ]
    return f"CASE {' '.join(arms)} END" if arms else "CAST(NULL AS BIGINT)"


def _per_minute_by_model_workspace() -> str:
    return (
        f"SELECT {MINUTE} AS t, model, workspace, count(*) AS qpm, "
        f"sum(total_tokens) AS tpm FROM log WHERE {CALLS} GROUP BY t, model, workspace"
    )


def peak_against_quota(quotas: Sequence[QuotaLimit]) -> str:
    """Peak minute per model+workspace next to its quota and the share of it used (percent)."""
    qpm_quota, tpm_quota = _quota_case(quotas, "qpm"), _quota_case(quotas, "tpm")
    return (
        "* | SELECT model, workspace, peak_qpm, qpm_quota, "
        "round(peak_qpm * 100.0 / qpm_quota, 1) AS qpm_pct, peak_tpm, tpm_quota, "
        "round(peak_tpm * 100.0 / tpm_quota, 1) AS tpm_pct FROM ("
        f"SELECT model, workspace, max(qpm) AS peak_qpm, max(tpm) AS peak_tpm, "
        f"{qpm_quota} AS qpm_quota, {tpm_quota} AS tpm_quota "
        f"FROM ({_per_minute_by_model_workspace()}) GROUP BY model, workspace"
        ") ORDER BY peak_tpm DESC LIMIT 1000"
    )


# -- feedback ---------------------------------------------------------------------------------


def negative_feedback(negative: Sequence[str]) -> str:
    bad = f"rating IN {_in(negative)}"
    return _sql(
        f"count(*) AS ratings, count_if({bad}) AS negative, "
        f"round(count_if({bad}) * 100.0 / count(*), 2) AS negative_pct",
        FEEDBACK,
    )


def negative_feedback_per_hour(negative: Sequence[str]) -> str:
    bad = f"rating IN {_in(negative)}"
    return _sql(
        f"__time__ - __time__ % 3600 AS t, count(*) AS ratings, "
        f"round(count_if({bad}) * 100.0 / count(*), 2) AS negative_pct",
        FEEDBACK,
        "GROUP BY t ORDER BY t LIMIT 10000",
    )


def negative_feedback_by_model(negative: Sequence[str]) -> str:
    """Ratings joined to the call they rate (same request_id): which model users dislike."""
    bad = f"f.rating IN {_in(negative)}"
    return (
        "* | SELECT c.model, c.workspace, count(*) AS ratings, "
        f"round(count_if({bad}) * 100.0 / count(*), 2) AS negative_pct "
        f"FROM (SELECT request_id, rating FROM log WHERE {FEEDBACK}) AS f "
        f"JOIN (SELECT request_id, model, workspace FROM log WHERE {CALLS}) AS c "
        "ON f.request_id = c.request_id GROUP BY c.model, c.workspace ORDER BY ratings DESC"
    )


# -- drill-down ---------------------------------------------------------------------------------


def breakdown(columns: Sequence[str]) -> str:
    """Calls, failures, latency and tokens per combination of `columns`."""
    cols = ", ".join(columns)
    return _sql(
        f"{cols}, count(*) AS calls, count_if({FAILED}) AS failures, "
        f"round(count_if({FAILED}) * 100.0 / count(*), 2) AS error_pct, "
        "approx_percentile(duration_ms, 0.95) AS p95_ms, sum(total_tokens) AS tokens",
        tail=f"GROUP BY {cols} ORDER BY calls DESC LIMIT 1000",
    )


# -- alerts (one row per model+workspace: SLS groups on those columns) ----------------------------


def alert_failures() -> str:
    return _sql(
        f"model, workspace, count(*) AS calls, count_if({FAILED}) AS failures, "
        "round(count_if(status_code = 200) * 100.0 / count(*), 2) AS success_pct",
        tail="GROUP BY model, workspace",
    )


def alert_latency() -> str:
    return _sql(
        "model, workspace, count(*) AS calls, approx_percentile(duration_ms, 0.95) AS p95_ms",
        tail="GROUP BY model, workspace",
    )


def alert_quota(quotas: Sequence[QuotaLimit]) -> str:
    """QPM and TPM of the window (one minute) as a percentage of each pair's quota."""
    qpm_quota, tpm_quota = _quota_case(quotas, "qpm"), _quota_case(quotas, "tpm")
    return (
        "* | SELECT model, workspace, qpm, tpm, round(qpm * 100.0 / qpm_quota, 1) AS qpm_pct, "
        "round(tpm * 100.0 / tpm_quota, 1) AS tpm_pct FROM ("
        "SELECT model, workspace, count(*) AS qpm, sum(total_tokens) AS tpm, "
        f"{qpm_quota} AS qpm_quota, {tpm_quota} AS tpm_quota FROM log WHERE {CALLS} "
        "GROUP BY model, workspace)"
    )


# -- saved searches for the SOP -----------------------------------------------------------------


def traces_with_failures() -> str:
    """Traces that contain a failed call, worst first: the entry to a trace drill-down."""
    return (
        "* | SELECT trace_id, count(*) AS calls, count_if(status_code <> 200) AS failures, "
        "min(__time__) AS first_seen, max(__time__) AS last_seen FROM log "
        f"WHERE {CALLS} AND trace_id <> '' GROUP BY trace_id "
        "HAVING count_if(status_code <> 200) > 0 ORDER BY failures DESC, last_seen DESC LIMIT 100"
    )


def requests_failed_or_disliked(negative: Sequence[str]) -> str:
    """Per request_id: the call's outcome and its rating, for failed or badly rated requests."""
    return (
        "* | SELECT c.request_id, c.trace_id, c.app, c.model, c.workspace, c.status_code, "
        "c.error_code, c.duration_ms, f.rating FROM "
        "(SELECT request_id, trace_id, app, model, workspace, status_code, error_code, duration_ms "
        f"FROM log WHERE {CALLS}) AS c LEFT JOIN "
        f"(SELECT request_id, rating FROM log WHERE {FEEDBACK}) AS f "
        "ON c.request_id = f.request_id "
        f"WHERE c.status_code <> 200 OR f.rating IN {_in(negative)} "
        "ORDER BY c.request_id LIMIT 1000"
    )


def errors_last_hour() -> str:
    return _sql(
        "app, model, workspace, error_code, count(*) AS failures, max(__time__) AS last_seen",
        f"{CALLS} AND {FAILED} AND __time__ >= to_unixtime(now()) - 3600",
        "GROUP BY app, model, workspace, error_code ORDER BY failures DESC LIMIT 1000",
    )


def slow_calls(slow_ms: int) -> str:
    return _sql(
        "__time__, trace_id, request_id, app, model, workspace, duration_ms, status_code",
        f"{CALLS} AND duration_ms > {int(slow_ms)}",
        "ORDER BY duration_ms DESC LIMIT 1000",
    )
