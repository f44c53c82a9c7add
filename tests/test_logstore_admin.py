"""The local Logstore's admin API rejects what SLS rejects, with SLS's codes, through the SDK."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from aliyun.log import LogException
from aliyun.log.resource_params import ResourceRecord

from llmtail.agent.delivery.admin_client import log_client
from llmtail.agent.delivery.credentials import Credentials, StaticCredentials
from tests.logstore import LocalLogstore

# The SDK reaches the local Logstore by name, through `requests`' proxy (tests/logstore).
pytestmark = pytest.mark.usefixtures("sdk_logstore")

BOARD = {
    "dashboardName": "llm-overview",
    "displayName": "LLM overview",
    "description": "",
    "charts": [
        {
            "title": "calls",
            "type": "table",
            "search": {
                "logstore": "llmtail",
                "topic": "",
                "query": "* | select 1",
                "start": "-3600s",
                "end": "now",
            },
            "display": {"xAxis": [], "yAxis": [], "xPos": 0, "yPos": 0, "width": 4, "height": 4},
        }
    ],
}
ALERT: dict[str, Any] = {
    "name": "llm-failures",
    "displayName": "LLM failures",
    "type": "Alert",
    "state": "Enabled",
    "schedule": {"type": "FixedRate", "interval": "1m"},
    "configuration": {
        "version": "2.0",
        "type": "default",
        "queryList": [
            {
                "storeType": "log", "region": "cn-hangzhou", "project": "p", "store": "llmtail",
                "query": "* | select count(*) as cnt", "start": "-1m", "end": "absolute",
            }
        ],
        "groupConfiguration": {"type": "no_group", "fields": []},
        "severityConfigurations": [{"severity": 6, "evalCondition": {"condition": "cnt > 0"}}],
        "policyConfiguration": {"alertPolicyId": "sls.builtin.dynamic", "actionPolicyId": ""},
    },
}  # fmt: skip


def _client(logstore: LocalLogstore, secret: str | None = None) -> Any:
    key = Credentials(logstore.access_key_id, secret or logstore.access_key_secret)
    return log_client(logstore.sdk_endpoint, StaticCredentials(key), 10.0)


def _code(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(LogException) as err:
        call(*args)
    return int(getattr(err.value, "resp_status", 0)), str(err.value.get_error_code())


class _Index:
    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body


def test_logstores_are_created_once_and_named_as_sls_allows(logstore: LocalLogstore) -> None:
    c, p = _client(logstore), logstore.project
    c.create_logstore(p, "llm-calls", ttl=7, shard_count=2, mode="standard")
    assert c.get_logstore(p, "llm-calls").get_body()["ttl"] == 7
    assert _code(c.create_logstore, p, "llm-calls") == (400, "LogStoreAlreadyExist")
    assert _code(c.create_logstore, p, "LLM_Calls") == (400, "LogStoreInfoInvalid")
    assert _code(c.get_logstore, p, "nope") == (404, "LogStoreNotExist")
    c.update_logstore(p, "llm-calls", ttl=90)
    assert c.get_logstore(p, "llm-calls").get_body()["ttl"] == 90
    assert "llm-calls" in c.list_logstore(p).get_logstores()


def test_the_index_is_checked_and_conflicts_use_the_sdks_codes(logstore: LocalLogstore) -> None:
    c, p, ls = _client(logstore), logstore.project, logstore.logstore
    good = {"line": {"token": [","]}, "keys": {"status_code": {"type": "long", "doc_value": True}}}
    assert _code(c.get_index_config, p, ls) == (404, "IndexConfigNotExist")
    assert _code(c.update_index, p, ls, _Index(good)) == (404, "IndexConfigNotExist")
    c.create_index(p, ls, _Index(good))
    assert _code(c.create_index, p, ls, _Index(good)) == (400, "IndexAlreadyExist")
    for bad in (
        {"keys": {"status_code": {"type": "keyword"}}},
        {"keys": {"model": {"type": "text", "token": []}}},
        {"keys": {"bad-name": {"type": "long"}}},
        {**good, "max_text_len": 100_000},
    ):
        assert _code(c.update_index, p, ls, _Index(bad)) == (400, "IndexInfoInvalid")
    assert _code(c.create_index, p, "missing", _Index(good)) == (404, "LogStoreNotExist")
    assert c.get_index_config(p, ls).get_body()["keys"] == good["keys"]


def test_dashboards_alerts_and_searches_need_their_keys_and_lowercase_names(
    logstore: LocalLogstore,
) -> None:
    c, p = _client(logstore), logstore.project
    c.create_dashboard(p, BOARD)
    assert _code(c.create_dashboard, p, BOARD) == (400, "DashboardAlreadyExist")
    assert _code(c.create_dashboard, p, {**BOARD, "dashboardName": "LLM"}) == (
        400,
        "ParameterInvalid",
    )
    no_query = copy.deepcopy(BOARD)
    no_query["dashboardName"] = "other"
    del no_query["charts"][0]["search"]["query"]
    assert _code(c.create_dashboard, p, no_query) == (400, "ParameterInvalid")
    assert _code(c.get_dashboard, p, "other") == (404, "DashboardNotExist")

    c.create_alert(p, ALERT)
    assert _code(c.create_alert, p, ALERT) == (400, "JobAlreadyExist")
    bad = copy.deepcopy(ALERT)
    bad["configuration"]["severityConfigurations"][0]["severity"] = 7
    assert _code(c.update_alert, p, bad) == (400, "ParameterInvalid")
    assert _code(c.update_alert, p, {**ALERT, "name": "unknown"}) == (404, "JobNotExist")

    search = {"savedsearchName": "slow", "logstore": "llmtail", "topic": "", "searchQuery": "*"}
    c.create_savedsearch(p, search)
    assert _code(c.create_savedsearch, p, search) == (400, "SavedSearchAlreadyExist")
    assert _code(
        c.create_savedsearch, p, {**search, "savedsearchName": "x2", "searchQuery": " "}
    ) == (
        400,
        "ParameterInvalid",
    )
    assert c.get_savedsearch(p, "slow").get_body()["searchQuery"] == "*"


def test_action_policies_are_resource_records(logstore: LocalLogstore) -> None:
    c = _client(logstore)
    value = {
        "action_policy_id": "oncall",
        "action_policy_name": "oncall",
        "primary_policy_script": "fire()",
    }
    c.create_resource_record("sls.alert.action_policy", ResourceRecord("oncall", "oncall", value))
    got = c.get_resource_record("sls.alert.action_policy", "oncall").get_body()
    assert got["id"] == "oncall"
    wrong = ResourceRecord("other", "other", {**value})
    assert _code(c.create_resource_record, "sls.alert.action_policy", wrong) == (
        400,
        "ParameterInvalid",
    )
    assert _code(c.get_resource_record, "sls.alert.action_policy", "missing") == (
        404,
        "RecordNotExist",
    )
    assert _code(c.get_resource_record, "sls.alert.nothing", "x") == (404, "ResourceNotExist")


def test_admin_requests_are_signed_like_putlogs(logstore: LocalLogstore) -> None:
    c = _client(logstore, secret="not-the-secret")
    assert _code(c.create_dashboard, logstore.project, BOARD) == (401, "SignatureNotMatch")
    assert logstore.catalog.writes == []
