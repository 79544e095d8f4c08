"""The reissue-backend sink: de-duplication by event id, gap detection on stationseq."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from simulators.broker import MosquittoBroker
from simulators.sink import Gap, Sink
from station.events import EventType, event_source, topic_for
from station.outbox import Outbox, StoredEvent
from tests.mqtt.conftest import wait_until
from tests.mqtt.factories import SITE, STATION, verification

REPO = Path(__file__).resolve().parents[2]


def stored_events(path: Path, count: int) -> list[StoredEvent]:
    outbox = Outbox(path)
    topic = topic_for(EventType.VERIFICATION_RESULT, SITE, STATION)
    source = event_source(SITE, STATION)
    return [
        outbox.commit(EventType.VERIFICATION_RESULT, topic, verification(f"C-{n}"), source=source)
        for n in range(count)
    ]


def publish_raw(broker: MosquittoBroker, events: list[StoredEvent | bytes]) -> None:
    client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    topic = topic_for(EventType.VERIFICATION_RESULT, SITE, STATION)
    for event in events:
        payload = event if isinstance(event, bytes) else event.payload
        client.publish(topic, payload, qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def test_duplicates_are_dropped_and_reported(
    sink: Sink, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    first, second = stored_events(tmp_path / "o.db", 2)
    publish_raw(mosquitto, [first, second, first])
    assert sink.wait_for(lambda s: len(s.duplicates) == 1, timeout=5)
    assert [event.event_id for event in sink.events()] == [first.event_id, second.event_id]
    assert sink.duplicates == [first.event_id]


def test_gaps_are_reported_and_filled_by_late_events(
    sink: Sink, mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    events = stored_events(tmp_path / "o.db", 7)
    publish_raw(mosquitto, [events[0], events[1], events[4], events[6]])
    assert sink.wait_for_events(4, timeout=5)
    source = event_source(SITE, STATION)
    assert sink.gaps() == [Gap(source, 3, 4), Gap(source, 6, 6)]

    publish_raw(mosquitto, [events[2], events[3], events[5]])
    assert sink.wait_for_events(7, timeout=5)
    assert sink.gaps() == []


def test_invalid_messages_are_counted_not_stored(sink: Sink, mosquitto: MosquittoBroker) -> None:
    publish_raw(mosquitto, [b"not json", b'{"specversion": "1.0"}'])
    assert sink.wait_for(lambda s: s.invalid_messages == 2, timeout=5)
    assert sink.events() == []


def test_persistent_session_queues_events_while_the_sink_is_away(
    mosquitto: MosquittoBroker, tmp_path: Path
) -> None:
    sink = Sink(mosquitto.host, mosquitto.port, db_path=str(tmp_path / "sink.db"))
    sink.start()
    sink.stop()
    publish_raw(mosquitto, stored_events(tmp_path / "o.db", 3))
    mosquitto.restart()  # queued messages survive in the broker's persistence

    sink.start()
    try:
        assert sink.wait_for_events(3, timeout=10), mosquitto.log_tail()
    finally:
        sink.stop()
        sink.close()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "term"])
def test_simulate_sink_command_stores_prints_and_reports_duplicates_and_gaps(
    mosquitto: MosquittoBroker, tmp_path: Path, stop_signal: signal.Signals
) -> None:
    """`packstation simulate sink` standalone, as QA starts it: a fresh interpreter, stopped by
    Ctrl-C or by a service manager's SIGTERM."""
    db = tmp_path / "sink.db"
    command = [sys.executable, "-m", "station.cli", "simulate", "sink", "--db", str(db)]
    command += ["--host", mosquitto.host, "--port", str(mosquitto.port)]
    sink = subprocess.Popen(
        command,
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert sink.stdout is not None
        assert "sink subscribed" in sink.stdout.readline()
        events = stored_events(tmp_path / "o.db", 4)
        publish_raw(mosquitto, [events[0], events[1], events[0], events[3]])
        with sqlite3.connect(db) as stored:  # the sink's own SQLite file, as a backend reads it

            def stored_count() -> int:
                return stored.execute("SELECT count(*) FROM events").fetchone()[0]

            assert wait_until(lambda: stored_count() == 3)
        sink.send_signal(stop_signal)
        out, err = sink.communicate(timeout=20)
    finally:
        if sink.poll() is None:
            sink.kill()
    assert sink.returncode == 0, err
    source = event_source(SITE, STATION)
    assert f"DUPLICATE seq=1 source={source} type=com.packstation.verification.result.v1" in out
    assert f"new seq=4 source={source}" in out
    assert f"GAP source={source} missing seq 3..3" in out
    assert out.rstrip().endswith("3 events, 1 duplicates, 1 gaps, 0 invalid")
