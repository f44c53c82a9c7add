"""`llmtail check-output` for the SLS output: one empty PutLogs that proves endpoint, keys,
project and Logstore, and one line that says which of them is wrong."""

from __future__ import annotations

from llmtail.agent.config import SlsOutput
from llmtail.agent.delivery.credential_sources import credentials_for
from llmtail.agent.delivery.credentials import CredentialsError, CredentialsSource, mask
from llmtail.agent.delivery.retry import Failure, classify
from llmtail.agent.delivery.sls_client import SlsClient, SlsError
from llmtail.agent.endpoint import EndpointError, parse_endpoint
from llmtail.agent.engine.loggroup import LogGroupBytes, encode_trailer


class OutputCheckError(Exception):
    """Why the configured SLS output cannot be written to; one line for the user."""


def check_output(
    config: SlsOutput,
    *,
    credentials: CredentialsSource | None = None,
    timeout: float = 10.0,
) -> str:
    """Prove endpoint, credentials, project and logstore with one PutLogs of an empty LogGroup.

    Returns a one-line success message; raises OutputCheckError saying what is wrong. An empty
    LogGroup stores nothing, and PutLogs is the one permission the agent needs anyway (a check
    with GetLogStore would demand a read permission the agent never uses).
    """
    try:
        source = credentials or credentials_for(config)
        endpoint = parse_endpoint(config.endpoint)
        key_id = mask(source.get().access_key_id)
    except (CredentialsError, EndpointError) as exc:
        raise OutputCheckError(str(exc)) from None
    client = SlsClient(
        endpoint,
        source,
        source=config.source or "127.0.0.1",
        timeout=min(timeout, config.request_timeout),
        compress=config.compress == "lz4",
    )
    where = f"{config.project}/{config.logstore} at {endpoint.scheme}://{endpoint.netloc()}"
    try:
        request_id = client.put(
            config.project, config.logstore, LogGroupBytes([], encode_trailer(config.topic, "", ()))
        )
    except SlsError as err:
        if err.status == 400 and err.code == "PostBodyInvalid":
            # SLS checks the signature, project and logstore before the body: a complaint about
            # the empty LogGroup itself still proves everything the check is for.
            return f"OK: {where} accepts requests from AccessKeyId {key_id} ({err.code})"
        raise OutputCheckError(_explain(err, config, endpoint.netloc(), key_id)) from None
    except CredentialsError as exc:
        raise OutputCheckError(str(exc)) from None
    finally:
        client.close()
    return f"OK: {where} accepts writes from AccessKeyId {key_id} (request id {request_id})"


def _explain(err: SlsError, config: SlsOutput, netloc: str, key_id: str) -> str:  # noqa: PLR0911 - one line per cause
    code = err.code
    if err.status == 0:
        if code == "Timeout":
            return f"cannot reach {netloc}: no answer within the timeout"
        return f"cannot reach {netloc}: {err.message}"
    if code == "ProjectNotExist":
        return f"project {config.project!r} does not exist at {netloc} (ProjectNotExist)"
    if code == "LogStoreNotExist":
        return (
            f"logstore {config.logstore!r} does not exist in project {config.project!r} "
            "(LogStoreNotExist)"
        )
    if code in ("InvalidAccessKeyId", "InvalidAccessKeyId.NotFound"):
        return f"AccessKeyId {key_id} is not known to SLS ({code})"
    if code == "SignatureNotMatch":
        return f"the AccessKey secret does not match AccessKeyId {key_id} (SignatureNotMatch)"
    if classify(err.status, code, err.message) is Failure.TOKEN_EXPIRED:
        return f"the STS security token has expired ({code}); write a fresh one"
    if code == "RequestTimeExpired":
        return "this host's clock is more than 15 minutes off (RequestTimeExpired); fix NTP"
    if err.status in (401, 403):
        return (
            f"AccessKeyId {key_id} may not write to {config.project}/{config.logstore} "
            f"({code}: {err.message})"
        )
    return f"SLS refused the check: {err}"
