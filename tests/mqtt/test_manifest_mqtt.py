"""The MQTT manifest source: request/response over the station's one connection (the publisher),
against a real mosquitto and the WMS simulator. No mocks."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from simulators.broker import MosquittoBroker
from simulators.wms import WmsSimulator
from station.catalog_file import load_catalog
from station.clock import ManualClock
from station.events import ManifestRequest, ManifestResponse, TopicKey, topic_for
from station.manifests import (
    FetchedManifest,
    ManifestRefusal,
    ManifestService,
    MqttManifestSource,
    MqttManifestSourceConfig,
    RefusalCode,
    open_manifest_source,
)
from station.mqtt import EventPublisher
from tests.mqtt.conftest import PublisherFactory, RawSubscriber, wait_until
from tests.mqtt.factories import SITE, STATION

REPO = Path(__file__).resolve().parents[2]
MANIFEST_DIR = REPO / "config" / "manifests"
CATALOG = load_catalog(REPO / "config" / "catalog.example.json")
ORDER_1001 = json.loads((MANIFEST_DIR / "ORD-1001" / "C1.json").read_bytes())
ORDER_1002 = json.loads((MANIFEST_DIR / "ORD-1002" / "C1.json").read_bytes())
RESPONSE_TOPIC = topic_for(TopicKey.MANIFEST_RESPONSE, SITE, STATION)
REQUEST_TOPIC = topic_for(TopicKey.MANIFEST_REQUEST, SITE, STATION)


class Station:
    """A publisher, the MQTT manifest source on it, and the service the daemon would build."""

    def __init__(self, publisher: EventPublisher, cache_dir: Path, timeout_s: float) -> None:
        self.publisher = publisher
        self.source = open_manifest_source(
            MqttManifestSourceConfig(timeout_s=timeout_s), publisher=publisher
        )
        assert isinstance(self.source, MqttManifestSource)
        self.service = ManifestService(self.source, CATALOG, cache_dir, clock=ManualClock())

    def timed_fetch(self, order_id: str, carton_id: str = "C1") -> tuple[Any, float]:
        started = time.monotonic()
        result = self.service.fetch(order_id, carton_id)
        return result, time.monotonic() - started


StationFactory = Callable[..., Station]


@pytest.fixture
def make_station(make_publisher: PublisherFactory, tmp_path: Path) -> Iterator[StationFactory]:
    built: list[Station] = []

    def build(protocol: str = "5", timeout_s: float = 1.0) -> Station:
        # Subscribed before the start, as in the daemon: the first connect subscribes.
        publisher = make_publisher(start=False, protocol=protocol)
        station = Station(publisher, tmp_path / f"cache-{len(built)}", timeout_s)
        publisher.start()
        assert wait_until(lambda: publisher.connected)
        built.append(station)
        return station

    yield build
    for station in built:
        station.service.close()


def start_wms(broker: MosquittoBroker, **options: Any) -> WmsSimulator:
    wms = WmsSimulator(broker.host, broker.port, MANIFEST_DIR, **options)
    wms.start()
    return wms


@pytest.fixture
def wms(mosquitto: MosquittoBroker) -> Iterator[WmsSimulator]:
    simulator = start_wms(mosquitto)
    yield simulator
    simulator.stop()


def publish_raw(
    broker: MosquittoBroker, payload: bytes, correlation: bytes | None, protocol: int
) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=protocol)
    client.connect(broker.host, broker.port)
    client.loop_start()
    properties = None
    if protocol == paho.MQTTv5 and correlation is not None:
        properties = Properties(PacketTypes.PUBLISH)
        properties.CorrelationData = correlation
    client.publish(RESPONSE_TOPIC, payload, qos=1, properties=properties).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


# --- the happy paths --------------------------------------------------------------------------


def test_fetch_over_mqtt5_uses_the_table_topics_and_the_one_connection(
    make_station: StationFactory, wms: WmsSimulator, mosquitto: MosquittoBroker
) -> None:
    requests_seen = RawSubscriber(mosquitto, REQUEST_TOPIC)
    station = make_station()
    try:
        result, _ = station.timed_fetch("ORD-1001")
        assert isinstance(result, FetchedManifest) and not result.from_cache
        assert result.manifest.order_id == "ORD-1001"
        again, _ = station.timed_fetch("ORD-1002", "C2")  # a second request correlates too
        assert isinstance(again, FetchedManifest) and again.manifest.carton_id == "C2"

        request = wms.requests[0]
        assert (request.order_id, request.carton_id, request.station_id) == (
            "ORD-1001",
            "C1",
            STATION,
        )
        assert wait_until(lambda: len(requests_seen.messages) == 2)
        sent = requests_seen.messages[0]
        assert sent.properties.ResponseTopic == RESPONSE_TOPIC
        assert sent.properties.CorrelationData == request.request_id.encode()
        assert sent.properties.MessageExpiryInterval == 1
        # Requests are not events: nothing went through the outbox, no second client connected.
        assert station.publisher.health().outbox_depth == 0
        log = mosquitto.log_path.read_text()
        assert "New client connected from 127.0.0.1:" in log
        assert "-manifests" not in log
    finally:
        requests_seen.close()


@pytest.mark.parametrize("wms_protocol", ["5", "3.1.1"])
def test_fetch_over_mqtt311_answers_on_the_fixed_topic_and_correlates_by_request_id(
    make_station: StationFactory, mosquitto: MosquittoBroker, wms_protocol: str
) -> None:
    wms = start_wms(mosquitto, protocol=wms_protocol)
    try:
        station = make_station(protocol="3.1.1")
        result, _ = station.timed_fetch("ORD-1001")
        assert isinstance(result, FetchedManifest) and result.manifest.order_id == "ORD-1001"
        missing, _ = station.timed_fetch("ORD-404")
        assert isinstance(missing, ManifestRefusal) and missing.code is RefusalCode.NOT_FOUND
    finally:
        wms.stop()


def test_not_found_is_refused_as_not_found(make_station: StationFactory, wms: WmsSimulator) -> None:
    result, elapsed = make_station().timed_fetch("ORD-404")
    assert isinstance(result, ManifestRefusal) and result.code is RefusalCode.NOT_FOUND
    assert result.message.startswith("Order not found")
    assert elapsed < 0.5


# --- outages: timeout, WMS error, broker down -------------------------------------------------


def test_silent_wms_is_unavailable_after_the_timeout_and_the_cache_serves(
    make_station: StationFactory, wms: WmsSimulator
) -> None:
    station = make_station(timeout_s=0.5)
    first, _ = station.timed_fetch("ORD-1001")
    assert isinstance(first, FetchedManifest) and not first.from_cache

    wms.silent = True
    cached, elapsed = station.timed_fetch("ORD-1001")
    assert isinstance(cached, FetchedManifest) and cached.from_cache
    assert 0.45 < elapsed < 1.5

    never_fetched, _ = station.timed_fetch("ORD-1002")
    assert isinstance(never_fetched, ManifestRefusal)
    assert never_fetched.code is RefusalCode.UNAVAILABLE
    assert "did not answer" in never_fetched.message


def test_a_late_answer_is_dropped_and_the_next_request_is_not_confused(
    make_station: StationFactory, wms: WmsSimulator
) -> None:
    station = make_station(timeout_s=0.3)
    wms.delay_s = 0.6
    late, _ = station.timed_fetch("ORD-1002")
    assert isinstance(late, ManifestRefusal) and late.code is RefusalCode.UNAVAILABLE
    wms.delay_s = 0.0
    time.sleep(0.5)  # the late ORD-1002 answer arrives while nobody waits
    result, _ = station.timed_fetch("ORD-1001")
    assert isinstance(result, FetchedManifest) and result.manifest.order_id == "ORD-1001"


def test_wms_error_answer_is_an_outage_the_cache_covers(
    make_station: StationFactory, wms: WmsSimulator
) -> None:
    station = make_station()
    assert isinstance(station.timed_fetch("ORD-1001")[0], FetchedManifest)

    def database_down(request: ManifestRequest) -> ManifestResponse:
        return ManifestResponse(
            request_id=request.request_id,
            carton_id=request.carton_id,
            found=False,
            error="order database down",
        )

    wms.answer = database_down
    cached, elapsed = station.timed_fetch("ORD-1001")
    assert isinstance(cached, FetchedManifest) and cached.from_cache and elapsed < 0.5
    refused, _ = station.timed_fetch("ORD-1002")
    assert isinstance(refused, ManifestRefusal) and refused.code is RefusalCode.UNAVAILABLE
    assert "order database down" in refused.message


def test_broker_down_fails_at_once_and_the_cache_serves(
    make_station: StationFactory, wms: WmsSimulator, mosquitto: MosquittoBroker
) -> None:
    station = make_station(timeout_s=5.0)
    assert isinstance(station.timed_fetch("ORD-1001")[0], FetchedManifest)

    wms.stop()
    mosquitto.stop()
    assert wait_until(lambda: not station.publisher.connected)
    cached, elapsed = station.timed_fetch("ORD-1001")
    assert isinstance(cached, FetchedManifest) and cached.from_cache
    assert elapsed < 0.5  # not the 5 s timeout
    refused, elapsed = station.timed_fetch("ORD-1002")
    assert isinstance(refused, ManifestRefusal) and refused.code is RefusalCode.UNAVAILABLE
    assert "broker cannot be reached" in refused.message and elapsed < 0.5


def test_a_station_that_never_connected_fails_at_once(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    mosquitto.stop()
    publisher = make_publisher(start=False)
    station = Station(publisher, tmp_path / "cache", timeout_s=5.0)
    publisher.start()
    result, elapsed = station.timed_fetch("ORD-1001")
    assert isinstance(result, ManifestRefusal) and result.code is RefusalCode.UNAVAILABLE
    assert elapsed < 0.5


# --- correlation --------------------------------------------------------------------------------


@pytest.mark.parametrize("injected_protocol", [paho.MQTTv5, paho.MQTTv311])
def test_an_answer_to_another_request_is_ignored(
    make_station: StationFactory,
    wms: WmsSimulator,
    mosquitto: MosquittoBroker,
    injected_protocol: int,
) -> None:
    station = make_station(timeout_s=3.0)
    wms.delay_s = 0.5
    outcome: list[Any] = []
    fetching = threading.Thread(target=lambda: outcome.append(station.timed_fetch("ORD-1001")))
    fetching.start()
    assert wait_until(lambda: bool(wms.requests))
    # Another station's answer on our topic (a misrouting WMS): same carton, another order.
    stray = ManifestResponse(
        request_id="another-station-request", carton_id="C1", found=True, manifest=ORDER_1002
    )
    publish_raw(
        mosquitto, stray.model_dump_json().encode(), b"another-station-request", injected_protocol
    )
    fetching.join(5)
    result, _ = outcome[0]
    assert isinstance(result, FetchedManifest) and result.manifest.order_id == "ORD-1001"


def test_an_invalid_answer_without_correlation_data_refuses_by_its_request_id(
    make_station: StationFactory, wms: WmsSimulator
) -> None:
    station = make_station(protocol="3.1.1", timeout_s=3.0)
    wms.answer = lambda request: json.dumps({"request_id": request.request_id}).encode()
    result, elapsed = station.timed_fetch("ORD-1001")
    assert isinstance(result, ManifestRefusal) and result.code is RefusalCode.SOURCE_ERROR
    assert "invalid answer" in result.message and elapsed < 1.0


def test_an_answer_for_another_carton_is_refused(
    make_station: StationFactory, wms: WmsSimulator
) -> None:
    station = make_station()
    wms.answer = lambda request: ManifestResponse(
        request_id=request.request_id, carton_id="C2", found=True, manifest=ORDER_1001
    )
    result, _ = station.timed_fetch("ORD-1001")
    assert isinstance(result, ManifestRefusal) and result.code is RefusalCode.SOURCE_ERROR


# --- fuzzing the answer -------------------------------------------------------------------------

ECHO = object()  # replaced by the request's id when the answer is built

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=15,
)


@st.composite
def mutated_manifest(draw: st.DrawFn) -> dict[str, Any]:
    document = dict(ORDER_1001)
    key = draw(st.sampled_from([*document, "extra"]))
    if draw(st.booleans()):
        document[key] = draw(json_values)
    else:
        document.pop(key, None)
    return document


response_like = st.fixed_dictionaries(
    {},
    optional={
        "request_id": st.just(ECHO) | st.text(max_size=10) | json_values,
        "carton_id": st.just("C1") | st.text(max_size=10) | json_values,
        "found": st.booleans() | json_values,
        "manifest": st.none() | st.just(ORDER_1001) | mutated_manifest() | json_values,
        "error": st.none() | st.text(max_size=600) | json_values,
        "extra": json_values,
    },
)

answers = (
    st.binary(max_size=200)
    | json_values.map(lambda value: json.dumps(value).encode())
    | response_like
)


def build_answer(template: bytes | dict[str, Any], request: ManifestRequest) -> bytes:
    if isinstance(template, bytes):
        return template
    document = {
        key: request.request_id if value is ECHO else value for key, value in template.items()
    }
    return json.dumps(document).encode()


@pytest.fixture
def fuzz_station(make_station: StationFactory, wms: WmsSimulator) -> tuple[Station, WmsSimulator]:
    return make_station(timeout_s=2.0), wms


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(template=answers)
def test_any_answer_is_a_result_never_an_exception_or_a_hang(
    fuzz_station: tuple[Station, WmsSimulator], template: bytes | dict[str, Any]
) -> None:
    station, wms = fuzz_station
    wms.answer = lambda request: build_answer(template, request)
    result, elapsed = station.timed_fetch("ORD-1001")  # must not raise
    assert isinstance(result, FetchedManifest | ManifestRefusal)
    # MQTT 5 echoes the correlation data, so even garbage is matched and answered at once.
    assert elapsed < 1.5
    if isinstance(template, bytes) or not isinstance(template.get("found"), bool):
        assert isinstance(result, ManifestRefusal) or result.from_cache


# --- wiring -------------------------------------------------------------------------------------


def test_an_mqtt_source_needs_the_publisher() -> None:
    with pytest.raises(ValueError, match="publisher"):
        open_manifest_source(MqttManifestSourceConfig())


def test_mqtt_source_config_keeps_only_the_timeout() -> None:
    assert set(MqttManifestSourceConfig.model_fields) == {"type", "timeout_s"}
    assert all(field.description for field in MqttManifestSourceConfig.model_fields.values())
    with pytest.raises(ValueError, match="Extra inputs"):
        MqttManifestSourceConfig.model_validate({"request_topic": "wms/manifests/request"})


def test_simulate_wms_command_answers_from_a_directory(mosquitto: MosquittoBroker) -> None:
    address = ["--host", mosquitto.host, "--port", str(mosquitto.port)]
    process = subprocess.Popen(
        [sys.executable, "-m", "station.cli", "simulate", "wms", *address, "--dir", MANIFEST_DIR],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert "WMS simulator answering" in process.stdout.readline()
        responses = RawSubscriber(mosquitto, RESPONSE_TOPIC)
        try:
            time.sleep(0.2)
            request = ManifestRequest(
                request_id="r-1", order_id="ORD-1001", carton_id="C1", station_id=STATION
            )
            client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
            client.connect(mosquitto.host, mosquitto.port)
            client.loop_start()
            client.publish(REQUEST_TOPIC, request.model_dump_json(), qos=1).wait_for_publish(5)
            client.disconnect()
            client.loop_stop()
            assert wait_until(lambda: bool(responses.messages), 5)
            answer = ManifestResponse.model_validate_json(responses.messages[0].payload)
            assert answer.request_id == "r-1" and answer.found
            assert answer.manifest == ORDER_1001
        finally:
            responses.close()
    finally:
        process.terminate()
        process.wait(5)


def test_the_daemon_asks_over_its_publisher_connection(
    mosquitto: MosquittoBroker, wms: WmsSimulator, tmp_path: Path
) -> None:
    from simulators.rig import SimulatedStation
    from station.demo import _RunningDaemon

    with SimulatedStation(tmp_path / "rig", mosquitto.host, mosquitto.port) as rig:
        directory_source = f'type = "directory"\npath = "{rig.manifest_dir}"'
        config = rig.config_toml()
        assert directory_source in config
        rig.config_path.write_text(config.replace(directory_source, 'type = "mqtt"\ntimeout_s = 2'))
        with _RunningDaemon(rig.config_path) as running:
            daemon = running.daemon
            assert wait_until(lambda: daemon.publisher.connected)
            result = daemon.manifests.fetch("ORD-1001", "C1")
            assert isinstance(result, FetchedManifest) and not result.from_cache
            assert wms.requests[-1].station_id == rig.station_id
            assert mosquitto.log_path.read_text().count("New client connected") == 2  # + the WMS
