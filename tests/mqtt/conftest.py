"""Fixtures for the MQTT tests: a real mosquitto per test (never a mocked paho)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.sink import Sink
from tests.mqtt_broker import MosquittoBroker, MosquittoNotFound


def start_broker(workdir: Path, acl: str | None = None) -> MosquittoBroker:
    """A started broker; fails (never skips) the test when mosquitto is missing."""
    try:
        broker = MosquittoBroker(workdir, acl=acl)
    except MosquittoNotFound as missing:
        pytest.fail(str(missing))
    broker.start()
    return broker


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = start_broker(tmp_path / "broker")
    yield broker
    broker.stop()


@pytest.fixture
def sink(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[Sink]:
    receiver = Sink(mosquitto.host, mosquitto.port, db_path=str(tmp_path / "sink.db"))
    receiver.start()
    yield receiver
    receiver.stop()
    receiver.close()
