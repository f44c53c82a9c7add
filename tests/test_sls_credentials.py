"""Credentials: environment or a private file, re-read on rotation, never shown."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from llmtail.agent.delivery.credentials import (
    Credentials,
    CredentialsError,
    FileCredentials,
    from_environment,
    from_systemd,
    load_credentials,
)

SECRET = "s3cr3t-VALUE-never-shown"
TOKEN = "CAIS-sts-token-never-shown"


def write(path: Path, body: str, mode: int = 0o600, bump: int = 0) -> None:
    path.write_text(body, encoding="utf-8")
    path.chmod(mode)
    if bump:  # a rotation within the same mtime tick must still be seen: move mtime on
        st = path.stat()
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + bump))


def test_environment_variables_give_credentials() -> None:
    env = {
        "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tExampleKeyId",
        "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
        "ALIBABA_CLOUD_SECURITY_TOKEN": TOKEN,
    }
    assert from_environment(env).get() == Credentials("LTAI5tExampleKeyId", SECRET, TOKEN)


def test_missing_environment_names_the_variables_in_one_line() -> None:
    with pytest.raises(CredentialsError) as info:
        load_credentials(None, {"ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tExampleKeyId"})
    message = str(info.value)
    assert "ALIBABA_CLOUD_ACCESS_KEY_SECRET" in message and "credentials_file" in message
    assert "\n" not in message


def test_repr_never_shows_the_secret_or_token() -> None:
    creds = Credentials("LTAI5tExampleKeyId", SECRET, TOKEN)
    for text in (
        repr(creds),
        str(creds),
        f"{creds}",
        repr(
            from_environment(
                {
                    "ALIBABA_CLOUD_ACCESS_KEY_ID": "LTAI5tExampleKeyId",
                    "ALIBABA_CLOUD_ACCESS_KEY_SECRET": SECRET,
                }
            )
        ),
    ):
        assert SECRET not in text and TOKEN not in text
        assert "LTAI5tExampleKeyId" not in text  # shortened: enough to tell keys apart
        assert "LTAI" in text


def test_a_file_readable_by_others_is_refused_with_the_chmod_to_run(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    write(path, f"access_key_id: LTAI5tExampleKeyId\naccess_key_secret: {SECRET}\n", 0o644)
    with pytest.raises(CredentialsError) as info:
        FileCredentials(path)
    message = str(info.value)
    assert f"chmod 600 {path}" in message and "0644" in message
    assert SECRET not in message and "\n" not in message


@pytest.mark.parametrize(
    ("body", "hint"),
    [
        (f"access_key_id: LTAI5tExampleKeyId\naccess_key_secret: [{SECRET}\n", "not valid YAML"),
        ("- a list\n", "expected keys"),
        (f"access_key_id: LTAI5tExampleKeyId\naccess_secret: {SECRET}\n", "access_secret"),
        ("access_key_id: LTAI5tExampleKeyId\n", "access_key_secret"),
        ("access_key_id: 12345\naccess_key_secret: x\n", "must be a string"),
    ],
)
def test_a_bad_file_is_one_line_naming_it_without_its_content(
    tmp_path: Path, body: str, hint: str
) -> None:
    path = tmp_path / "creds.yaml"
    write(path, body)
    with pytest.raises(CredentialsError) as info:
        FileCredentials(path)
    message = str(info.value)
    assert str(path) in message and hint in message
    assert SECRET not in message and "\n" not in message


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(CredentialsError, match="cannot read credentials file"):
        load_credentials(str(tmp_path / "nope.yaml"))


def test_a_rotated_token_is_picked_up_when_the_file_changes(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    body = "access_key_id: STS.KeyId1234\naccess_key_secret: {s}\nsecurity_token: {t}\n"
    write(path, body.format(s="secret-1", t="token-1"))
    source = FileCredentials(path)
    assert source.get().security_token == "token-1"
    write(path, body.format(s="secret-2", t="token-2"), bump=1_000_000)
    assert source.get() == Credentials("STS.KeyId1234", "secret-2", "token-2")


def test_a_half_written_rotation_keeps_the_old_credentials_and_warns_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "creds.yaml"
    write(path, f"access_key_id: STS.KeyId1234\naccess_key_secret: {SECRET}\n")
    source = FileCredentials(path)
    write(path, "access_key_id: STS.KeyId1234\naccess_key_secr", bump=1_000_000)
    with caplog.at_level(logging.WARNING):
        assert source.get().access_key_secret == SECRET
        assert source.get().access_key_secret == SECRET
    assert len(caplog.records) == 1 and SECRET not in caplog.text
    write(path, "access_key_id: STS.KeyId1234\naccess_key_secret: fresh\n", bump=2_000_000)
    assert source.get().access_key_secret == "fresh"


def test_refresh_rereads_even_when_the_stat_did_not_change(tmp_path: Path) -> None:
    path = tmp_path / "creds.yaml"
    write(path, "access_key_id: STS.KeyId1234\naccess_key_secret: one\n")
    source = FileCredentials(path)
    st = path.stat()
    write(path, "access_key_id: STS.KeyId1234\naccess_key_secret: two\n")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime and size: invisible
    assert source.get().access_key_secret == "one"
    source.refresh()
    assert source.get().access_key_secret == "two"


def test_systemd_credentials_may_be_group_readable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # systemd gives the service its LoadCredential= files in $CREDENTIALS_DIRECTORY
    # (/run/credentials/UNIT): read-only, the group bits showing the ACL for the service user.
    creds_dir = tmp_path / "credentials" / "llmtail.service"
    creds_dir.mkdir(parents=True)
    path = creds_dir / "sls"
    write(path, f"access_key_id: LTAI5tExampleKeyId\naccess_key_secret: {SECRET}\n", 0o440)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds_dir))
    assert FileCredentials(path).get().access_key_secret == SECRET
    path.chmod(0o444)  # readable by everyone is still refused
    with pytest.raises(CredentialsError, match="accessible by group/others"):
        FileCredentials(path)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    path.chmod(0o440)  # the same mode anywhere else is refused
    with pytest.raises(CredentialsError, match="chmod 600"):
        FileCredentials(path)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/run/credentials/llmtail.service/sls", True),
        ("/run/credentials/llmtail.service/../other.service/sls", True),
        ("/run/credentials-not/sls", False),
        ("/etc/llmtail/credentials.yaml", False),
    ],
)
def test_the_systemd_credentials_directory_is_recognised(path: str, expected: bool) -> None:
    assert from_systemd(Path(path), {}) is expected
