"""`llmtail provision` against the local Logstore's admin API: plan, apply, idempotence,
dry run, drift put back, and the one-line errors a user gets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner, Result

from llmtail.agent.cli import app
from llmtail.agent.delivery.admin_client import log_client
from llmtail.agent.delivery.credentials import Credentials, StaticCredentials
from tests.logstore import LocalLogstore

# The SDK reaches the local Logstore by name, through `requests`' proxy (tests/logstore).
pytestmark = pytest.mark.usefixtures("sdk_logstore")

POLICY_SCRIPT = 'fire(type="dingtalk", webhook_id="ops", template_id="sls.builtin.cn")'
ALL_OBJECTS = 14  # logstore, index, action policy, 4 dashboards, 3 alerts, 4 saved searches


def _config(tmp_path: Path, logstore: LocalLogstore, **provision: Any) -> Path:
    settings: dict[str, Any] = {
        "region": "cn-hangzhou",
        "quotas": [{"model": "qwen-max", "workspace": "ws-1", "qpm": 600, "tpm": 100000}],
        "action_policy": {"id": "llmtail-oncall", "create": True, "script": POLICY_SCRIPT},
    }
    settings.update(provision)
    cfg = {
        "output": {
            "type": "sls",
            "endpoint": logstore.sdk_endpoint,
            "project": logstore.project,
            "logstore": "llm-calls",
        },
        "provision": settings,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _env(logstore: LocalLogstore) -> dict[str, str]:
    return {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": logstore.access_key_id,
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": logstore.access_key_secret,
        **logstore.sdk_env(),
    }


def provision(logstore: LocalLogstore, config: Path, *args: str) -> Result:
    return CliRunner().invoke(app, ["provision", "-c", str(config), *args], env=_env(logstore))


def _sdk(logstore: LocalLogstore) -> Any:
    """An SDK client, as the console or another tool would change things."""
    key = Credentials(logstore.access_key_id, logstore.access_key_secret)
    return log_client(logstore.sdk_endpoint, StaticCredentials(key), 10.0)


def test_first_run_creates_everything_and_a_second_run_writes_nothing(
    logstore: LocalLogstore, tmp_path: Path
) -> None:
    config = _config(tmp_path, logstore)
    first = provision(logstore, config)
    assert first.exit_code == 0, first.output
    assert len(logstore.catalog.writes) == ALL_OBJECTS
    assert f"{ALL_OBJECTS} to change, 0 unchanged" in first.output

    second = provision(logstore, config)
    assert second.exit_code == 0, second.output
    assert len(logstore.catalog.writes) == ALL_OBJECTS  # not one write more
    assert f"0 to change, {ALL_OBJECTS} unchanged" in second.output
    assert logstore.internal_errors == []


def test_what_was_created_is_what_the_guide_asks_for(
    logstore: LocalLogstore, tmp_path: Path
) -> None:
    assert provision(logstore, _config(tmp_path, logstore, ttl=90, shards=4)).exit_code == 0
    sdk = _sdk(logstore)
    p = logstore.project
    meta = sdk.get_logstore(p, "llm-calls").get_body()
    assert (meta["ttl"], meta["shardCount"], meta["mode"]) == (90, 4, "standard")

    keys = sdk.get_index_config(p, "llm-calls").get_body()["keys"]
    for name in ("status_code", "duration_ms", "input_tokens", "output_tokens", "total_tokens"):
        assert keys[name] == {"type": "long", "doc_value": True}
    for name in ("app", "module", "model", "workspace", "event", "error_code", "trace_id"):
        assert keys[name]["type"] == "text" and keys[name]["doc_value"] is True
    assert keys["message"]["chn"] is True and keys["message"]["doc_value"] is False
    assert keys["rating"]["doc_value"] is True  # the feedback event's fields are typed too

    names = [
        "llmtail-business",
        "llmtail-resources",
        "llmtail-feedback",
        "llmtail-drilldown",
    ]
    for name in names:
        board = sdk.get_dashboard(p, name).get_body()
        assert board["charts"] and name == name.lower()
    alert = sdk.get_alert(p, "llmtail-failures").get_body()
    conf = alert["configuration"]
    assert conf["groupConfiguration"] == {"type": "custom", "fields": ["model", "workspace"]}
    assert conf["policyConfiguration"]["actionPolicyId"] == "llmtail-oncall"
    assert [s["evalCondition"]["condition"] for s in conf["severityConfigurations"]] == [
        "success_pct < 95.0",
        "failures >= 10",
    ]
    policy = sdk.get_resource_record("sls.alert.action_policy", "llmtail-oncall").get_body()
    assert json.loads(policy["value"])["primary_policy_script"] == POLICY_SCRIPT
    search = sdk.get_savedsearch(p, "llmtail-slow-calls").get_body()
    assert "duration_ms > 10000" in search["searchQuery"]


def test_dry_run_shows_the_plan_and_writes_nothing(logstore: LocalLogstore, tmp_path: Path) -> None:
    result = provision(logstore, _config(tmp_path, logstore), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "+ logstore llm-calls" in result.output
    assert "+ alert llmtail-quota" in result.output
    assert "nothing was written" in result.output
    assert logstore.catalog.writes == []


def test_a_manual_change_is_shown_by_a_dry_run_then_put_back(
    logstore: LocalLogstore, tmp_path: Path
) -> None:
    config = _config(tmp_path, logstore)
    assert provision(logstore, config).exit_code == 0
    sdk, p = _sdk(logstore), logstore.project

    # Someone edits in the console: a threshold, a chart removed, an index type, a key added.
    alert = sdk.get_alert(p, "llmtail-latency").get_body()
    alert["configuration"]["severityConfigurations"][0]["evalCondition"]["condition"] = (
        "p95_ms > 99999"
    )
    sdk.update_alert(p, alert)
    board = sdk.get_dashboard(p, "llmtail-business").get_body()
    board["charts"] = board["charts"][:-1]
    sdk.update_dashboard(p, board)
    index = sdk.get_index_config(p, "llm-calls").get_body()
    index["keys"]["status_code"] = {"type": "text", "token": [","], "doc_value": True}
    index["keys"]["customer_tier"] = {"type": "text", "token": [","], "doc_value": True}
    sdk.update_index(p, "llm-calls", _Json(index))
    before = len(logstore.catalog.writes)

    shown = provision(logstore, config, "--dry-run")
    assert shown.exit_code == 0, shown.output
    assert "~ alert llmtail-latency" in shown.output
    assert "'p95_ms > 99999' -> 'p95_ms > 10000'" in shown.output
    assert "~ dashboard llmtail-business" in shown.output
    assert "charts[5]: (missing)" in shown.output
    assert "keys.status_code.type: 'text' -> 'long'" in shown.output
    assert "3 to change" in shown.output
    assert len(logstore.catalog.writes) == before

    put_back = provision(logstore, config)
    assert put_back.exit_code == 0, put_back.output
    assert len(logstore.catalog.writes) == before + 3
    keys = sdk.get_index_config(p, "llm-calls").get_body()["keys"]
    assert keys["status_code"]["type"] == "long"
    assert "customer_tier" in keys  # a key the user added is kept
    again = provision(logstore, config)
    assert f"0 to change, {ALL_OBJECTS} unchanged" in again.output


def test_an_existing_logstore_keeps_its_shards_and_gets_the_retention_and_standard_mode(
    logstore: LocalLogstore, tmp_path: Path
) -> None:
    sdk, p = _sdk(logstore), logstore.project
    sdk.create_logstore(p, "llm-calls", ttl=7, shard_count=8, mode="query")
    config = _config(tmp_path, logstore, ttl=30, shards=2)
    shown = provision(logstore, config, "--dry-run", "--only", "index")
    assert "~ logstore llm-calls" in shown.output
    assert "ttl: 7 -> 30" in shown.output and "mode: 'query' -> 'standard'" in shown.output
    assert provision(logstore, config, "--only", "index").exit_code == 0
    meta = sdk.get_logstore(p, "llm-calls").get_body()
    assert (meta["ttl"], meta["mode"], meta["shardCount"]) == (30, "standard", 8)


def test_only_provisions_the_parts_asked_for(logstore: LocalLogstore, tmp_path: Path) -> None:
    result = provision(logstore, _config(tmp_path, logstore), "--only", "index,searches")
    assert result.exit_code == 0, result.output
    assert sorted({w.split()[1].split("/")[1] for w in logstore.catalog.writes}) == [
        "logstores",
        "savedsearches",
    ]
    assert len(logstore.catalog.writes) == 2 + 4


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"output": {"type": "file", "path": "x.ndjson"}}, "provision needs output.type: sls"),
        ({"args": ["--only", "index,charts"]}, "--only: unknown part charts"),
        ({"key": "LTAIwrongwrongwrong"}, "HTTP 401 InvalidAccessKeyId"),
        ({"endpoint": "10.0.0.1:80", "region": None}, "provision.region: cannot tell the region"),
    ],
)
def test_a_users_mistake_is_one_line_without_secrets(
    logstore: LocalLogstore, tmp_path: Path, change: dict[str, Any], expected: str
) -> None:
    config = _config(tmp_path, logstore)
    data = yaml.safe_load(config.read_text())
    if "output" in change:
        data["output"] = change["output"]
    if "endpoint" in change:
        data["output"]["endpoint"] = change["endpoint"]
        data["provision"]["region"] = None
    config.write_text(yaml.safe_dump(data))
    env = _env(logstore)
    if "key" in change:
        env["ALIBABA_CLOUD_ACCESS_KEY_ID"] = change["key"]
    result = CliRunner().invoke(
        app, ["provision", "-c", str(config), *change.get("args", [])], env=env
    )
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("llmtail: ") and expected in lines[-1], result.output
    assert "Traceback" not in result.output
    assert logstore.access_key_secret not in result.output
    assert logstore.catalog.writes == []


@pytest.mark.parametrize(
    ("endpoint", "expected"),
    [
        # The SDK cannot reach an IP address with a port: said before any request.
        ("127.0.0.1:{port}", "cannot reach an IP address with a port"),
        # https is not retried by the SDK: one lookup, and its cause in the line.
        ("https://nowhere.invalid", "no answer from SLS: cannot resolve llmtail-test.nowhere"),
    ],
)
def test_an_endpoint_provision_cannot_reach_is_one_line(
    logstore: LocalLogstore, tmp_path: Path, endpoint: str, expected: str
) -> None:
    config = _config(tmp_path, logstore)
    data = yaml.safe_load(config.read_text())
    data["output"]["endpoint"] = endpoint.format(port=logstore.port)
    config.write_text(yaml.safe_dump(data))
    result = provision(logstore, config)
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("llmtail: ") and expected in lines[-1], result.output
    assert "Traceback" not in result.output
    assert logstore.catalog.writes == []


@pytest.mark.slow
def test_the_installed_command_provisions_then_finds_nothing_to_do(
    logstore: LocalLogstore, tmp_path: Path
) -> None:
    config = _config(tmp_path, logstore)
    env = {**os.environ, **_env(logstore)}

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "llmtail", "provision", "-c", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    first, second = run(), run()
    assert (first.returncode, second.returncode) == (0, 0), first.stderr + second.stderr
    assert f"applied {ALL_OBJECTS} change(s)" in first.stdout
    assert "applied 0 change(s)" in second.stdout
    assert len(logstore.catalog.writes) == ALL_OBJECTS


class _Json:
    """The SDK's update_index takes an object with to_json()."""

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body

    def to_json(self) -> dict[str, Any]:
        return self.body
