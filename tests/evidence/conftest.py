"""The evidence tests run the daemon against the same private mosquitto as tests/test_daemon.py."""

from tests.test_daemon import broker  # noqa: F401 - the fixture, shared
