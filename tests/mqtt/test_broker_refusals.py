"""What the broker refuses: a publish (PUBACK >= 0x80) or the connection (CONNACK)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from simulators.broker import MosquittoBroker
from simulators.sink import Sink
from station.events import EventType, Reason
from station.mqtt import ConnectionState, FaultCode
from station.outbox import Outbox
from tests.mqtt.conftest import PublisherFactory, start_broker, wait_until
from tests.mqtt.factories import shipped_short, verification

# Anonymous clients may publish verification events and availability, not missing-item events.
DENY_MISSING_ITEM = """
topic readwrite packstation/v1/+/+/events/verification
topic readwrite packstation/v1/+/+/availability
topic read packstation/v1/#
"""


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = start_broker(tmp_path / "broker", acl=DENY_MISSING_ITEM)
    yield broker
    broker.stop()


@pytest.fixture
def acl_factory(acl_broker: MosquittoBroker, tmp_path: Path) -> Iterator[PublisherFactory]:
    factory = PublisherFactory(acl_broker, tmp_path / "outbox.db")
    yield factory
    factory.stop_all()


@pytest.fixture
def refusing_broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    broker = start_broker(tmp_path / "refusing", allow_anonymous=False)
    yield broker
    broker.stop()


def test_refused_publish_stays_in_the_outbox_and_raises_a_fault(
    acl_factory: PublisherFactory, acl_broker: MosquittoBroker
) -> None:
    publisher = acl_factory()
    denied = publisher.publish(EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1")
    assert wait_until(lambda: any(f.code is FaultCode.PUBLISH_REJECTED for f in acl_factory.faults))
    fault = acl_factory.faults[-1]
    assert fault.active and fault.reason_code == 0x87
    assert [f.code for f in publisher.health().faults] == [FaultCode.PUBLISH_REJECTED]
    assert wait_until(lambda: publisher.health().outbox_depth == 1)
    assert Outbox(acl_factory.outbox_path).pending(10)[0].event_id == denied.event_id
    assert "Denied PUBLISH" in acl_broker.log_path.read_text()


def test_refused_event_holds_back_newer_ones_and_goes_out_once_allowed(
    acl_factory: PublisherFactory, acl_broker: MosquittoBroker
) -> None:
    publisher = acl_factory()
    publisher.publish(EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1")
    assert wait_until(lambda: bool(acl_factory.faults))
    publisher.publish(EventType.VERIFICATION_RESULT, verification(), subject="C-2")
    assert wait_until(lambda: publisher.health().outbox_depth == 2)

    # The operator fixes the ACL and restarts the broker; a new publisher process takes over.
    acl_factory.stop_all()
    acl_broker.stop()
    (acl_broker.workdir / "acl").write_text("topic readwrite #\n")
    acl_broker.start()
    sink = Sink(acl_broker.host, acl_broker.port)
    sink.start()
    try:
        acl_factory()
        assert sink.wait_for_events(2, timeout=10), acl_broker.log_tail()
        assert [event.station_seq for event in sink.events()] == [1, 2]
    finally:
        sink.stop()


def test_mqtt_311_cannot_see_a_refused_publish(acl_factory: PublisherFactory) -> None:
    """The documented 3.1.1 caveat: the broker acknowledges and drops; the row is deleted."""
    publisher = acl_factory(protocol="3.1.1")
    publisher.publish(EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1")
    assert wait_until(lambda: publisher.health().outbox_depth == 0)
    assert acl_factory.faults == []


def test_refused_connack_is_not_connected(refusing_broker: MosquittoBroker, tmp_path: Path) -> None:
    factory = PublisherFactory(refusing_broker, tmp_path / "outbox.db")
    try:
        publisher = factory(start=False)
        publisher.start()
        assert wait_until(
            lambda: any(f.code is FaultCode.CONNECTION_REFUSED for f in factory.faults)
        )
        assert not publisher.connected
        assert publisher.health().state is not ConnectionState.UP
        assert factory.faults[0].reason_code == 0x87
    finally:
        factory.stop_all()


def test_an_event_larger_than_the_broker_takes_is_held_with_a_fault_not_a_reconnect_loop(
    tmp_path: Path,
) -> None:
    """Sent, it would make the broker drop the connection at every reconnect, with everything
    after it stuck and no fault. It is refused on the station (0x95), kept, and said."""
    broker = start_broker(tmp_path / "small", extra_config=("max_packet_size 4096",))
    factory = PublisherFactory(broker, tmp_path / "outbox.db")
    sink = Sink(broker.host, broker.port)
    sink.start()
    try:
        publisher = factory()
        publisher.publish(EventType.VERIFICATION_RESULT, verification("C-1"), subject="C-1")
        assert sink.wait_for_events(1, timeout=10)
        reasons = [Reason(code=f"r{n}", message="x" * 100) for n in range(60)]
        big = verification("C-2").model_copy(update={"reasons": reasons})
        publisher.publish(EventType.VERIFICATION_RESULT, big, subject="C-2")
        publisher.publish(EventType.VERIFICATION_RESULT, verification("C-3"), subject="C-3")
        assert wait_until(lambda: bool(factory.faults))
        fault = factory.faults[-1]
        assert fault.code is FaultCode.PUBLISH_REJECTED and fault.reason_code == 0x95
        assert "max_packet_size" in fault.message and "seq 2" in fault.message
        assert publisher.connected
        assert publisher.health().outbox_depth == 2  # the big one and the one behind it
        assert "oversize" not in broker.log_tail(200)
        assert [event.station_seq for event in sink.events()] == [1]
    finally:
        sink.stop()
        factory.stop_all()
        broker.stop()
