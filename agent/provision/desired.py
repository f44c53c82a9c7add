"""The objects provision wants in SLS, built from the config alone (no I/O).

Names are lowercase (`{prefix}-...`). Each object is the JSON body the SDK sends; `plan`
compares it with what SLS returns, key by key, so fields SLS adds are not differences.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from llmtail.agent.config import Config, ProvisionConfig, SlsOutput
from llmtail.agent.provision.alerts import alerts
from llmtail.agent.provision.dashboards import dashboards
from llmtail.agent.provision.index import index_body
from llmtail.agent.provision.searches import searches


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
    out += [Wanted(Kind.DASHBOARD, d["dashboardName"], d) for d in dashboards(output, p)]
    region = region_of(output, p)
    out += [Wanted(Kind.ALERT, a["name"], a) for a in alerts(output, p, region)]
    out += [Wanted(Kind.SEARCH, s["savedsearchName"], s) for s in searches(output, p)]
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
