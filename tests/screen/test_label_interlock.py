"""The label interlock and the outputs on a whole running station (real mosquitto, simulated scale
and scanner on ptys, real Modbus TCP server): the shipping software's MQTT request/response, the
audited reprint, the label scan and the final weight, and a failing diverter that keeps a complete
carton from passing."""

from __future__ import annotations

import json
import queue
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.broker import MosquittoBroker
from simulators.modbus_sim import ModbusCoilServer
from station.evidence import EvidenceStore
from station.session import SessionState

from .conftest import PACKER, TOKEN, RunningStation, run_station

ORDER, CARTON = "ORD-1001", "C1"
LABEL = "1Z999AA10123456784"
PREFIX = "packstation/v1/dc-sim/pack-01"


class ShippingSoftware:
    """An MQTT 5 client that asks the station for label permission and hears its faults."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.answers: queue.Queue[tuple[dict[str, Any], bytes | None]] = queue.Queue()
        self.faults: queue.Queue[dict[str, Any]] = queue.Queue()
        self._client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"shipping-{uuid.uuid4().hex[:6]}",
            protocol=paho.MQTTv5,
        )
        subscribed = queue.Queue[bool]()
        self._client.on_connect = lambda client, *_: client.subscribe(
            [(f"{PREFIX}/label/permission/response", 1), (f"{PREFIX}/events/fault", 1)]
        )
        self._client.on_subscribe = lambda *_: subscribed.put(True)
        self._client.on_message = self._on_message
        self._client.connect(broker.host, broker.port)
        self._client.loop_start()
        subscribed.get(timeout=10)

    def _on_message(self, client: Any, userdata: Any, message: paho.MQTTMessage) -> None:
        body = json.loads(message.payload)
        if message.topic.endswith("/events/fault"):
            self.faults.put(body["data"])
        else:
            self.answers.put((body, getattr(message.properties, "CorrelationData", None)))

    def ask(
        self, purpose: str = "print", label: str | None = None
    ) -> tuple[dict[str, Any], bytes | None]:
        request_id = uuid.uuid4().hex
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = request_id.encode()
        request = {
            "request_id": request_id,
            "order_id": ORDER,
            "carton_id": CARTON,
            "purpose": purpose,
            "requested_by": "printer-3",
            "label": label,
        }
        self._client.publish(
            f"{PREFIX}/label/permission/request", json.dumps(request), qos=1, properties=properties
        )
        answer, correlation = self.answers.get(timeout=10)
        assert answer["request_id"] == request_id
        return answer, correlation

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@pytest.fixture
def shipping(broker: MosquittoBroker) -> Iterator[ShippingSoftware]:
    client = ShippingSoftware(broker)
    yield client
    client.close()


def pass_a_carton(station: RunningStation) -> None:
    """Pack ORDER whole and wait until its PASS shows: green, diverter straight, confirmed."""
    station.rig.pack(PACKER, ORDER, CARTON, "BOX-S")
    station.wait_for(lambda: station.daemon.session.awaiting_label == (ORDER, CARTON))
    actuators = station.daemon.actuators
    station.wait_for(lambda: actuators.outputs.route == "straight" and actuators.settled)


def device_states(station: RunningStation) -> set[tuple[str, str]]:
    return {(d["name"], d["state"]) for d in station.call("GET", "/api/status")[1]["devices"]}


def audits(station: RunningStation, kind: str) -> list[dict[str, Any]]:
    return station.daemon.evidence.audits(ORDER, CARTON, kind)


def test_the_shipping_software_asks_over_mqtt_and_every_reprint_is_audited(
    station: RunningStation, shipping: ShippingSoftware
) -> None:
    answer, correlation = shipping.ask()
    assert (answer["allowed"], answer["reason"]) == (False, "not_verified")
    assert correlation == answer["request_id"].encode()
    assert audits(station, "label.permission") == []  # a refused first print is no news

    pass_a_carton(station)
    answer, _ = shipping.ask()
    assert (answer["allowed"], answer["reason"], answer["earlier_grants"]) == (True, "passed", 0)
    answer, _ = shipping.ask("reprint")
    assert answer["allowed"] and answer["earlier_grants"] == 1
    code, body = station.call(
        "GET",
        f"/api/label-permission?order_id={ORDER}&carton_id={CARTON}&purpose=reprint",
        token=TOKEN,
    )
    assert code == 200 and body["allowed"] and body["earlier_grants"] == 2
    trail = [
        (a["purpose"], a["via"], a["requested_by"]) for a in audits(station, "label.permission")
    ]
    assert trail == [
        ("print", "mqtt", "printer-3"),
        ("reprint", "mqtt", "printer-3"),
        ("reprint", "api", None),
    ]
    code, body = station.call(
        "GET",
        f"/api/label-permission?order_id={ORDER}&carton_id={CARTON}&purpose=again",
        token=TOKEN,
    )
    assert code == 400 and "purpose" in body["message"]


def test_a_unit_taken_out_after_the_label_withdraws_the_pass_and_the_permission(
    station: RunningStation, shipping: ShippingSoftware
) -> None:
    pass_a_carton(station)
    assert shipping.ask()[0]["allowed"]
    station.rig.place(-station.rig.unit_weight("MUG-BLUE"))  # taken out again
    station.rig.scan(LABEL)
    station.wait_for(lambda: bool(audits(station, "carton.pass_withdrawn")))
    assert station.state() is SessionState.BLOCKED

    answer, _ = shipping.ask("reprint")
    assert (answer["allowed"], answer["reason"], answer["outcome"]) == (False, "held", "REVIEW")
    [labelled] = audits(station, "carton.labelled")
    assert labelled["label"] == LABEL
    [withdrawn] = audits(station, "carton.pass_withdrawn")
    assert withdrawn["code"] == "final_weight_low"
    outputs = station.daemon.actuators.outputs
    assert (outputs.light.value, outputs.route) == ("red", "exception")


def test_a_whole_labelled_carton_is_sealed_and_keeps_its_permission(
    station: RunningStation, shipping: ShippingSoftware
) -> None:
    pass_a_carton(station)
    station.rig.place(8.0)  # the label and its pouch
    station.rig.scan(LABEL)
    station.wait_for(lambda: bool(audits(station, "carton.sealed")))
    [sealed] = audits(station, "carton.sealed")
    assert sealed["label"] == LABEL and sealed["final_g"] >= sealed["verdict_g"]
    assert shipping.ask()[0]["allowed"]
    code, evidence = station.call(
        "GET", f"/api/evidence?order_id={ORDER}&carton_id={CARTON}", token=TOKEN
    )
    assert code == 200
    trail = [entry["kind"] for entry in evidence["labels"]]
    assert trail == ["carton.labelled", "carton.sealed", "label.permission"]
    assert station.state() is SessionState.IDLE


UNIT = 5


def test_a_label_printed_for_another_carton_is_caught_at_the_label_scan(
    station: RunningStation, shipping: ShippingSoftware
) -> None:
    pass_a_carton(station)
    assert shipping.ask(label=LABEL)[0]["allowed"]
    [granted] = audits(station, "label.permission")
    assert granted["label"] == LABEL
    station.rig.scan("1Z999AA10123456792")  # the next carton's label, stuck on this one
    station.wait_for(lambda: bool(audits(station, "carton.pass_withdrawn")))
    assert station.state() is SessionState.BLOCKED
    [withdrawn] = audits(station, "carton.pass_withdrawn")
    assert withdrawn["code"] == "label_mismatch"
    assert shipping.ask("reprint")[0]["reason"] == "held"


def test_a_grant_the_evidence_store_cannot_record_is_refused_out_loud(
    station: RunningStation, shipping: ShippingSoftware, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A full disk while the shipping software asks: the grant could not be audited, so it is
    not given, and the answer says why instead of never coming; once space is freed, the next
    ask is granted."""
    pass_a_carton(station)
    record_audit = EvidenceStore.record_audit
    full = threading.Event()
    full.set()

    def on_a_full_disk(self: EvidenceStore, *args: Any) -> Any:
        if full.is_set():
            raise sqlite3.OperationalError("database or disk is full")
        return record_audit(self, *args)

    monkeypatch.setattr(EvidenceStore, "record_audit", on_a_full_disk)
    answer, _ = shipping.ask(label=LABEL)
    assert (answer["allowed"], answer["reason"]) == (False, "evidence_unavailable")
    code, body = station.call(
        "GET", f"/api/label-permission?order_id={ORDER}&carton_id={CARTON}", token=TOKEN
    )
    assert code == 200 and body["reason"] == "evidence_unavailable" and not body["allowed"]

    full.clear()
    answer, _ = shipping.ask(label=LABEL)
    assert (answer["allowed"], answer["reason"], answer["earlier_grants"]) == (True, "passed", 0)
    assert [a["label"] for a in audits(station, "label.permission")] == [LABEL]


