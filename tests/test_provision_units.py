"""The pure pieces of provision: readable differences, regions, names, the index's types."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from llmtail.agent.config import parse_config
from llmtail.agent.provision.desired import ProvisionError, region_of, wanted
from llmtail.agent.provision.diff import differences
from llmtail.agent.provision.queries import literal

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=10,
)


@given(json_values)
def test_an_object_never_differs_from_itself(value: object) -> None:
    assert differences(value, value) == []


@given(
    st.dictionaries(st.text(max_size=3), json_values, max_size=4),
    st.dictionaries(st.text(min_size=4, max_size=6), json_values, max_size=3),
)
def test_keys_the_server_adds_are_not_differences(
    want: dict[str, object], extra: dict[str, object]
) -> None:
    assert differences(want, {**want, **extra}) == []


def test_differences_name_the_path_and_both_values() -> None:
    want = {
        "configuration": {"severityConfigurations": [{"evalCondition": {"condition": "x > 1"}}]}
    }
    have = {
        "configuration": {"severityConfigurations": [{"evalCondition": {"condition": "x > 9"}}]}
    }
    assert differences(want, have) == [
        "configuration.severityConfigurations[0].evalCondition.condition: 'x > 9' -> 'x > 1'"
    ]
    assert differences({"charts": [{"a": 1}, {"a": 2}]}, {"charts": [{"a": 1}]}) == [
        "charts[1]: (missing) -> {'a': 2}"
    ]
    assert differences({"token": [",", " "]}, {"token": [","]}) == ["token: [','] -> [',', ' ']"]
    assert differences({"ttl": 30}, {"ttl": "30"}) == []  # SLS may answer numbers as text


@pytest.mark.parametrize(
    ("endpoint", "region"),
    [
        ("cn-hangzhou.log.aliyuncs.com", "cn-hangzhou"),
        ("cn-hangzhou-intranet.log.aliyuncs.com", "cn-hangzhou"),
        ("https://ap-southeast-1.log.aliyuncs.com", "ap-southeast-1"),
        ("cn-shanghai-finance-1-share.log.aliyuncs.com", "cn-shanghai-finance-1"),
    ],
)
def test_the_region_is_read_from_the_endpoint(endpoint: str, region: str) -> None:
    cfg = parse_config(
        {"output": {"type": "sls", "endpoint": endpoint, "project": "p", "logstore": "l"}}
    )
    assert region_of(cfg.output, cfg.provision) == region  # type: ignore[arg-type]


def test_an_ip_endpoint_needs_the_region_configured() -> None:
    cfg = parse_config(
        {"output": {"type": "sls", "endpoint": "10.0.0.1:80", "project": "p", "logstore": "l"}}
    )
    with pytest.raises(ProvisionError, match=r"set provision\.region"):
        region_of(cfg.output, cfg.provision)  # type: ignore[arg-type]


def test_names_are_lowercase_and_user_values_are_quoted() -> None:
    cfg = parse_config(
        {
            "output": {
                "type": "sls",
                "endpoint": "cn-beijing.log.aliyuncs.com",
                "project": "p",
                "logstore": "l",
            },
            "provision": {"core_models": ["o'brien"], "negative_ratings": ["it's bad"]},
        }
    )
    objects = wanted(cfg, cfg.output)  # type: ignore[arg-type]
    assert all(w.name == w.name.lower() for w in objects)
    assert literal("o'brien") == "'o''brien'"
    queries = str([w.body for w in objects])
    assert "'o''brien'" in queries and "'it''s bad'" in queries


def test_extra_payload_fields_are_typed_in_the_index() -> None:
    cfg = parse_config(
        {
            "output": {
                "type": "sls",
                "endpoint": "cn-beijing.log.aliyuncs.com",
                "project": "p",
                "logstore": "l",
            },
            "parser": {
                "payload": {
                    "fields": [
                        {"name": "app"},
                        {"name": "cost_micros", "type": "int"},
                        {"name": "note"},
                    ]
                },
                "feedback": {"fields": [{"name": "request_id"}, {"name": "score", "type": "int"}]},
            },
        }
    )
    index = next(w for w in wanted(cfg, cfg.output) if w.kind == "index").body  # type: ignore[arg-type]
    assert index["keys"]["cost_micros"] == {"type": "long", "doc_value": True}
    assert index["keys"]["score"] == {"type": "long", "doc_value": True}
    assert index["keys"]["note"]["doc_value"] is True
