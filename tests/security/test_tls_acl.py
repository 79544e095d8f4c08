"""MQTT over TLS with client certificates and the shipped ACL (config/mosquitto/), against a real
mosquitto: who may publish and read what. A station is its certificate's CN "<site>/<station>"."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.broker import MosquittoBroker
from simulators.wms import WmsSimulator
from station.catalog_file import load_catalog
from station.clock import ManualClock
from station.events import (
    EventType,
    Mode,
    Outcome,
    TopicKey,
    VerificationResult,
    topic_for,
)
from station.manifests import (
    FetchedManifest,
    ManifestService,
    MqttManifestSourceConfig,
    open_manifest_source,
)
from station.mqtt import EventPublisher, Fault, FaultCode, MqttConfig, ReceivedMessage, TlsConfig
from station.outbox import Outbox
from tests.mqtt.conftest import wait_until
from tests.security.conftest import (
    IDENTITY_A,
    IDENTITY_B,
    REISSUE,
    REPO,
    SITE,
    STATION_A,
    STATION_B,
    WMS,
    Pki,
)

NOT_AUTHORIZED = 0x87
MANIFEST_DIR = REPO / "config" / "manifests"
CATALOG = load_catalog(REPO / "config" / "catalog.example.json")
RESPONSE_A = topic_for(TopicKey.MANIFEST_RESPONSE, SITE, STATION_A)
RESPONSE_B = topic_for(TopicKey.MANIFEST_RESPONSE, SITE, STATION_B)
ALL_EVENTS = "packstation/v1/+/+/events/#"


def tls_for(pki: Pki, identity: str) -> TlsConfig:
    return TlsConfig(ca_file=pki.ca, cert_file=pki.cert(identity), key_file=pki.key(identity))


class Client:
    """A raw paho MQTT 5 client over TLS as `identity`: records messages and PUBACK reasons."""

    _count = 0

    def __init__(self, broker: MosquittoBroker, pki: Pki, identity: str, *filters: str) -> None:
        Client._count += 1  # a client id of its own: a duplicate would take over the session
        self.messages: list[paho.MQTTMessage] = []
        self.pubacks: dict[int, int] = {}
        self._subscribed = threading.Event()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2, client_id=f"raw-{Client._count}", protocol=paho.MQTTv5
        )
        self._client.tls_set(
            ca_certs=str(pki.ca), certfile=str(pki.cert(identity)), keyfile=str(pki.key(identity))
        )
        self._client.on_connect = lambda client, *_: self._on_connect(client, filters)
        self._client.on_subscribe = lambda *_: self._subscribed.set()
        self._client.on_message = lambda _c, _u, message: self.messages.append(message)
        self._client.on_publish = self._on_publish
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        assert self._subscribed.wait(5), broker.log_tail()

    def _on_connect(self, client: paho.Client, filters: tuple[str, ...]) -> None:
        if filters:
            client.subscribe([(topic_filter, 1) for topic_filter in filters])
        else:
            self._subscribed.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, reason: Any, _p: Any) -> None:
        self.pubacks[mid] = reason.value

    def publish(self, topic: str, payload: bytes, correlation: bytes | None = None) -> int:
        """PUBACK reason code of one QoS 1 publish."""
        properties = Properties(PacketTypes.PUBLISH)
        if correlation is not None:
            properties.CorrelationData = correlation
        info = self._client.publish(topic, payload, qos=1, properties=properties)
        assert wait_until(lambda: info.mid in self.pubacks, 5)
        return self.pubacks[info.mid]

    def topics(self) -> list[str]:
        return [message.topic for message in list(self.messages)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class Stations:
    """Builds EventPublishers (the station's real MQTT client) over TLS and stops them."""

    def __init__(self, broker: MosquittoBroker, pki: Pki, tmp_path: Path) -> None:
        self.broker, self.pki, self.tmp_path = broker, pki, tmp_path
        self.faults: list[Fault] = []
        self._built: list[tuple[EventPublisher, Outbox]] = []

    def outbox(self, publisher: EventPublisher) -> Outbox:
        return next(outbox for built, outbox in self._built if built is publisher)

    def __call__(
        self, station: str, tls: TlsConfig | None, start: bool = True, **config: Any
    ) -> EventPublisher:
        outbox = Outbox(self.tmp_path / f"outbox-{len(self._built)}.db")
        settings = MqttConfig(
            host=self.broker.host,
            port=self.broker.port,
            tls=tls,
            reconnect_min_s=0.1,
            reconnect_max_s=0.5,
            **config,
        )
        publisher = EventPublisher(settings, outbox, station, SITE, on_fault=self.faults.append)
        self._built.append((publisher, outbox))
        if start:
            publisher.start()
        return publisher

    def stop_all(self) -> None:
        while self._built:
            publisher, outbox = self._built.pop()
            publisher.stop(timeout=0.5)
            outbox.close()


@pytest.fixture
def stations(tls_broker: MosquittoBroker, pki: Pki, tmp_path: Path) -> Iterator[Stations]:
    factory = Stations(tls_broker, pki, tmp_path)
    yield factory
    factory.stop_all()


@pytest.fixture
def clients(tls_broker: MosquittoBroker, pki: Pki) -> Iterator[Any]:
    built: list[Client] = []

    def build(identity: str, *filters: str) -> Client:
        client = Client(tls_broker, pki, identity, *filters)
        built.append(client)
        return client

    yield build
    for client in built:
        client.close()


def verdict(station: str) -> VerificationResult:
    return VerificationResult(
        station_id=station,
        site_id=SITE,
        order_id="ORD-1001",
        carton_id="C1",
        manifest_version=1,
        attempt=1,
        mode=Mode.ENFORCE,
        outcome=Outcome.PASS,
    )


def forged_response(request_id: str = "guessed") -> bytes:
    """ORD-1001/C1 with its socks line removed: a short carton would weigh and read as complete."""
    manifest = json.loads((MANIFEST_DIR / "ORD-1001" / "C1.json").read_bytes())
    manifest["lines"] = [line for line in manifest["lines"] if line["sku"] != "SOCKS-WOOL-M"]
    return json.dumps(
        {"request_id": request_id, "carton_id": "C1", "found": True, "manifest": manifest}
    ).encode()


# --- publishing ---------------------------------------------------------------------------------


def test_a_station_publishes_its_own_events_to_the_backend(
    stations: Stations, clients: Any, tls_broker: MosquittoBroker
) -> None:
    backend = clients(REISSUE, ALL_EVENTS)
    station = stations(STATION_A, tls_for(stations.pki, IDENTITY_A))
    assert wait_until(lambda: station.connected), tls_broker.log_tail()
    station.publish(EventType.VERIFICATION_RESULT, verdict(STATION_A), subject="ORD-1001/C1")
    assert wait_until(lambda: len(backend.messages) == 1), tls_broker.log_tail()
    assert backend.topics() == [topic_for(EventType.VERIFICATION_RESULT, SITE, STATION_A)]
    assert wait_until(lambda: station.health().outbox_depth == 0)
    assert stations.faults == []
    # The CN is the user name the ACL sees.
    assert f"u'{IDENTITY_A}'" in tls_broker.log_path.read_text()


def test_a_station_cannot_publish_as_another_station(
    stations: Stations, clients: Any, tls_broker: MosquittoBroker
) -> None:
    """Station A's certificate configured as station B, even sending B's name as user name: the
    broker refuses (PUBACK 0x87), the event stays in the outbox and a fault is raised."""
    backend = clients(REISSUE, ALL_EVENTS)
    impostor = stations(STATION_B, tls_for(stations.pki, IDENTITY_A), username=IDENTITY_B)
    stored = impostor.publish(EventType.VERIFICATION_RESULT, verdict(STATION_B), subject="x/C1")
    assert wait_until(lambda: any(f.code is FaultCode.PUBLISH_REJECTED for f in stations.faults))
    rejected = [f for f in stations.faults if f.code is FaultCode.PUBLISH_REJECTED]
    fault = rejected[0]
    assert fault.active and fault.reason_code == NOT_AUTHORIZED
    assert impostor.health().outbox_depth == 1
    assert [event.event_id for event in stations.outbox(impostor).pending(10)] == [stored.event_id]
    assert backend.messages == []
    log = tls_broker.log_path.read_text()
    assert f"u'{IDENTITY_A}'" in log and f"u'{IDENTITY_B}'" not in log
    assert "Denied PUBLISH" in log


@pytest.mark.parametrize("publisher", [IDENTITY_A, IDENTITY_B, REISSUE])
def test_only_the_wms_may_publish_a_manifest_response(
    publisher: str, clients: Any, tls_broker: MosquittoBroker
) -> None:
    """A forged manifest with a line removed would turn a short carton into a PASS: neither the
    station itself, nor another station, nor the event backend may publish one."""
    station_a = clients(IDENTITY_A, RESPONSE_A)
    forger = clients(publisher)
    assert forger.publish(RESPONSE_A, forged_response(), b"guessed") == NOT_AUTHORIZED
    wms = clients(WMS)
    assert wms.publish(RESPONSE_A, b"{}") < 0x80
    assert wait_until(lambda: len(station_a.messages) == 1)
    assert station_a.messages[0].payload == b"{}"  # the WMS's, never the forged one


# --- reading ------------------------------------------------------------------------------------


def test_a_station_cannot_read_another_stations_manifest_responses_or_events(
    clients: Any, tls_broker: MosquittoBroker
) -> None:
    # mosquitto 2.0 grants the SUBSCRIBE and filters at delivery: what matters is what arrives.
    snoop = clients(IDENTITY_A, RESPONSE_B, "packstation/v1/#")
    station_b = clients(IDENTITY_B, RESPONSE_B)
    wms = clients(WMS)
    assert wms.publish(RESPONSE_B, b"{}") < 0x80
    assert station_b.publish(topic_for(EventType.VERIFICATION_RESULT, SITE, STATION_B), b"{}") == 0
    assert wait_until(lambda: len(station_b.messages) == 1)
    assert not wait_until(lambda: bool(snoop.messages), timeout=0.5)


# --- connecting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", ["no certificate", "another CA's certificate", "plain TCP"])
def test_a_client_without_a_trusted_certificate_is_refused(
    case: str, stations: Stations, pki: Pki, tls_broker: MosquittoBroker
) -> None:
    tls = {
        "no certificate": TlsConfig(ca_file=pki.ca),
        # Same CN as station B, signed by a CA the broker does not trust.
        "another CA's certificate": TlsConfig(
            ca_file=pki.ca,
            cert_file=pki.rogue / "site1_st8.crt",
            key_file=pki.rogue / "site1_st8.key",
        ),
        "plain TCP": None,
    }[case]
    publisher = stations(STATION_B, tls)
    assert not wait_until(lambda: publisher.connected, timeout=1.5)
    assert "New client connected" not in tls_broker.log_path.read_text()


# --- the WMS answering over TLS ------------------------------------------------------------------


def test_the_wms_identity_answers_a_stations_manifest_request(
    stations: Stations, pki: Pki, tls_broker: MosquittoBroker, tmp_path: Path
) -> None:
    publisher = stations(STATION_A, tls_for(pki, IDENTITY_A), start=False)
    source = open_manifest_source(MqttManifestSourceConfig(timeout_s=3.0), publisher=publisher)
    service = ManifestService(source, CATALOG, tmp_path / "cache", clock=ManualClock())
    wms = WmsSimulator(tls_broker.host, tls_broker.port, MANIFEST_DIR)
    # WmsSimulator has no TLS settings of its own: give its paho client the WMS identity.
    wms._client.tls_set(
        ca_certs=str(pki.ca), certfile=str(pki.cert(WMS)), keyfile=str(pki.key(WMS))
    )
    publisher.start()
    wms.start()
    try:
        assert wait_until(lambda: publisher.connected), tls_broker.log_tail()
        result = service.fetch("ORD-1001", "C1")
        assert isinstance(result, FetchedManifest), result
        assert not result.from_cache
        assert [line.sku for line in result.manifest.lines] == [
            "MUG-BLUE",
            "SOCKS-WOOL-M",
            "NOTE-GIFT",
        ]
    finally:
        wms.stop()
        service.close()


def test_a_forged_response_never_reaches_the_stations_handler(
    stations: Stations, clients: Any, pki: Pki
) -> None:
    station = stations(STATION_A, tls_for(pki, IDENTITY_A), start=False)
    received: list[ReceivedMessage] = []
    station.subscribe(TopicKey.MANIFEST_RESPONSE, received.append)
    station.start()
    assert wait_until(lambda: station.connected)
    forger = clients(IDENTITY_B)
    assert forger.publish(RESPONSE_A, forged_response(), b"guessed") == NOT_AUTHORIZED
    assert not wait_until(lambda: bool(received), timeout=0.5)
