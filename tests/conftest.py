"""Shared fixtures: the local Logstore (tests/logstore) for every test module."""

from tests.logstore.fixtures import logstore_fixture  # noqa: F401  (registers `logstore`)
