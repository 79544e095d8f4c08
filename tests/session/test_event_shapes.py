"""Every event the session asks for becomes a valid payload of the published contract."""

from __future__ import annotations

from station.event_shapes import to_event
from station.events import EventType, FaultState, MissingItemDetected, StationFault
from station.session import (
    DeviceFault,
    DeviceRecovered,
    EvidenceReady,
    ManifestChanged,
    PublishEvent,
    SessionState,
    WeightInfo,
)

from .drive import ORDER, drive_to, new_session, weight_report

WEIGHT = WeightInfo(measured_g=740.0, expected_g=860.0, tolerance_g=25.0)


def published(effects) -> list[PublishEvent]:
    return [e for e in effects if isinstance(e, PublishEvent)]


def shapes(effects):
    return [to_event(e, "pack-01", "dc-1") for e in published(effects)]


def test_block_then_fix_maps_to_detected_and_resolved_payloads():
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    blocked_effects = session.handle(DeviceFault("scale", "no reply"))
    (fault_type, fault, subject) = shapes(blocked_effects)[0]
    assert fault_type is EventType.STATION_FAULT
    assert isinstance(fault, StationFault) and fault.state is FaultState.RAISED
    assert fault.component == "scale" and subject == f"{ORDER.order_id}/{ORDER.carton_id}"
    (_, cleared, _) = shapes(session.handle(DeviceRecovered("scale")))[0]
    assert cleared.state is FaultState.CLEARED

    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    first = shapes(session.handle(EvidenceReady(1, (weight_report({"TEA-1": 1}),), WEIGHT)))
    types = [t for t, _, _ in first]
    assert types == [EventType.VERIFICATION_RESULT, EventType.MISSING_ITEM_DETECTED]
    detected = first[1][1]
    assert isinstance(detected, MissingItemDetected)
    assert [(m.sku, m.quantity_missing, m.line_id) for m in detected.missing_lines] == [
        ("TEA-1", 1, "2")
    ]
    assert detected.weight is not None and detected.weight.measured_g == 740.0
    assert detected.responsible.tote_id == "T-9" and detected.packer_id == "P1"
    assert detected.manifest_version == 1 and detected.station_id == "pack-01"
    assert all(reason.message for reason in detected.reasons)


def test_cancelled_order_after_detection_maps_to_cancelled():
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    effects = session.handle(ManifestChanged(ORDER.order_id, ORDER.carton_id, "cancelled", "gone"))
    assert [t for t, _, _ in shapes(effects)] == [EventType.MISSING_ITEM_CANCELLED]
