"""`mask:` in the config and `llmtail validate --mask-report`, as a user meets them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import yaml
from prometheus_client import generate_latest

from llmtail.agent.config import ConfigError, parse_config
from llmtail.agent.engine.masking import MaskKeyError, masker_for, read_key
from llmtail.agent.ops.metrics import AgentMetrics, Registry
from llmtail.parsers.mask import BUILTIN_RULES

ROOT = Path(__file__).resolve().parent.parent
HEAD = (
    "2025-07-09 14:23:{:02d}.748 {} [traceId:abc] [c.a.c.s.i.ChatServiceImpl#chat():42] [main] - "
)
SECRETS = (
    "13812345678",
    "11010519491231002X",
    "6200000000000005",
    "zhang.san",
    "sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c",
    "hunter2",
    "LTAI5tQ8mZ3xYk9Wv2Rb7Nc1",
)
LOG = (
    HEAD.format(0, "DEBUG")
    + "prompt: 我的手机号码13812345678，身份证11010519491231002X\n"
    + "请帮我查卡6200000000000005，邮箱 zhang.san@example.com\n"  # a continuation line
    + HEAD.format(1, "DEBUG")
    + 'result: {"answer":"ok","password":"hunter2"}\n'
    + HEAD.format(2, "ERROR")
    + "chat-app,chat,qwen-max,ws-1,req-1,401,12,0,0,0,InvalidApiKey,"
    + "Invalid API-key provided: sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c\n"
    + HEAD.format(3, "INFO ")
    + "using LTAI5tQ8mZ3xYk9Wv2Rb7Nc1 for order 12345678901234567890\n"
)


def llmtail(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "llmtail", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        check=False,
        timeout=120,
    )


@pytest.fixture
def app_log(tmp_path: Path) -> Path:
    path = tmp_path / "app.log"
    path.write_text(LOG, encoding="utf-8")
    return path


def test_mask_report_counts_per_rule_and_shows_only_masked_examples(app_log: Path) -> None:
    result = llmtail("validate", "--mask-report", "--json", str(app_log))
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert report["records"] == 4
    assert report["records_masked"] == 4
    assert report["masked"] == {
        "private_key": 0,
        "alibaba_access_key": 1,
        "api_key": 2,  # the llm_call message and its error_message
        "bearer_token": 0,
        "password_pair": 1,
        "email": 1,
        "mobile": 1,
        "resident_id": 1,
        "bank_card": 1,
    }
    assert report["fields"] == {"message": 7, "error_message": 1}
    assert report["examples"]["mobile"][0]["line"] == 1
    assert "我的手机号码***，身份证***\\n" in report["examples"]["mobile"][0]["text"]
    for secret in SECRETS:
        assert secret not in result.stdout
    assert "12345678901234567890" in result.stdout  # an order number is no card

    text = llmtail("validate", "--mask-report", str(app_log))
    assert text.returncode == 0
    assert "values masked per rule:" in text.stdout
    assert not any(secret in text.stdout for secret in SECRETS)


def test_the_config_switches_rules_and_adds_hashed_ones(app_log: Path, tmp_path: Path) -> None:
    key = tmp_path / "mask.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    key.chmod(0o600)
    config = tmp_path / "config.yaml"
    config.write_text(
        "mask:\n"
        "  rules: {email: false}\n"
        "  replace: {mobile: 'hmac:sha256'}\n"
        f"  hmac_key_file: {key}\n"
        "  custom:\n"
        "    - {name: order_no, regex: '[0-9]{20}', prefix: 'order ', replace: '<order>'}\n",
        encoding="utf-8",
    )
    result = llmtail("validate", "--mask-report", "--json", "-c", str(config), str(app_log))
    assert result.returncode == 0, result.stderr
    report = orjson.loads(result.stdout)
    assert "email" not in report["masked"]
    assert report["masked"]["order_no"] == 1
    assert "order <order>" in report["examples"]["order_no"][0]["text"]
    assert "zhang.san@example.com" in result.stdout  # email switched off: visible, as shipped
    mobile = report["examples"]["mobile"][0]["text"]
    assert "号码<hmac:" in mobile and "13812345678" not in mobile
    assert "0123456789abcdef" not in result.stdout


def test_a_bad_rule_in_the_config_is_one_line_naming_it(app_log: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mask:\n  custom:\n    - {name: order_no, regex: '(ORD'}\n")
    result = llmtail("validate", "--mask-report", "-c", str(config), str(app_log))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "mask: rule 'order_no': regex is not a valid regex" in lines[0]


@pytest.mark.parametrize(
    ("mask", "message"),
    [
        ({"rules": {"phone": False}}, "unknown built-in rule 'phone'"),
        ({"replace": {"email": "hmac:sha256"}}, "needs a key (mask.hmac_key_file)"),
        ({"custom": [{"name": "x", "regex": "(?<=a)b"}]}, "rule 'x': regex uses a look-around"),
        ({"custom": [{"name": "x", "regex": "a", "replac": "b"}]}, "mask.custom.0.replac"),
    ],
)
def test_mask_config_errors(mask: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parse_config({"mask": mask})


def test_the_key_file_must_be_private_and_long_enough(tmp_path: Path) -> None:
    key = tmp_path / "mask.key"
    key.write_bytes(b"a-secret-key-of-enough-bytes\n")
    key.chmod(0o644)
    with pytest.raises(MaskKeyError, match="chmod 600") as err:
        read_key(key)
    assert b"a-secret" not in str(err.value).encode()
    key.chmod(0o600)
    assert read_key(key) == b"a-secret-key-of-enough-bytes"
    key.write_bytes(b"short\n")
    with pytest.raises(MaskKeyError, match="shorter than 16 bytes"):
        read_key(key)
    with pytest.raises(MaskKeyError, match="cannot open"):
        read_key(tmp_path / "missing.key")


def test_the_masker_caps_fields_at_the_record_cap_and_the_sls_value_limit() -> None:
    small = masker_for(parse_config({"parser": {"max_record_bytes": 2048}}))
    grown = small.mask_text("password=x " * 300)[0]  # each value grows by two bytes
    assert len(grown.encode()) == 2048
    big = masker_for(parse_config({"parser": {"max_record_bytes": 8 * 1024 * 1024}}))
    huge = "password=x " * 100_000  # 1.1 MB
    assert len(big.mask_text(huge)[0].encode()) == 1024 * 1024


def test_masking_switched_off_reports_nothing(app_log: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mask: {enabled: false}\n")
    result = llmtail("validate", "--mask-report", "-c", str(config), str(app_log))
    assert result.returncode == 0
    assert "masking is switched off" in result.stdout


def test_a_key_readable_by_others_stops_the_report(app_log: Path, tmp_path: Path) -> None:
    key = tmp_path / "mask.key"
    key.write_bytes(b"0123456789abcdef0123456789abcdef")
    key.chmod(0o640)
    config = tmp_path / "config.yaml"
    config.write_text(f"mask:\n  replace: {{email: 'hmac:sha256'}}\n  hmac_key_file: {key}\n")
    result = llmtail("validate", "--mask-report", "-c", str(config), str(app_log))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "chmod 600" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_example_config_lists_every_built_in_rule_with_its_default() -> None:
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text(encoding="utf-8"))
    assert example["mask"]["rules"] == BUILTIN_RULES
    assert parse_config(example).mask == parse_config({}).mask.model_copy(
        update={"rules": BUILTIN_RULES}
    )


def test_masked_values_are_counted_per_rule_in_the_metrics() -> None:
    registry = Registry()
    metrics = AgentMetrics.register(registry)
    masker = masker_for(parse_config({}))
    metrics.count_rules(masker.rule_names)
    fields: dict[str, object] = {"event": "prompt", "message": "prompt: 13812345678 a@b.cn"}
    for rule, n in masker.mask_fields(fields).items():
        metrics.masked.labels(rule).inc(n)
    text = generate_latest(registry).decode()
    assert 'llmtail_masked_total{rule="mobile"} 1.0' in text
    assert 'llmtail_masked_total{rule="email"} 1.0' in text
    assert 'llmtail_masked_total{rule="bank_card"} 0.0' in text
    assert "13812345678" not in text
