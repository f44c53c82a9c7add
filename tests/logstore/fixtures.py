"""pytest fixture: a fresh, started local Logstore per test (start-up takes milliseconds).

Enable it in tests/conftest.py with:  from tests.logstore.fixtures import logstore  # noqa: F401
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.logstore.server import LocalLogstore


@pytest.fixture
def logstore() -> Iterator[LocalLogstore]:
    """A running `LocalLogstore`: `.endpoint` ('127.0.0.1:PORT'), `.access_key_id`,
    `.access_key_secret`, `.project`, `.logstore`; stopped after the test, which then fails
    if the server itself crashed on a request (a bug here, not in the code under test)."""
    with LocalLogstore() as server:
        yield server
    assert server.internal_errors == [], "\n".join(server.internal_errors)
