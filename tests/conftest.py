"""Shared fixtures: the local Logstore (tests/logstore) for every test module."""

from tests.logstore.fixtures import (  # noqa: F401  (registers `logstore`, `sdk_logstore`)
    logstore_fixture,
    sdk_logstore_fixture,
)
