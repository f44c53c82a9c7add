"""Every query provision writes means what its chart, alert or saved search says.

Each query is parsed as SLS (Presto) SQL by sqlglot and run by DuckDB over a known set of
records typed as the provisioned index types them (`long` -> BIGINT, else VARCHAR; `FROM log`
is a table of that name, `__time__` epoch seconds). The answers must equal a plain-Python
computation over the same records: counts, rates, QPM/TPM per model+workspace, quota shares, and
percentiles within the estimator's tolerance. A query with no expectation here fails the test.
"""

from __future__ import annotations

import math
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import duckdb
import sqlglot
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtail.agent.config import Config, parse_config
from llmtail.agent.provision import queries as q
from llmtail.agent.provision.desired import Kind, wanted
from llmtail.agent.provision.index import index_body

NEGATIVE = ["down", "1"]
CORE = ["qwen-max", "deepseek-r1"]
QUOTAS = [
    q.QuotaLimit("qwen-max", "ws-1", 3, 5000),
    q.QuotaLimit("qwen-plus", "ws-2", None, 8000),
]
NOW = int(time.time())
BASE = NOW - 50 * 60  # recent records: 40-50 minutes ago, well inside "the last hour"
OLD = NOW - 3 * 3600  # old records: well outside it

Row = dict[str, Any]


def _config() -> Config:
    return parse_config(
        {
            "output": {
                "type": "sls",
                "endpoint": "cn-hangzhou.log.aliyuncs.com",
                "project": "p",
                "logstore": "llm-calls",
            },
            "provision": {
                "core_models": CORE,
                "negative_ratings": NEGATIVE,
                "quotas": [
                    {"model": x.model, "workspace": x.workspace, "qpm": x.qpm, "tpm": x.tpm}
                    for x in QUOTAS
                ],
                "thresholds": {"failures": 2, "success_rate": 90, "p95_ms": 8000, "slow_ms": 9000},
            },
        }
    )


CONFIG = _config()
SLOW = CONFIG.provision.thresholds.slow_ms


# -- the records --------------------------------------------------------------------------------


@st.composite
def calls(draw: st.DrawFn) -> Row:
    minute = draw(st.integers(0, 9))
    old = draw(st.booleans()) if draw(st.integers(0, 9)) == 0 else False
    inputs, outputs = draw(st.integers(0, 3000)), draw(st.integers(0, 3000))
    status = draw(st.sampled_from([200, 200, 200, 429, 500, -1]))
    return {
        "__time__": (OLD if old else BASE) + minute * 60 + draw(st.integers(0, 59)),
        "event": "llm_call",
        "app": draw(st.sampled_from(["chat", "search"])),
        "module": draw(st.sampled_from(["qa", "summary"])),
        "model": draw(st.sampled_from(["qwen-max", "qwen-plus", "deepseek-r1"])),
        "workspace": draw(st.sampled_from(["ws-1", "ws-2"])),
        "trace_id": draw(st.sampled_from(["", "t1", "t2", "t3", "t4"])),
        "status_code": status,
        "duration_ms": draw(st.integers(1, 20000)),
        "input_tokens": inputs,
        "output_tokens": outputs,
        "total_tokens": inputs + outputs,
        "error_code": "" if status == 200 else draw(st.sampled_from(["Throttling", "Timeout"])),
    }


@st.composite
def datasets(draw: st.DrawFn) -> list[Row]:
    rows = draw(st.lists(calls(), min_size=1, max_size=40))
    for i, row in enumerate(rows):
        row["request_id"] = f"req-{i}"
    rated = draw(st.lists(st.integers(0, len(rows) + 2), max_size=20, unique=True))
    for i in rated:  # an id past the calls is a rating whose call is not in the Logstore
        rows.append(
            {
                "__time__": BASE + draw(st.integers(0, 7200)),
                "event": "feedback",
                "request_id": f"req-{i}",
                "rating": draw(st.sampled_from(["up", "down", "1", "5"])),
                "comment": "",
            }
        )
    # Prompts, results and log lines share the Logstore and must never be counted as calls.
    for n in range(draw(st.integers(0, 5))):
        rows.append(
            {"__time__": BASE + n, "event": draw(st.sampled_from(["prompt", "log", "result"]))}
        )
    return rows


