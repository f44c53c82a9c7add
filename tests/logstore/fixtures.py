"""pytest fixtures: a fresh, started local Logstore per test (start-up takes milliseconds).

Enable it in tests/conftest.py with:
    from tests.logstore.fixtures import logstore_fixture, sdk_logstore_fixture  # noqa: F401
The function has its own name so that test parameters called `logstore` do not shadow it (F811).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.logstore.server import LocalLogstore


@pytest.fixture(name="logstore")
def logstore_fixture() -> Iterator[LocalLogstore]:
    """A running `LocalLogstore`: `.endpoint` ('127.0.0.1:PORT'), `.access_key_id`,
    `.access_key_secret`, `.project`, `.logstore`; stopped after the test, which then fails
    if the server itself crashed on a request (a bug here, not in the code under test)."""
    with LocalLogstore() as server:
        yield server
    if server.internal_errors:
        pytest.fail("the local Logstore crashed:\n" + "\n".join(server.internal_errors))


@pytest.fixture(name="sdk_logstore")
def sdk_logstore_fixture(logstore: LocalLogstore, monkeypatch: pytest.MonkeyPatch) -> LocalLogstore:
    """`logstore`, with this process's `requests` sent to it as the HTTP proxy for the test
    (`LocalLogstore.sdk_env`): the aliyun SDK, given `logstore.sdk_endpoint`, reaches it by name
    as it reaches SLS."""
    for name, value in logstore.sdk_env().items():
        monkeypatch.setenv(name, value)
    return logstore
