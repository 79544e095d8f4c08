"""The site-wide EPC ledger over MQTT, end to end: station B is `packstation run` on the rig
(pack-01), station A and the WMS are a raw MQTT client on the same mosquitto. A tag shipped at A
sends B's carton to REVIEW (never BLOCK) until a WMS return clears it; B publishes the EPCs of
what it ships (durable event) and announces its open carton's; a tag open at A is denied too."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from station.events import (
    CloudEvent,
    EpcsOpen,
    EpcsReturned,
    EpcsShipped,
    EventType,
    TopicKey,
    event_source,
    topic_for,
)
from tests.e2e.conftest import VERIFICATION, Harness, wait_until
from tests.e2e.test_rfid_e2e import EAR, rfid_harness

pytestmark = pytest.mark.e2e

SITE, STATION_A = "dc-sim", "pack-02"
SHIPPED = EventType.RFID_EPCS_SHIPPED.value


class StationA:
    """Another station of the site (and the WMS), as a plain MQTT 5 client."""

    def __init__(self, harness: Harness) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        opened = topic_for(TopicKey.RFID_EPCS_OPEN, SITE, STATION_A)
        self._client.on_connect = lambda client, *_: client.subscribe(opened, qos=1)
        self._client.on_message = lambda _c, _u, m: self.received.append((m.topic, m.payload))
        self._client.connect(harness.broker.host, harness.broker.port)
        self._client.loop_start()
        assert wait_until(self._client.is_connected, timeout=10)

    def send(self, key: TopicKey, payload: bytes) -> None:
        info = self._client.publish(topic_for(key, SITE, STATION_A), payload, qos=1)
        info.wait_for_publish(timeout=10)

    def shipped(self, epc: str) -> None:
        data = EpcsShipped(
            station_id=STATION_A, site_id=SITE, order_id="ORD-A", carton_id="CA", epcs=[epc]
        )
        event = CloudEvent[EpcsShipped](
            id=uuid.uuid4().hex,
            source=event_source(SITE, STATION_A),
            type=EventType.RFID_EPCS_SHIPPED,
            time=datetime.now(UTC),
            subject="CA",
            stationseq=1,
            data=data,
        )
        self.send(TopicKey.RFID_EPCS_SHIPPED, event.to_json())

    def opened(self, epcs: list[str]) -> None:
        message = EpcsOpen(station_id=STATION_A, order_id="ORD-A", carton_id="CA", epcs=epcs)
        self.send(TopicKey.RFID_EPCS_OPEN, message.model_dump_json().encode())

    def returned(self, epc: str) -> None:
        message = EpcsReturned(return_id="RMA-1", epcs=[epc])
        self.send(TopicKey.RFID_RETURNS, message.model_dump_json().encode())

    def announced_by_b(self) -> list[dict]:
        return [json.loads(p) for _t, p in list(self.received)]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


def logged(harness: Harness, msg: str) -> bool:
    return wait_until(
        lambda: any(m.get("msg") == msg for m in harness.daemon.log_messages()), timeout=20
    )


def test_a_tag_shipped_at_another_station_reviews_until_the_wms_returns_it(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(make_harness)
    a = StationA(harness)
    try:
        epc = harness.station.upcoming_tag(EAR)
        assert epc is not None
        a.shipped(epc.hex())  # lower case on the wire: normalised
        assert logged(harness, "site shipped epcs"), harness.daemon.log_tail()

        harness.pack("ORD-1004")
        first = harness.wait_for_event(VERIFICATION, lambda e: e["data"]["attempt"] == 1)
        assert first["data"]["outcome"] == "REVIEW", first["data"]  # a ledger hit: never BLOCK
        assert "rfid_tag_shipped" in {r["code"] for r in first["data"]["reasons"]}

        a.returned(epc.hex().upper())
        assert logged(harness, "returned epcs"), harness.daemon.log_tail()
        harness.station.close()
        second = harness.wait_for_event(
            VERIFICATION, lambda e: e["data"]["attempt"] == 2, timeout=20
        )
        assert second["data"]["outcome"] == "PASS", second["data"]

        # B tells the site what it shipped (through its outbox) ...
        b = harness.station.station_id
        shipped = harness.wait_for_event(SHIPPED, lambda e: e["data"]["station_id"] == b, 20)
        assert shipped["data"]["epcs"] == [epc.hex().upper()]
        assert shipped["source"] == event_source(SITE, b)
        assert shipped["subject"] == "C1"
        # ... and announced the carton's EPCs as open while it was on the platter, then none.
        assert wait_until(
            lambda: [m["epcs"] for m in a.announced_by_b()][-1:] == [[]], timeout=10
        ), a.announced_by_b()
        assert [epc.hex().upper()] in [m["epcs"] for m in a.announced_by_b()]
    finally:
        a.close()


def test_a_tag_open_at_another_station_sends_the_carton_to_review(
    make_harness: Callable[..., Harness],
) -> None:
    harness = rfid_harness(make_harness)
    a = StationA(harness)
    try:
        epc = harness.station.upcoming_tag(EAR)
        assert epc is not None
        a.opened([epc.hex().upper()])
        assert logged(harness, "site open epcs"), harness.daemon.log_tail()
        harness.pack("ORD-1004")
        verdict = harness.wait_for_event(VERIFICATION)
        assert verdict["data"]["outcome"] == "REVIEW", verdict["data"]
        assert "rfid_tag_open_elsewhere" in {r["code"] for r in verdict["data"]["reasons"]}
        assert harness.events(SHIPPED) == []  # nothing shipped
        assert harness.wait_for_attempts("ORD-1004") == [(1, "REVIEW")]
    finally:
        a.close()
