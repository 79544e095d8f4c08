"""Retained availability: online after connect, offline on clean stop and by last will."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from simulators.broker import MosquittoBroker
from station.events import Availability, AvailabilityState, TopicKey, topic_for
from station.mqtt import EventPublisher
from station.outbox import Outbox
from tests.mqtt.conftest import PublisherFactory, fast_config, retained_payload, wait_until
from tests.mqtt.factories import SITE, STATION

AVAILABILITY = topic_for(TopicKey.AVAILABILITY, SITE, STATION)


def availability(broker: MosquittoBroker) -> Availability | None:
    payload = retained_payload(broker, AVAILABILITY)
    return Availability.model_validate_json(payload) if payload else None


def wait_for_state(broker: MosquittoBroker, state: AvailabilityState) -> Availability:
    seen: list[Availability | None] = []

    def reached() -> bool:
        seen.append(availability(broker))
        return seen[-1] is not None and seen[-1].state is state

    assert wait_until(reached, timeout=10), f"last seen {seen[-1:]}\n{broker.log_tail()}"
    assert seen[-1] is not None
    return seen[-1]


def test_online_after_connect_offline_after_clean_stop(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker
) -> None:
    publisher = make_publisher()
    online = wait_for_state(mosquitto, AvailabilityState.ONLINE)
    assert online.client_id == f"packstation-{SITE}.{STATION}" and online.session == 1

    publisher.stop(timeout=1)
    offline = wait_for_state(mosquitto, AvailabilityState.OFFLINE)
    assert offline.session == online.session


def test_online_is_republished_after_a_broker_restart(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker
) -> None:
    publisher = make_publisher()
    wait_for_state(mosquitto, AvailabilityState.ONLINE)
    mosquitto.stop()
    (mosquitto.workdir / "persistence" / "mosquitto.db").unlink()  # forget the retained online
    mosquitto.start()
    assert wait_until(lambda: publisher.connected)
    wait_for_state(mosquitto, AvailabilityState.ONLINE)


def test_last_will_marks_a_killed_publisher_offline(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.mqtt.publisher_process",
            mosquitto.host,
            str(mosquitto.port),
            str(tmp_path / "outbox.db"),
        ],
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert process.stdout is not None and process.stdout.readline() == b"connected\n"
        online = wait_for_state(mosquitto, AvailabilityState.ONLINE)
        process.kill()  # SIGKILL: no DISCONNECT, the broker publishes the will
        process.wait(5)
        offline = wait_for_state(mosquitto, AvailabilityState.OFFLINE)
        assert offline.session == online.session
    finally:
        process.kill()
        process.wait(5)
        if process.stdout:
            process.stdout.close()


def test_a_stale_offline_is_told_apart_by_session(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker
) -> None:
    make_publisher().stop(timeout=1)
    stale = wait_for_state(mosquitto, AvailabilityState.OFFLINE)
    make_publisher()
    current = wait_for_state(mosquitto, AvailabilityState.ONLINE)
    assert current.session == stale.session + 1


def test_the_same_station_id_at_two_sites_sharing_a_broker_does_not_flap(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    """Station ids are unique only within a site; one client id for both would have the broker
    hand the connection back and forth between them."""
    started: list[tuple[EventPublisher, Outbox]] = []
    try:
        for site in ("dc-north", "dc-south"):
            outbox = Outbox(tmp_path / f"{site}.db")
            publisher = EventPublisher(fast_config(mosquitto), outbox, "pack-01", site)
            started.append((publisher, outbox))
            publisher.start()
        assert wait_until(lambda: all(p.connected for p, _ in started)), mosquitto.log_tail()
        time.sleep(1.5)  # three reconnect cycles of fast_config, were they taking turns
        assert all(p.connected for p, _ in started)
        assert "already connected" not in mosquitto.log_path.read_text()
    finally:
        for publisher, outbox in started:
            publisher.stop(timeout=1)
            outbox.close()