# -- running a query in DuckDB --------------------------------------------------------------------


def _table(con: duckdb.DuckDBPyConnection, rows: list[Row]) -> None:
    """`log` with every indexed key; the index's types, values as SLS holds them (text)."""
    keys = index_body(CONFIG)["keys"]
    columns = {"__time__": "BIGINT"} | {
        name: "BIGINT" if conf["type"] == "long" else "VARCHAR" for name, conf in keys.items()
    }
    con.execute("CREATE TABLE log (" + ", ".join(f'"{n}" {t}' for n, t in columns.items()) + ")")
    names = list(columns)
    values = [
        tuple(
            None if (v := r.get(n)) is None else (v if n == "__time__" else str(v)) for n in names
        )
        for r in rows
    ]
    con.executemany(f"INSERT INTO log VALUES ({', '.join('?' * len(names))})", values)


def to_duckdb(query: str) -> str:
    """`* | SQL` (SLS) -> DuckDB SQL; the search part must be `*` (scoping is in the SQL)."""
    search, _, sql = query.partition("|")
    assert search.strip() == "*", query
    parsed = sqlglot.parse_one(sql, read="presto")  # raises on anything Presto cannot parse
    return parsed.sql(dialect="duckdb")


def run(con: duckdb.DuckDBPyConnection, query: str) -> list[Row]:
    cursor = con.execute(to_duckdb(query))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# -- the plain-Python side ------------------------------------------------------------------------


def _calls(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["event"] == "llm_call"]


def _failed(r: Row) -> bool:
    return r["status_code"] != 200


@dataclass(frozen=True)
class Rounded:
    """A value a query rounds to `digits`: equal to either rounding of a half (SQL engines
    round halves away from zero, Python's round() to even)."""

    exact: float
    digits: int

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, int | float):
            return NotImplemented
        return abs(other - self.exact) <= 0.5 * 10**-self.digits + 1e-9

    def __hash__(self) -> int:
        return hash(round(self.exact, self.digits))

    def sql(self) -> float:
        """ROUND(x, digits) as SQL computes it: halves away from zero."""
        step = Decimal(1).scaleb(-self.digits)
        return float(Decimal(repr(self.exact)).quantize(step, rounding=ROUND_HALF_UP))


def _pct(part: int, whole: int) -> Rounded:
    return Rounded(part * 100.0 / whole, 2)


def _minute(r: Row) -> int:
    return int(r["__time__"] - r["__time__"] % 60)


def _by(rows: list[Row], *cols: str) -> dict[tuple[Any, ...], list[Row]]:
    groups: dict[tuple[Any, ...], list[Row]] = defaultdict(list)
    for r in rows:
        groups[tuple(r[c] for c in cols)].append(r)
    return groups


def _keyed(result: list[Row], *cols: str) -> dict[tuple[Any, ...], Row]:
    keyed = {tuple(r[c] for c in cols): r for r in result}
    assert len(keyed) == len(result), "one row per group"
    return keyed


def _close_percentile(value: float, values: list[int], quantile: float) -> None:
    """An estimate (t-digest in DuckDB, q-digest in SLS) between the exact values a tenth of
    the ranks away on either side."""
    data = sorted(values)
    n = len(data)
    lo = data[max(0, math.floor((quantile - 0.1) * (n - 1)))]
    hi = data[min(n - 1, math.ceil((quantile + 0.1) * (n - 1)))]
    assert lo <= value <= hi, (value, quantile, data)