@pytest.fixture
def modbus_tcp() -> Iterator[ModbusCoilServer]:
    with ModbusCoilServer.tcp(UNIT) as server:
        yield server


@pytest.fixture
def modbus_station(
    tmp_path: Path, broker: MosquittoBroker, modbus_tcp: ModbusCoilServer
) -> Iterator[tuple[RunningStation, ModbusCoilServer]]:
    actuators = f"""
[[actuators]]
type = "modbus_tcp"
name = "plc"
host = "127.0.0.1"
tcp_port = {modbus_tcp.port}
unit_id = {UNIT}
timeout_s = 0.3
refresh_s = 0.2
reconnect_min_s = 0.1
reconnect_max_s = 0.5
outputs = {{ green = 0, amber = 1, red = 2, buzzer = 3, diverter = 4 }}
"""
    for running in run_station(tmp_path / "station", broker, extra=actuators):
        yield running, modbus_tcp


def test_a_diverter_that_cannot_be_set_keeps_a_complete_carton_from_passing(
    modbus_station: tuple[RunningStation, ModbusCoilServer], shipping: ShippingSoftware
) -> None:
    station, plc = modbus_station
    plc.stop()  # the PLC loses power
    station.wait_for(lambda: ("actuator plc", "down") in device_states(station))
    fault = shipping.faults.get(timeout=10)
    assert fault["component"] == "actuator plc" and fault["state"] == "raised"
    assert f"127.0.0.1:{plc.port}" in fault["message"]

    station.rig.pack(PACKER, ORDER, CARTON, "BOX-S")  # everything is in it
    station.wait_for(lambda: bool(station.daemon.evidence.attempts(ORDER, CARTON)))
    assert station.state() is SessionState.BLOCKED
    [attempt] = station.daemon.evidence.attempts(ORDER, CARTON)
    assert attempt["verdict"]["outcome"] == "REVIEW"
    assert attempt["verdict"]["reasons"][0]["code"] == "output_fault"
    assert not shipping.ask()[0]["allowed"]
    code, ready = station.call("GET", "/api/health/ready")
    assert code == 503 and any("actuator plc" in p for p in ready["problems"])

    plc.start()  # power back: the outputs are written again and the carton can be re-closed
    station.wait_for(lambda: station.daemon.actuators.settled)
    assert plc.coils(5) == [False, False, True, True, False]  # red, buzzer, exception lane


def test_a_passed_carton_that_left_unsealed_needs_a_reviewer_and_reopened_counts_on(
    station: RunningStation, shipping: ShippingSoftware
) -> None:
    """The packer scans the next order instead of the label: no final weight was taken, so no
    label for it without a reviewer. Opened again, it is 'reopened' (being repacked) and its
    next close is attempt 2, after the evidence store's attempt 1."""
    pass_a_carton(station)
    station.rig.scan("ORD-1002/C1")  # moved on without the label scan
    station.wait_for(lambda: bool(audits(station, "carton.unsealed")))
    answer, _ = shipping.ask()
    assert (answer["allowed"], answer["reason"]) == (False, "left_unsealed")
    station.rig.scan(f"{ORDER}/{CARTON}")  # opened again (ORD-1002 was never closed)
    station.wait_for(lambda: station.daemon.session.open_carton == (ORDER, CARTON))
    assert shipping.ask()[0]["reason"] == "reopened"
    station.rig.scan("BOX-S")
    station.rig.scan("CLOSE")
    station.wait_for(lambda: len(station.daemon.evidence.attempts(ORDER, CARTON)) == 2)
    assert [a["attempt"] for a in station.daemon.evidence.attempts(ORDER, CARTON)] == [1, 2]
