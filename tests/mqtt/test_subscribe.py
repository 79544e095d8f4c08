"""Subscribe-side topics from the table: typed dispatch, renewed after reconnect."""

from __future__ import annotations

import json
from collections.abc import Iterator

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from pydantic import ValidationError

from simulators.broker import MosquittoBroker
from station.events import ManifestResponse, TopicKey, topic_for
from station.mqtt import FaultCode, InvalidMessage, ReceivedMessage, default_client_id
from tests.mqtt.conftest import PublisherFactory, wait_until
from tests.mqtt.factories import SITE, STATION

RESPONSE = ManifestResponse(request_id="r-1", carton_id="C-1", found=True, manifest={"lines": []})


def respond(broker: MosquittoBroker, payload: bytes) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    properties = Properties(PacketTypes.PUBLISH)
    properties.CorrelationData = b"r-1"
    topic = topic_for(TopicKey.MANIFEST_RESPONSE, SITE, STATION)
    client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def subscriptions_made(broker: MosquittoBroker) -> int:
    client_id = default_client_id(SITE, STATION)
    return broker.log_path.read_text().count(f"Received SUBSCRIBE from {client_id}")


def test_manifest_responses_reach_the_handler_typed_and_after_a_broker_restart(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker
) -> None:
    received: list[ReceivedMessage] = []
    publisher = make_publisher()
    publisher.subscribe(TopicKey.MANIFEST_RESPONSE, received.append)
    assert wait_until(lambda: subscriptions_made(mosquitto) == 1)

    respond(mosquitto, b"garbage")  # invalid payloads are dropped, not dispatched
    respond(mosquitto, RESPONSE.model_dump_json().encode())
    assert wait_until(lambda: len(received) == 1)
    assert received[0].payload == RESPONSE and received[0].correlation_data == b"r-1"

    (mosquitto.workdir / "persistence" / "mosquitto.db").unlink(missing_ok=True)
    mosquitto.restart()  # a broker without our session: the subscription must be made again
    assert wait_until(lambda: subscriptions_made(mosquitto) == 2), mosquitto.log_tail()
    respond(mosquitto, RESPONSE.model_dump_json().encode())
    assert wait_until(lambda: len(received) == 2)


def test_publish_side_topics_cannot_be_subscribed(make_publisher: PublisherFactory) -> None:
    with pytest.raises(ValueError, match="publish-side"):
        make_publisher(start=False).subscribe(TopicKey.AVAILABILITY, print)


class Responder:
    """One long-lived client answering on the station's manifest/response topic, in order."""

    def __init__(self, broker: MosquittoBroker) -> None:
        self.client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        self.topic = topic_for(TopicKey.MANIFEST_RESPONSE, SITE, STATION)

    def send(self, payload: bytes) -> None:
        self.client.publish(self.topic, payload, qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


SENTINEL = ManifestResponse(request_id="sentinel", carton_id="C-0", found=False)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
valid_answers = st.builds(
    lambda request_id, found: (
        ManifestResponse(
            request_id=request_id,
            carton_id="C-1",
            found=found,
            manifest={"lines": []} if found else None,
        )
        .model_dump_json()
        .encode()
    ),
    st.text(min_size=1, max_size=12),
    st.booleans(),
)
answers = (
    valid_answers
    | st.binary(max_size=120)
    | json_values.map(lambda value: json.dumps(value).encode())
    | st.builds(
        lambda field, value: json.dumps({**RESPONSE.model_dump(), field: value}).encode(),
        st.sampled_from([*ManifestResponse.model_fields, "unexpected"]),
        json_values,
    )
)


@pytest.fixture
def responder(mosquitto: MosquittoBroker) -> Iterator[Responder]:
    running = Responder(mosquitto)
    yield running
    running.close()


@pytest.fixture
def received(make_publisher: PublisherFactory, mosquitto: MosquittoBroker) -> list[ReceivedMessage]:
    """What the station's manifest/response handler was given."""
    messages: list[ReceivedMessage] = []
    make_publisher().subscribe(TopicKey.MANIFEST_RESPONSE, messages.append)
    assert wait_until(lambda: subscriptions_made(mosquitto) == 1)
    return messages


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=answers)
def test_an_invalid_inbound_message_is_one_fault_and_reaches_no_handler(
    make_publisher: PublisherFactory,
    received: list[ReceivedMessage],
    responder: Responder,
    payload: bytes,
) -> None:
    """Through the broker into the real parse path: only valid answers reach the handler; an
    invalid one raises MQTT_INVALID_MESSAGE (naming the topic), cleared by the next valid one."""
    received.clear()
    make_publisher.faults.clear()
    responder.send(payload)
    responder.send(SENTINEL.model_dump_json().encode())
    assert wait_until(lambda: bool(received) and received[-1].payload == SENTINEL)

    try:
        valid: ManifestResponse | None = ManifestResponse.model_validate_json(payload)
    except ValidationError:
        valid = None
    faults = [(f.code, f.active) for f in make_publisher.faults]
    if valid is None:
        assert [r.payload for r in received] == [SENTINEL]
        assert faults == [(FaultCode.INVALID_MESSAGE, True), (FaultCode.INVALID_MESSAGE, False)]
        assert responder.topic in make_publisher.faults[0].message
    else:
        assert [r.payload for r in received] == [valid, SENTINEL]
        assert faults == []


def test_an_oversize_inbound_message_is_dropped_unread_and_is_a_fault(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker, responder: Responder
) -> None:
    received: list[ReceivedMessage] = []
    invalid: list[InvalidMessage] = []
    publisher = make_publisher(max_inbound_bytes=1_000)
    publisher.subscribe(TopicKey.MANIFEST_RESPONSE, received.append, invalid.append)
    assert wait_until(lambda: subscriptions_made(mosquitto) == 1)
    # Valid in every other way: only its size is wrong.
    big = RESPONSE.model_copy(update={"manifest": {"lines": [], "note": "x" * 2_000}})
    responder.send(big.model_dump_json().encode())
    responder.send(SENTINEL.model_dump_json().encode())
    assert wait_until(lambda: bool(received) and received[-1].payload == SENTINEL)

    assert [r.payload for r in received] == [SENTINEL]
    (dropped,) = invalid
    assert dropped.raw == b"" and "over the 1000-byte limit" in dropped.error
    faults = [(f.code, f.active) for f in make_publisher.faults]
    assert faults == [(FaultCode.INVALID_MESSAGE, True), (FaultCode.INVALID_MESSAGE, False)]
