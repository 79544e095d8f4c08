"""EventPublisher against a real mosquitto: order, PUBACK then delete, outages, restarts."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest

from simulators.broker import MosquittoBroker
from simulators.sink import Sink
from station.events import CLOUDEVENTS_CONTENT_TYPE, EventType, TopicKey, parse_event, topic_for
from station.mqtt import ConnectionState, EventPublisher, FaultCode
from tests.mqtt.conftest import PublisherFactory, RawSubscriber, wait_until
from tests.mqtt.factories import SITE, STATION, shipped_short, verification
from tests.reliability.conftest import AUTOSAVE_EVERY_CHANGE, sigkill_broker


def publish_verifications(publisher: EventPublisher, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        publisher.publish(EventType.VERIFICATION_RESULT, verification(f"C-{n}"), subject=f"C-{n}")


def test_events_arrive_in_order_and_rows_are_deleted_after_puback(
    make_publisher: PublisherFactory, sink: Sink
) -> None:
    publisher = make_publisher()
    publish_verifications(publisher, 200)
    publisher.publish(EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1")

    assert sink.wait_for_events(201, timeout=10)
    assert [event.station_seq for event in sink.events()] == list(range(1, 202))
    assert sink.events()[-1].topic == topic_for(EventType.MISSING_ITEM_SHIPPED_SHORT, SITE, STATION)
    assert wait_until(lambda: publisher.health().outbox_depth == 0)
    assert sink.gaps() == [] and sink.duplicates == []


def test_publish_returns_before_the_broker_is_reachable(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker
) -> None:
    mosquitto.stop()
    publisher = make_publisher(start=False)
    publisher.start()
    stored = publisher.publish(EventType.VERIFICATION_RESULT, verification(), subject="C-1")
    assert stored.station_seq == 1
    assert not publisher.connected and publisher.health().state is ConnectionState.CONNECTING
    assert publisher.health().outbox_depth == 1


def test_events_carry_the_cloudevents_content_type(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker
) -> None:
    subscriber = RawSubscriber(mosquitto, topic_for(TopicKey.VERIFICATION_EVENTS, SITE, STATION))
    wait_until(lambda: False, timeout=0.3)  # let the subscription settle
    publish_verifications(make_publisher(), 1)
    assert wait_until(lambda: bool(subscriber.messages))
    message = subscriber.messages[0]
    subscriber.close()
    assert message.properties.ContentType == CLOUDEVENTS_CONTENT_TYPE
    assert parse_event(message.payload).type is EventType.VERIFICATION_RESULT


def test_broker_outage_loses_nothing(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker, sink: Sink
) -> None:
    publisher = make_publisher()
    publish_verifications(publisher, 50)
    assert sink.wait_for_events(50, timeout=10)

    mosquitto.stop()
    assert wait_until(lambda: not publisher.connected)
    publish_verifications(publisher, 100, start=50)
    assert publisher.health().outbox_depth >= 100

    mosquitto.start()  # same port, same persistence: the sink's session survives
    assert sink.wait_for_events(150, timeout=20), mosquitto.log_tail()
    assert sorted(event.station_seq for event in sink.events()) == list(range(1, 151))
    assert sink.gaps() == []
    assert wait_until(lambda: publisher.health().outbox_depth == 0)


def test_a_new_publisher_process_delivers_rows_left_pending(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker, sink: Sink
) -> None:
    mosquitto.stop()
    first = make_publisher(start=False)
    first.start()
    publish_verifications(first, 20)
    first.stop(timeout=0.2)  # broker down: everything stays in the outbox

    mosquitto.start()
    second = make_publisher()
    publish_verifications(second, 5, start=20)
    assert sink.wait_for_events(25, timeout=20), mosquitto.log_tail()
    assert [event.station_seq for event in sink.events()] == list(range(1, 26))


def test_stop_flushes_pending_events(make_publisher: PublisherFactory, sink: Sink) -> None:
    publisher = make_publisher()
    publish_verifications(publisher, 500)
    publisher.stop(timeout=10)
    assert publisher.health().outbox_depth == 0
    assert sink.wait_for_events(500, timeout=10)


def test_an_outbox_that_cannot_be_updated_is_a_fault_and_the_drain_carries_on(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker, sink: Sink
) -> None:
    """SQLite refuses the deletes after PUBACK (a read-only database, as on a disk gone bad):
    the drainer reports OUTBOX_FAILED instead of dying, and finishes once SQLite accepts again."""
    publisher = make_publisher()
    mosquitto.stop()
    publish_verifications(publisher, 5)
    outbox = publisher._outbox
    with outbox._lock:
        outbox._db.execute("PRAGMA query_only = ON")  # every write now fails inside SQLite
    mosquitto.start()
    assert sink.wait_for_events(5, timeout=10)
    assert wait_until(lambda: [f.code for f in make_publisher.faults] == [FaultCode.OUTBOX_FAILED])
    assert "attempt to write a readonly database" in make_publisher.faults[0].message
    assert publisher.health().outbox_depth == 5  # nothing deleted, nothing lost

    with outbox._lock:
        outbox._db.execute("PRAGMA query_only = OFF")
    assert wait_until(lambda: publisher.health().outbox_depth == 0)
    assert wait_until(lambda: [f.active for f in make_publisher.faults] == [True, False])
    publish_verifications(publisher, 1, start=5)
    assert sink.wait_for_events(6, timeout=10)


@pytest.mark.parametrize(
    ("replay_acked_s", "quiet_before_kill_s", "replayed"),
    [(2.0, 0.0, 5), (0.3, 0.8, 0), (0.0, 0.0, 0)],
)
def test_events_acked_just_before_the_broker_died_are_published_again(
    make_publisher: PublisherFactory,
    mosquitto: MosquittoBroker,
    sink: Sink,
    caplog: pytest.LogCaptureFixture,
    replay_acked_s: float,
    quiet_before_kill_s: float,
    replayed: int,
) -> None:
    """mosquitto acknowledges before it saves; events acked less than `replay_acked_s` before
    the link went are sent again after the reconnect (the sink drops them by id), older ones
    and, with 0, none are. (The sink may see repeats either way: mosquitto also redelivers
    what it had sent before it saved the sink's PUBACK.)"""
    caplog.set_level(logging.INFO, logger="packstation.mqtt")
    mosquitto.stop()  # saves the sink's session; from now on every change is saved
    with mosquitto.config_path.open("a") as config:
        config.write(AUTOSAVE_EVERY_CHANGE)
    mosquitto.start()
    publisher = make_publisher(replay_acked_s=replay_acked_s)
    publish_verifications(publisher, 5)
    assert sink.wait_for_events(5, timeout=10)
    assert wait_until(lambda: publisher.health().outbox_depth == 0)
    time.sleep(quiet_before_kill_s)
    sigkill_broker(mosquitto)
    assert wait_until(lambda: not publisher.connected)
    time.sleep(2.5)  # longer than any window here: the replay must not need a quick return
    mosquitto.start()
    assert wait_until(lambda: publisher.connected, timeout=20)
    publish_verifications(publisher, 1, start=5)  # goes out after any replay, on one link
    assert sink.wait_for_events(6, timeout=20), mosquitto.log_tail()
    replays = [r for r in caplog.records if r.getMessage().startswith("republishing")]
    counts = [r.__dict__["count"] for r in replays]
    assert counts == ([replayed] if replayed else [])
    assert [event.station_seq for event in sink.events()] == list(range(1, 7))
    assert sink.gaps() == []


EVENTS = 120  # enough backlog that the broker is killed while it still drains


def test_a_broker_killed_while_the_backlog_drains_loses_nothing(
    make_publisher: PublisherFactory, mosquitto: MosquittoBroker, sink: Sink
) -> None:
    """The backlog of an outage goes out in a burst; mosquitto acknowledges the burst and saves
    after it, so a kill in between loses what it acknowledged unless the station sends it again.
    Twice in a row: the second kill lands while the first one's replay is in flight."""
    mosquitto.stop()  # saves the sink's session; from now on every change is saved
    with mosquitto.config_path.open("a") as config:
        config.write(AUTOSAVE_EVERY_CHANGE)
    publisher = make_publisher(start=False)
    publisher.start()
    publish_verifications(publisher, EVENTS)
    for _ in range(2):
        queued = publisher.health().outbox_depth
        mosquitto.start()
        # A backlog the first burst emptied before the kill has nothing left to drain (CI once
        # waited 20 s for it); generous too, for a loaded machine restarting the broker.
        drained = wait_until(
            lambda q=queued: q == 0 or publisher.health().outbox_depth < q, timeout=60
        )
        assert drained, mosquitto.log_tail()
        sigkill_broker(mosquitto)
        assert wait_until(lambda: not publisher.connected)
        time.sleep(2.5)  # longer than replay_acked_s: the replay must not depend on a quick return
    mosquitto.start()
    assert sink.wait_for_events(EVENTS, timeout=30), mosquitto.log_tail()
    assert sorted(event.station_seq for event in sink.events()) == list(range(1, EVENTS + 1))
    assert sink.gaps() == []


def test_a_broker_nobody_answers_at_is_logged_once_naming_where_and_what_to_check(
    make_publisher: PublisherFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """Nothing listens on the port (the broker stopped, a wrong [mqtt] port): paho retries with
    backoff, and the station says so once, not once per retry, with the address."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with caplog.at_level(logging.WARNING, logger="packstation.mqtt"):
        publisher = make_publisher(start=False, port=port)
        publisher.start()
        assert wait_until(lambda: "broker unreachable" in caplog.messages, timeout=10)
        time.sleep(1.5)  # several retries at 0.1-0.5 s backoff
    said = [r for r in caplog.records if r.getMessage() == "broker unreachable"]
    assert len(said) == 1 and said[0].broker == f"127.0.0.1:{port}"
    assert said[0].why == f"nothing listens on 127.0.0.1:{port} (connection refused)"
    assert "[mqtt] host and port" in said[0].check
    assert not publisher.connected


def test_anything_failing_in_the_drainer_is_a_fault_not_a_dead_thread(
    make_publisher: PublisherFactory, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not only SQLite: an unexpected error while dispatching is reported and retried."""
    publisher = make_publisher()
    dispatch = publisher._dispatch
    failures = iter([RuntimeError("boom")])

    def flaky() -> None:
        failure = next(failures, None)
        if failure is not None:
            raise failure
        dispatch()

    monkeypatch.setattr(publisher, "_dispatch", flaky)
    publish_verifications(publisher, 3)
    assert wait_until(lambda: any(f.code is FaultCode.OUTBOX_FAILED for f in make_publisher.faults))
    assert "the publisher failed (RuntimeError('boom'))" in make_publisher.faults[0].message
    assert sink.wait_for_events(3, timeout=10)
    assert wait_until(lambda: publisher.health().outbox_depth == 0)


def test_a_replay_is_paced_by_the_window_and_reads_nothing_twice(
    make_publisher: PublisherFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The events acked just before the link went go out again ahead of the queue, but no more
    at once than the window (the broker's Receive Maximum): a strict broker disconnects a client
    that exceeds it. What was read ahead already is not read again."""
    publisher = make_publisher(start=False, max_inflight=2)
    publish_verifications(publisher, 5)
    stored = publisher._outbox.pending(10)
    sent: list[int] = []

    def send(event: Any) -> bool:
        sent.append(event.station_seq)
        publisher._drain.inflight[len(sent)] = event
        return True

    monkeypatch.setattr(publisher, "_send", send)
    drain = publisher._drain
    now = publisher._clock.monotonic()
    drain.recently_acked.extend((now, event) for event in stored)
    drain.dispatched_upto = stored[-1].station_seq
    publisher._lost_at, publisher._replay_due = now, True
    publisher._dispatch()
    assert sent == [1, 2]  # the window
    assert [e.station_seq for e in drain.queued] == [3, 4, 5]
    drain.inflight.clear()  # both acknowledged
    publisher._dispatch()
    assert sent == [1, 2, 3, 4]
    assert [e.station_seq for e in drain.queued] == [5]
