"""`llmtail provision`: plan, print, and (unless `--dry-run`) apply.

Uses the `sls` output's endpoint, project, logstore and credentials; needs the admin
permissions of docs/observability.md's provision policy, which `run` does not.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from llmtail.agent.config import Config, SlsOutput
from llmtail.agent.delivery.credential_sources import credentials_for
from llmtail.agent.delivery.credentials import CredentialsError
from llmtail.agent.provision.desired import GROUPS, ProvisionError, wanted
from llmtail.agent.provision.plan import apply, plan, render
from llmtail.agent.provision.remote import Remote, RemoteError


def parse_only(text: str | None) -> set[str] | None:
    """`--only index,alerts` -> the groups; ProvisionError naming an unknown one."""
    if text is None:
        return None
    parts = {p.strip() for p in text.split(",") if p.strip()}
    unknown = sorted(parts - set(GROUPS))
    if unknown or not parts:
        raise ProvisionError(
            f"--only: unknown part {', '.join(unknown) or '(empty)'} "
            f"(expected a comma-separated subset of {','.join(GROUPS)})"
        )
    return parts


def run_provision(
    config: Config, dry_run: bool, only: Iterable[str] | None, echo: Callable[[str], None]
) -> int:
    """Print the plan and apply it; raises ProvisionError for anything the user must fix."""
    from llmtail.agent.delivery.admin_client import log_client  # noqa: PLC0415 (the SDK is heavy)
    from llmtail.agent.endpoint import EndpointError  # noqa: PLC0415

    output = config.output
    if not isinstance(output, SlsOutput):
        raise ProvisionError(
            "provision needs output.type: sls (its endpoint, project and logstore say where)"
        )
    kinds = {k for group in (only or GROUPS) for k in GROUPS[group]}
    objects = [w for w in wanted(config, output) if w.kind in kinds]
    try:
        remote = Remote(log_client(output.endpoint, credentials_for(output), 30.0), output.project)
        steps = plan(remote, objects)
        for line in render(steps):
            echo(line)
        if dry_run:
            echo("dry run: nothing was written")
            return 0
        written = apply(remote, steps)
    except (CredentialsError, EndpointError, RemoteError) as exc:
        raise ProvisionError(str(exc)) from None
    echo(f"applied {written} change(s) to project {output.project}")
    return 0
