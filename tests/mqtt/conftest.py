"""Fixtures for the MQTT tests: a real mosquitto per test (never a mocked paho)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import MosquittoBroker, MosquittoNotFound
from simulators.sink import Sink
from station.mqtt import EventPublisher, Fault, MqttConfig
from station.outbox import Outbox
from tests.mqtt.factories import SITE, STATION


def start_broker(
    workdir: Path,
    acl: str | None = None,
    allow_anonymous: bool = True,
    extra_config: tuple[str, ...] = (),
) -> MosquittoBroker:
    """A started broker; fails (never skips) the test when mosquitto is missing."""
    try:
        broker = MosquittoBroker(
            workdir, acl=acl, allow_anonymous=allow_anonymous, extra_config=extra_config
        )
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


def wait_until(predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def fast_config(broker: MosquittoBroker, **overrides: Any) -> MqttConfig:
    """Publisher config for tests: quick reconnects so outages take fractions of a second."""
    settings: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "reconnect_min_s": 0.1,
        "reconnect_max_s": 0.5,
        **overrides,
    }
    return MqttConfig(**settings)


class PublisherFactory:
    """Builds publishers on a shared outbox path and stops whatever it built."""

    def __init__(self, broker: MosquittoBroker, outbox_path: Path) -> None:
        self.broker = broker
        self.outbox_path = outbox_path
        self.faults: list[Fault] = []
        self._built: list[tuple[EventPublisher, Outbox]] = []

    def __call__(
        self, start: bool = True, max_inbound_bytes: int | None = None, **config: Any
    ) -> EventPublisher:
        outbox = Outbox(self.outbox_path)
        publisher = EventPublisher(
            fast_config(self.broker, **config),
            outbox,
            STATION,
            SITE,
            on_fault=self.faults.append,
            max_inbound_bytes=max_inbound_bytes,
        )
        self._built.append((publisher, outbox))
        if start:
            publisher.start()
            assert wait_until(lambda: publisher.connected), self.broker.log_tail()
        return publisher

    def stop_all(self) -> None:
        while self._built:
            publisher, outbox = self._built.pop()
            publisher.stop(timeout=0.5)
            outbox.close()


@pytest.fixture
def make_publisher(mosquitto: MosquittoBroker, tmp_path: Path) -> Iterator[PublisherFactory]:
    factory = PublisherFactory(mosquitto, tmp_path / "outbox.db")
    yield factory
    factory.stop_all()


class RawSubscriber:
    """A plain paho MQTT 5 subscriber that records what arrives, retained messages included."""

    def __init__(self, broker: MosquittoBroker, topic_filter: str) -> None:
        self.messages: list[paho.MQTTMessage] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self._client.on_connect = lambda client, *_: client.subscribe(topic_filter, qos=1)
        self._client.on_message = lambda _client, _userdata, message: self.messages.append(message)
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()

    def payloads(self) -> list[bytes]:
        return [message.payload for message in list(self.messages)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def retained_payload(broker: MosquittoBroker, topic: str, timeout: float = 3.0) -> bytes | None:
    """The retained message on `topic` as a new subscriber sees it."""
    subscriber = RawSubscriber(broker, topic)
    try:
        wait_until(lambda: bool(subscriber.messages), timeout)
        retained = [m.payload for m in subscriber.messages if m.retain]
        return retained[-1] if retained else None
    finally:
        subscriber.close()
