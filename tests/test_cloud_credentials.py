"""Credentials with no AccessKey on disk: the ECS instance RAM role through
alibabacloud-credentials, against a local metadata service and the local Logstore."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from llmtail.agent.config import parse_config
from llmtail.agent.delivery.credential_sources import credentials_for
from llmtail.agent.delivery.credentials import (
    ENV_ID,
    ENV_SECRET,
    ENV_TOKEN,
    CredentialsError,
)
from llmtail.agent.delivery.sls_client import SlsClient, SlsError
from llmtail.agent.engine.loggroup import LogEncoder, LogGroupBytes, encode_trailer
from tests.agentproc import Agent, LogstoreProcess, ids_in_records, record_line, wait_for
from tests.ecs_metadata import METADATA_HOST, EcsMetadata, RoleCredential
from tests.logstore import LocalLogstore


@pytest.fixture
def metadata(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[EcsMetadata]:
    """The metadata service, reached as the library's HTTP proxy; an empty home, no keys in
    the environment: nothing on disk or in the environment holds an AccessKey."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    for name in (ENV_ID, ENV_SECRET, ENV_TOKEN, "http_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    with EcsMetadata() as service:
        monkeypatch.setenv("HTTP_PROXY", service.proxy)
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # SLS requests go to the local Logstore
        yield service
    assert list(home.iterdir()) == []


def _output(logstore: LocalLogstore, role: str | None = None) -> object:
    cfg = parse_config(
        {
            "output": {
                "type": "sls",
                "endpoint": logstore.endpoint,
                "project": logstore.project,
                "logstore": logstore.logstore,
                "credentials_provider": "ecs_ram_role",
                **({"ecs_role_name": role} if role else {}),
            }
        }
    )
    return cfg.output


def _group(n: int) -> LogGroupBytes:
    log = LogEncoder().encode_log({"message": f"record {n}"}, int(time.time()), 0)
    return LogGroupBytes([log], encode_trailer("", "10.0.0.7", []))


def _trust(logstore: LocalLogstore, cred: RoleCredential) -> None:
    """SLS accepts what the RAM role was issued (STS key + its token)."""
    logstore.add_credential(cred.access_key_id, cred.access_key_secret, cred.security_token)


def test_a_role_credential_is_refreshed_before_expiry_used_and_reread_after_expiry(
    logstore: LocalLogstore, metadata: EcsMetadata
) -> None:
    # The first credential has ten minutes left: inside the refresh window (15 minutes).
    metadata.next_lifetime(10 * 60)
    source = credentials_for(_output(logstore))  # type: ignore[arg-type]
    client = SlsClient(logstore.endpoint, source, "10.0.0.7", timeout=10)
    assert metadata.requests["credentials"] == 1  # fetched at start: a bad role fails early
    metadata.next_lifetime(6 * 3600)

    # The next request gets a fresh one before the old one runs out, without any 401 first;
    # SLS knows only the fresh one here, so the writes prove which was used.
    fresh = source.get()
    assert metadata.requests["credentials"] == 2
    second = metadata.issued[1]
    assert (fresh.access_key_id, fresh.security_token) == (
        second.access_key_id,
        second.security_token,
    )
    _trust(logstore, second)
    client.put(logstore.project, logstore.logstore, _group(1))
    client.put(logstore.project, logstore.logstore, _group(2))
    assert metadata.requests["credentials"] == 2  # cached while far from expiry
    assert metadata.seen_hosts == {METADATA_HOST}

    # SLS says the token expired (revoked early): the sink calls refresh(), the role gives a
    # new credential and the write goes through with it.
    logstore.expire_token(second.security_token)
    with pytest.raises(SlsError) as err:
        client.put(logstore.project, logstore.logstore, _group(3))
    assert (err.value.status, err.value.code) == (401, "Unauthorized")
    source.refresh()
    third = metadata.issued[2]
    assert source.get().security_token == third.security_token
    _trust(logstore, third)
    client.put(logstore.project, logstore.logstore, _group(3))
    assert metadata.requests["credentials"] == 3
    assert [r["message"] for r in logstore.records()] == [f"record {n}" for n in (1, 2, 3)]
    assert logstore.stats().rejected == {"Unauthorized": 1}


def test_an_unknown_role_is_one_line_naming_the_role(
    logstore: LocalLogstore, metadata: EcsMetadata
) -> None:
    with pytest.raises(CredentialsError) as err:
        credentials_for(_output(logstore, role="no-such-role"))  # type: ignore[arg-type]
    message = str(err.value)
    assert "ECS RAM role no-such-role" in message and "\n" not in message