def _latency(row: Row, group: list[Row]) -> None:
    durations = [r["duration_ms"] for r in group]
    assert row["avg_ms"] == Rounded(sum(durations) / len(durations), 1)
    for name, quantile in (("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)):
        if name in row:
            _close_percentile(row[name], durations, quantile)


def _quota(model: str, workspace: str, attr: str) -> int | None:
    for x in QUOTAS:
        if (x.model, x.workspace) == (model, workspace):
            value: int | None = getattr(x, attr)
            return value
    return None


def _share(used: int, quota: int | None) -> Rounded | None:
    return None if quota is None else Rounded(used * 100.0 / quota, 1)


# -- expectations, one per query ------------------------------------------------------------------


def check_calls_and_success(result: list[Row], rows: list[Row]) -> None:
    calls = _calls(rows)
    ok = sum(1 for r in calls if not _failed(r))
    assert result == [{"calls": len(calls), "succeeded": ok, "success_pct": _pct(ok, len(calls))}]


def check_errors_by(column: str) -> Callable[[list[Row], list[Row]], None]:
    def check(result: list[Row], rows: list[Row]) -> None:
        expected = Counter(r[column] for r in _calls(rows) if _failed(r))
        got = {r[column]: r["failures"] for r in result}
        assert got == dict(expected)
        assert [r["failures"] for r in result] == sorted(got.values(), reverse=True)

    return check


def check_error_rate_per_minute(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "t")
    minutes = defaultdict(list)
    for r in _calls(rows):
        minutes[_minute(r)].append(r)
    assert set(got) == {(m,) for m in minutes}
    for m, group in minutes.items():
        failures = sum(1 for r in group if _failed(r))
        row = got[(m,)]
        assert (row["calls"], row["failures"]) == (len(group), failures)
        assert row["error_pct"] == _pct(failures, len(group))


def check_latency(result: list[Row], rows: list[Row]) -> None:
    assert len(result) == 1
    _latency(result[0], _calls(rows))


def check_latency_by_model(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "model")
    groups = _by(_calls(rows), "model")
    assert set(got) == set(groups)
    for key, group in groups.items():
        assert got[key]["calls"] == len(group)
        _latency(got[key], group)


def _per_minute(rows: list[Row], *cols: str) -> dict[tuple[Any, ...], tuple[int, int]]:
    out: dict[tuple[Any, ...], tuple[int, int]] = {}
    for key, group in _by(_calls(rows), *cols).items():
        out[key] = (len(group), sum(r["total_tokens"] for r in group))
    return out


def _with_minute(rows: list[Row]) -> list[Row]:
    return [{**r, "t": _minute(r)} for r in rows]


def check_qpm_tpm(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "t")
    calls = _with_minute(rows)
    expected = _per_minute(calls, "t")
    assert {k: (v["qpm"], v["tpm"]) for k, v in got.items()} == expected
    for (t,), row in got.items():
        group = [r for r in _calls(calls) if r["t"] == t]
        assert row["input_tpm"] == sum(r["input_tokens"] for r in group)
        assert row["output_tpm"] == sum(r["output_tokens"] for r in group)


def check_qpm_tpm_per_core_model(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "t", "model")
    core = [r for r in _with_minute(rows) if r.get("model") in CORE]
    assert {k: (v["qpm"], v["tpm"]) for k, v in got.items()} == _per_minute(core, "t", "model")


def check_qpm_tpm_per_model_workspace(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "t", "model_workspace")
    calls = [{**r, "mw": f"{r['model']} / {r['workspace']}"} for r in _with_minute(_calls(rows))]
    expected = _per_minute(calls, "t", "mw")
    assert {k: (v["qpm"], v["tpm"]) for k, v in got.items()} == expected


def check_peak_against_quota(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "model", "workspace")
    minutes = _per_minute(_with_minute(rows), "model", "workspace", "t")
    peaks: dict[tuple[str, str], tuple[int, int]] = {}
    for (model, ws, _), (qpm, tpm) in minutes.items():
        old = peaks.get((model, ws), (0, 0))
        peaks[(model, ws)] = (max(old[0], qpm), max(old[1], tpm))
    assert set(got) == set(peaks)
    for (model, ws), (qpm, tpm) in peaks.items():
        row = got[(model, ws)]
        assert (row["peak_qpm"], row["peak_tpm"]) == (qpm, tpm)
        assert row["qpm_quota"] == _quota(model, ws, "qpm")
        assert row["tpm_quota"] == _quota(model, ws, "tpm")
        assert row["qpm_pct"] == _share(qpm, _quota(model, ws, "qpm"))
        assert row["tpm_pct"] == _share(tpm, _quota(model, ws, "tpm"))


def _ratings(rows: list[Row]) -> list[Row]:
    return [r for r in rows if r["event"] == "feedback"]


def check_negative_feedback(result: list[Row], rows: list[Row]) -> None:
    ratings = _ratings(rows)
    if not ratings:  # no feedback yet: no rate (count_if of no rows is 0 in SLS, NULL in DuckDB)
        assert result == [{"ratings": 0, "negative": result[0]["negative"], "negative_pct": None}]
        assert result[0]["negative"] in (0, None)
        return
    bad = sum(1 for r in ratings if r["rating"] in NEGATIVE)
    assert result == [
        {"ratings": len(ratings), "negative": bad, "negative_pct": _pct(bad, len(ratings))}
    ]


def check_negative_feedback_per_hour(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "t")
    hours = _by([{**r, "h": r["__time__"] - r["__time__"] % 3600} for r in _ratings(rows)], "h")
    assert set(got) == set(hours)
    for key, group in hours.items():
        bad = sum(1 for r in group if r["rating"] in NEGATIVE)
        assert (got[key]["ratings"], got[key]["negative_pct"]) == (
            len(group),
            _pct(bad, len(group)),
        )


def check_negative_feedback_by_model(result: list[Row], rows: list[Row]) -> None:
    call_of = {r["request_id"]: r for r in _calls(rows)}
    joined = [
        {**call_of[f["request_id"]], "rating": f["rating"]}
        for f in _ratings(rows)
        if f["request_id"] in call_of
    ]
    got = _keyed(result, "model", "workspace")
    groups = _by(joined, "model", "workspace")
    assert set(got) == set(groups)
    for key, group in groups.items():
        bad = sum(1 for r in group if r["rating"] in NEGATIVE)
        assert (got[key]["ratings"], got[key]["negative_pct"]) == (
            len(group),
            _pct(bad, len(group)),
        )


def check_breakdown(cols: tuple[str, ...]) -> Callable[[list[Row], list[Row]], None]:
    def check(result: list[Row], rows: list[Row]) -> None:
        got = _keyed(result, *cols)
        groups = _by(_calls(rows), *cols)
        assert set(got) == set(groups)
        for key, group in groups.items():
            failures = sum(1 for r in group if _failed(r))
            row = got[key]
            assert (row["calls"], row["failures"]) == (len(group), failures)
            assert row["error_pct"] == _pct(failures, len(group))
            assert row["tokens"] == sum(r["total_tokens"] for r in group)
            _close_percentile(row["p95_ms"], [r["duration_ms"] for r in group], 0.95)

    return check


def check_alert_failures(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "model", "workspace")
    groups = _by(_calls(rows), "model", "workspace")
    assert set(got) == set(groups)
    for key, group in groups.items():
        failures = sum(1 for r in group if _failed(r))
        assert (got[key]["calls"], got[key]["failures"]) == (len(group), failures)
        assert got[key]["success_pct"] == _pct(len(group) - failures, len(group))


def check_alert_latency(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "model", "workspace")
    groups = _by(_calls(rows), "model", "workspace")
    assert set(got) == set(groups)
    for key, group in groups.items():
        _close_percentile(got[key]["p95_ms"], [r["duration_ms"] for r in group], 0.95)


def check_alert_quota(result: list[Row], rows: list[Row]) -> None:
    got = _keyed(result, "model", "workspace")
    totals = _per_minute(rows, "model", "workspace")  # the alert's window is one minute
    assert set(got) == set(totals)
    for (model, ws), (qpm, tpm) in totals.items():
        row = got[(model, ws)]
        assert (row["qpm"], row["tpm"]) == (qpm, tpm)
        assert row["qpm_pct"] == _share(qpm, _quota(model, ws, "qpm"))
        assert row["tpm_pct"] == _share(tpm, _quota(model, ws, "tpm"))


def check_traces_with_failures(result: list[Row], rows: list[Row]) -> None:
    groups = _by([r for r in _calls(rows) if r["trace_id"]], "trace_id")
    expected = {
        key: (len(group), sum(1 for r in group if _failed(r)))
        for key, group in groups.items()
        if any(_failed(r) for r in group)
    }
    got = _keyed(result, "trace_id")
    assert {k: (v["calls"], v["failures"]) for k, v in got.items()} == expected


def check_requests_failed_or_disliked(result: list[Row], rows: list[Row]) -> None:
    rating_of: dict[str, list[str]] = defaultdict(list)
    for f in _ratings(rows):
        rating_of[f["request_id"]].append(f["rating"])
    expected = set()
    for c in _calls(rows):
        for rating in rating_of.get(c["request_id"]) or [None]:
            if _failed(c) or rating in NEGATIVE:
                expected.add((c["request_id"], c["status_code"], rating))
    assert {(r["request_id"], r["status_code"], r["rating"]) for r in result} == expected


def check_errors_last_hour(result: list[Row], rows: list[Row]) -> None:
    recent = [r for r in _calls(rows) if _failed(r) and r["__time__"] >= NOW - 3600]
    expected = Counter((r["app"], r["model"], r["workspace"], r["error_code"]) for r in recent)
    got = _keyed(result, "app", "model", "workspace", "error_code")
    assert {k: v["failures"] for k, v in got.items()} == dict(expected)


def check_slow_calls(result: list[Row], rows: list[Row]) -> None:
    slow = [r["request_id"] for r in _calls(rows) if r["duration_ms"] > SLOW]
    assert sorted(r["request_id"] for r in result) == sorted(slow)
    assert [r["duration_ms"] for r in result] == sorted(
        (r["duration_ms"] for r in result), reverse=True
    )


EXPECTATIONS: dict[str, Callable[[list[Row], list[Row]], None]] = {
    q.calls_and_success(): check_calls_and_success,
    q.errors_by("error_code"): check_errors_by("error_code"),
    q.errors_by("status_code"): check_errors_by("status_code"),
    q.error_rate_per_minute(): check_error_rate_per_minute,
    q.latency(): check_latency,
    q.latency_by_model(): check_latency_by_model,
    q.qpm_tpm_per_minute(): check_qpm_tpm,
    q.qpm_tpm_per_model(CORE): check_qpm_tpm_per_core_model,
    q.qpm_tpm_per_model_workspace(): check_qpm_tpm_per_model_workspace,
    q.peak_against_quota(QUOTAS): check_peak_against_quota,
    q.negative_feedback(NEGATIVE): check_negative_feedback,
    q.negative_feedback_per_hour(NEGATIVE): check_negative_feedback_per_hour,
    q.negative_feedback_by_model(NEGATIVE): check_negative_feedback_by_model,
    **{
        q.breakdown(cols): check_breakdown(cols)
        for cols in (
            ("app",),
            ("app", "module"),
            ("model", "workspace"),
            ("app", "module", "model", "workspace"),
        )
    },
    q.alert_failures(): check_alert_failures,
    q.alert_latency(): check_alert_latency,
    q.alert_quota(QUOTAS): check_alert_quota,
    q.traces_with_failures(): check_traces_with_failures,
    q.requests_failed_or_disliked(NEGATIVE): check_requests_failed_or_disliked,
    q.errors_last_hour(): check_errors_last_hour,
    q.slow_calls(SLOW): check_slow_calls,
}


@dataclass(frozen=True)
class Provisioned:
    where: str  # "dashboard llmtail-business: failures by error_code"
    query: str
    conditions: tuple[str, ...] = ()  # an alert's severity conditions


def provisioned_queries() -> list[Provisioned]:
    """Every query in every chart, alert and saved search provision writes."""
    out = []
    for w in wanted(CONFIG, CONFIG.output):  # type: ignore[arg-type]
        if w.kind is Kind.DASHBOARD:
            out += [
                Provisioned(f"dashboard {w.name}: {c['title']}", c["search"]["query"])
                for c in w.body["charts"]
            ]
        elif w.kind is Kind.ALERT:
            conf = w.body["configuration"]
            conditions = tuple(
                s["evalCondition"]["condition"] for s in conf["severityConfigurations"]
            )
            out += [
                Provisioned(f"alert {w.name}", x["query"], conditions) for x in conf["queryList"]
            ]
        elif w.kind is Kind.SEARCH:
            out.append(Provisioned(f"search {w.name}", w.body["searchQuery"]))
    return out


def test_every_provisioned_query_has_an_expectation_and_the_list_is_complete() -> None:
    queries = provisioned_queries()
    missing = [p.where for p in queries if p.query not in EXPECTATIONS]
    assert missing == []
    assert {p.query for p in queries} == set(EXPECTATIONS)
    assert len(queries) == 13 + 4 + 3 + 4  # charts, drill-down charts, alerts, searches
    assert all("event = 'llm_call'" in p.query or "event = 'feedback'" in p.query for p in queries)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_every_query_gives_what_plain_python_computes(rows: list[Row]) -> None:
    con = duckdb.connect()
    _table(con, rows)
    for p in provisioned_queries():
        EXPECTATIONS[p.query](run(con, p.query), rows)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(datasets())
def test_alerts_fire_for_exactly_the_model_workspace_pairs_past_their_threshold(
    rows: list[Row],
) -> None:
    con = duckdb.connect()
    _table(con, rows)
    t = CONFIG.provision.thresholds
    groups = _by(_calls(rows), "model", "workspace")
    expected: dict[str, set[tuple[str, str]]] = {
        "llmtail-failures": set(),
        "llmtail-latency": set(),
        "llmtail-quota": set(),
    }
    for (model, ws), group in groups.items():
        failures = sum(1 for r in group if _failed(r))
        if _pct(len(group) - failures, len(group)).sql() < t.success_rate or failures >= t.failures:
            expected["llmtail-failures"].add((model, ws))
        qpm, tpm = len(group), sum(r["total_tokens"] for r in group)
        shares = (_share(qpm, _quota(model, ws, "qpm")), _share(tpm, _quota(model, ws, "tpm")))
        if any(s is not None and s.sql() >= t.quota_percent for s in shares):
            expected["llmtail-quota"].add((model, ws))
    for p in provisioned_queries():
        if not p.conditions:
            continue
        name = p.where.split()[1]
        # SLS evaluates each severity's condition on every row (one row per group).
        fire = " OR ".join(f"({c})" for c in p.conditions)
        sql = f"SELECT model, workspace FROM ({to_duckdb(p.query)}) AS a WHERE {fire}"
        fired = {tuple(r) for r in con.execute(sqlglot.transpile(sql, read="duckdb")[0]).fetchall()}
        if name == "llmtail-latency":  # p95 is an estimate: check each firing group's data
            for model, ws in fired:
                durations = sorted(r["duration_ms"] for r in groups[(model, ws)])
                assert durations[-1] > t.p95_ms
            continue
        assert fired == expected[name], name
