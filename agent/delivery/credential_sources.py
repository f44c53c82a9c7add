"""Which credentials an `sls` output uses: its config names the source.

Kept apart from agent/delivery/credentials.py (env vars and the private file) because the cloud
providers (agent/delivery/cloud_credentials.py) build on those types and pull in a library that
only hosts using a provider should pay for.
"""

from __future__ import annotations

from llmtail.agent.config import SlsOutput
from llmtail.agent.delivery.credentials import CredentialsSource, load_credentials


def credentials_for(output: SlsOutput) -> CredentialsSource:
    """The source an `sls` output is configured with; CredentialsError says what is wrong."""
    provider = output.credentials_provider
    if provider in (None, "env", "file"):
        return load_credentials(output.credentials_file)
    # Imported here: only hosts that use a provider pay for the library.
    from llmtail.agent.delivery.cloud_credentials import ProviderCredentials  # noqa: PLC0415

    if provider == "ecs_ram_role":
        return ProviderCredentials.ecs_ram_role(output.ecs_role_name)
    return ProviderCredentials.default_chain()