def test_credentials_file_and_a_provider_are_refused_together(logstore: LocalLogstore) -> None:
    from llmtail.agent.config import ConfigError  # noqa: PLC0415

    with pytest.raises(ConfigError, match="two sources: keep one"):
        parse_config(
            {
                "output": {
                    "type": "sls",
                    "endpoint": logstore.endpoint,
                    "project": "p",
                    "logstore": "l",
                    "credentials_file": "/etc/llmtail/credentials.yaml",
                    "credentials_provider": "ecs_ram_role",
                }
            }
        )


@pytest.mark.slow
def test_the_agent_ships_with_the_instance_role_and_rereads_it_when_the_token_expires(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real `llmtail run` with no AccessKey anywhere: the role's STS credentials come from the
    metadata service; when SLS says the token expired, the agent fetches a new one and every
    record arrives. No file the agent wrote holds a secret."""
    home, logs = tmp_path / "home", tmp_path / "logs"
    home.mkdir()
    logs.mkdir()
    for name in (ENV_ID, ENV_SECRET, ENV_TOKEN, "http_proxy", "no_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    (logs / "app.log").write_bytes(b"".join(record_line(i) for i in range(100)))
    with LogstoreProcess() as store:

        def trust(cred: RoleCredential) -> None:
            store.admin(
                "POST",
                "credentials",
                {
                    "access_key_id": cred.access_key_id,
                    "access_key_secret": cred.access_key_secret,
                    "security_token": cred.security_token,
                },
            )

        with EcsMetadata(on_issue=trust) as metadata:
            config = {
                "inputs": [{"paths": [str(logs / "*.log")], "start_at": "beginning"}],
                "output": store.output(credentials_provider="ecs_ram_role"),
                "tail": {"poll_interval": 0.05, "rescan_interval": 0.5},
                "batch": {"linger": 0.1},
            }
            env = {"HTTP_PROXY": metadata.proxy, "NO_PROXY": "127.0.0.1", "HOME": str(home)}
            with Agent(tmp_path, config) as agent:
                agent.start(env=env)
                wait_for(lambda: store.accepted_logs() >= 100, 60, "the first records")
                first = metadata.issued[-1]
                store.admin("POST", "expire-token", {"token": first.security_token})
                with open(logs / "app.log", "ab") as f:
                    f.write(b"".join(record_line(i) for i in range(100, 200)))
                wait_for(lambda: store.accepted_logs() >= 200, 60, "records after the expiry")
                assert agent.stop() == 0
            issued = list(metadata.issued)
        assert store.stats()["rejected"].get("Unauthorized", 0) >= 1
        assert set(ids_in_records(store.records())) == set(range(200))
    assert len(issued) >= 2 and issued[-1].security_token != first.security_token
    secrets = [s.encode() for c in issued for s in (c.access_key_secret, c.security_token)]
    for path in tmp_path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert not any(s in data for s in secrets), f"a secret in {path}"
    assert list(home.iterdir()) == []


@pytest.mark.slow
def test_the_default_chain_finds_the_instance_role_when_nothing_else_is_configured(
    logstore: LocalLogstore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`credentials_provider: chain` in a real process (the library reads its environment at
    import): no keys in the environment, no profile files, so the chain ends at the ECS role."""
    home = tmp_path / "home"
    home.mkdir()
    for name in (ENV_ID, ENV_SECRET, ENV_TOKEN, "http_proxy", "no_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)

    def trust(cred: RoleCredential) -> None:
        _trust(logstore, cred)

    with EcsMetadata(on_issue=trust) as metadata:
        config = tmp_path / "config.yaml"
        config.write_text(
            yaml.safe_dump(
                {
                    "output": {
                        "type": "sls",
                        "endpoint": logstore.endpoint,
                        "project": logstore.project,
                        "logstore": logstore.logstore,
                        "credentials_provider": "chain",
                    }
                }
            )
        )
        env = {
            **os.environ,
            "HTTP_PROXY": metadata.proxy,
            "NO_PROXY": "127.0.0.1",
            "HOME": str(home),
        }
        done = subprocess.run(
            [sys.executable, "-m", "llmtail", "check-output", "-c", str(config)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("OK"), done.stdout
        assert metadata.requests["credentials"] >= 1
        issued = list(metadata.issued)
    assert not any(c.access_key_secret in done.stdout + done.stderr for c in issued)
    assert list(home.iterdir()) == []
