"""Subscribe-side topics from the table: typed dispatch, renewed after reconnect."""

from __future__ import annotations

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.broker import MosquittoBroker
from station.events import ManifestResponse, TopicKey, topic_for
from station.mqtt import ReceivedMessage
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
    return broker.log_path.read_text().count(f"Received SUBSCRIBE from packstation-{STATION}")


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
