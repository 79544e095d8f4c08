"""What the broker refuses: a publish (PUBACK >= 0x80) or the connection (CONNACK)."""

from __future__ import annotations

from pathlib import Path

from simulators.sink import Sink
from station.events import EventType
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


def test_refused_publish_stays_in_the_outbox_and_raises_a_fault(tmp_path: Path) -> None:
    broker = start_broker(tmp_path / "broker", acl=DENY_MISSING_ITEM)
    factory = PublisherFactory(broker, tmp_path / "outbox.db")
    try:
        publisher = factory()
        denied = publisher.publish(
            EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1"
        )
        assert wait_until(lambda: any(f.code is FaultCode.PUBLISH_REJECTED for f in factory.faults))

        fault = factory.faults[-1]
        assert fault.active and fault.reason_code == 0x87
        assert [f.code for f in publisher.health().faults] == [FaultCode.PUBLISH_REJECTED]
        assert wait_until(lambda: publisher.health().outbox_depth == 1)
        assert Outbox(factory.outbox_path).pending(10)[0].event_id == denied.event_id
    finally:
        factory.stop_all()
        broker.stop()
    assert "Denied PUBLISH" in broker.log_path.read_text()


def test_refused_event_holds_back_newer_ones_and_goes_out_once_allowed(tmp_path: Path) -> None:
    broker = start_broker(tmp_path / "broker", acl=DENY_MISSING_ITEM)
    factory = PublisherFactory(broker, tmp_path / "outbox.db")
    try:
        publisher = factory()
        publisher.publish(EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1")
        assert wait_until(lambda: bool(factory.faults))
        publisher.publish(EventType.VERIFICATION_RESULT, verification(), subject="C-2")
        assert wait_until(lambda: publisher.health().outbox_depth == 2)

        # The operator fixes the ACL: a broker with the default (allow all) takes over the port.
        factory.stop_all()
        broker.stop()
        (broker.workdir / "acl").write_text("topic readwrite #\n")
        broker.start()
        sink = Sink(broker.host, broker.port)
        sink.start()
        publisher = factory()
        assert sink.wait_for_events(2, timeout=10), broker.log_tail()
        assert [event.station_seq for event in sink.events()] == [1, 2]
        sink.stop()
    finally:
        factory.stop_all()
        broker.stop()


def test_mqtt_311_cannot_see_a_refused_publish(tmp_path: Path) -> None:
    """The documented 3.1.1 caveat: the broker acknowledges and drops; the row is deleted."""
    broker = start_broker(tmp_path / "broker", acl=DENY_MISSING_ITEM)
    factory = PublisherFactory(broker, tmp_path / "outbox.db")
    try:
        publisher = factory(protocol="3.1.1")
        publisher.publish(EventType.MISSING_ITEM_SHIPPED_SHORT, shipped_short(), subject="C-1")
        assert wait_until(lambda: publisher.health().outbox_depth == 0)
        assert factory.faults == []
    finally:
        factory.stop_all()
        broker.stop()


def test_refused_connack_is_not_connected(tmp_path: Path) -> None:
    broker = start_broker(tmp_path / "broker", allow_anonymous=False)
    factory = PublisherFactory(broker, tmp_path / "outbox.db")
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
        broker.stop()
