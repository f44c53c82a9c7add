"""The config file: the shipped example loads, and every mistake names its key."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from llmtail.agent.config import DEFAULT_PAYLOAD_FIELDS, ConfigError, load_config, parse_config
from llmtail.agent.modes.pipeline import build_engine, parser_settings
from llmtail.parsers.record import DEFAULT_PATTERN as PARSER_DEFAULT
from llmtail.parsers.record import RecordParser

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATTERN_PROPERTY_SPELLING = PARSER_DEFAULT.replace("\\(\\)", "\\\\(\\\\)")


def test_the_shipped_example_loads_and_builds_its_parsers() -> None:
    config = load_config(ROOT / "config.example.yaml")
    assert config.output.type == "file"
    assert [i.encoding for i in config.inputs] == ["utf-8", "gbk"]
    assert config.parser.payload.fields == DEFAULT_PAYLOAD_FIELDS
    assert [s.parser.encoding for s in build_engine(config).settings] == ["utf-8", "gbk"]


def test_the_example_spells_out_the_defaults_it_claims() -> None:
    """Keys the example shows with their defaults must match the code's defaults."""
    example = yaml.safe_load((ROOT / "config.example.yaml").read_text())
    defaults = parse_config({})
    for section in ("tail", "batch"):
        for key, value in example[section].items():
            assert getattr(getattr(defaults, section), key) == value, f"{section}.{key}"
    assert example["max_in_flight_bytes"] == defaults.max_in_flight_bytes
    assert example["parser"]["pattern"] == defaults.parser.pattern == PARSER_DEFAULT


def test_parser_settings_carry_the_config() -> None:
    config = parse_config({"parser": {"timezone": "Asia/Shanghai", "payload": {"separator": "|"}}})
    settings = parser_settings(config, "gbk")
    assert settings.timezone == "Asia/Shanghai"
    assert settings.payload_separator == "|"
    assert settings.encoding == "gbk"
    assert settings.payload_fields[5] == ("status_code", "int")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"inputz": []}, "inputz: unknown key"),
        ({"inputs": [{"paths": ["a"], "encodng": "gbk"}]}, "inputs.0.encodng: unknown key"),
        ({"inputs": [{"paths": []}]}, "inputs.0.paths: List should have at least 1 item"),
        ({"inputs": [{"paths": ["a"], "encoding": "klingon"}]}, "unknown encoding 'klingon'"),
        ({"inputs": [{"paths": ["a"], "encoding": "utf-16"}]}, "encoding 'utf-16' cannot be read"),
        ({"inputs": [{"paths": ["a"], "encoding": "cp037"}]}, "encoding 'cp037' cannot be read"),
        ({"inputs": [{"paths": ["a"], "encoding": "hex"}]}, "encoding 'hex' cannot be read"),
        ({"inputs": [{"paths": ["a"], "start_at": "middle"}]}, "inputs.0.start_at"),
        ({"parser": {"timezone": "Mars/Olympus"}}, "parser.timezone: unknown timezone"),
        ({"output": {"type": "kafka"}}, "output: unknown output type"),
        ({"output": {"type": "sls", "endpoint": "e"}}, "output.project: required key is missing"),
        ({"batch": {"max_records": 10000}}, "batch.max_records"),
        ({"batch": {"linger": "soon"}}, "batch.linger"),
        ({"parser": {"payload": {"fields": [{"name": "9lives"}]}}}, "parser.payload.fields.0.name"),
    ],
)
def test_a_mistake_is_one_line_naming_the_key(document: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config(document, "llmtail.yaml")
    text = str(caught.value)
    assert message in text
    assert "\n" not in text
    assert text.startswith("llmtail.yaml: ")


def test_file_problems_are_one_line(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    broken = tmp_path / "broken.yaml"
    broken.write_text("inputs: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(broken)
    listy = tmp_path / "list.yaml"
    listy.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(listy)


def test_a_pattern_copied_from_a_logback_property_parses_the_same() -> None:
    """Inside <property value="..."> logback needs `\\(`; users paste that spelling as is."""
    copied = DEFAULT_PATTERN_PROPERTY_SPELLING
    config = parse_config({"parser": {"pattern": copied}})
    parser = RecordParser(parser_settings(config))
    assembler = parser.assembler(0)
    line = b"2026-11-27 10:00:00.000 INFO  [traceId:t] [c.a.Foo#bar():1] [main] - hello\n"
    (frame,) = assembler.feed(line, 0.0) + assembler.drain()
    record = parser.parse(frame)
    assert "parse_error" not in record.fields
    assert (record.fields["method"], record.fields["line"]) == ("bar", 1)
