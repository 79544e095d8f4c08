from __future__ import annotations

import pytest
from pydantic import ValidationError

from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    ItemCode,
    OrderCartonCode,
    ShippingLabelCode,
)
from station.session import (
    MISSING_CANCELLED,
    MISSING_DETECTED,
    MISSING_RESOLVED,
    STATION_FAULT,
    VERIFICATION_RESULT,
    CollectEvidence,
    EvidenceReady,
    ManifestChanged,
    ManifestLoaded,
    ManifestRefused,
    PublishEvent,
    RecordAttempt,
    RecordAudit,
    Scanned,
    SessionState,
    SetLight,
    ShowMessage,
    Tick,
    WeightInfo,
    WorkflowConfig,
)
from station.verification import ChannelState, Outcome

from .drive import PACKER, collect_attempt, drive_to, manifest, new_session, weight_report

WEIGHT = WeightInfo(measured_g=740.0, expected_g=860.0, tolerance_g=25.0)


def events(effects, kind=None):
    return [e for e in effects if isinstance(e, PublishEvent) and kind in (None, e.kind)]


def only(effects, cls):
    (found,) = [e for e in effects if isinstance(e, cls)]
    return found


def test_a_complete_carton_passes():
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    effects = session.handle(EvidenceReady(1, (weight_report(),), WEIGHT))
    assert session.state is SessionState.IDLE
    assert only(effects, SetLight) == SetLight("green")
    (result,) = events(effects)
    assert result.kind == VERIFICATION_RESULT
    assert result.data["outcome"] == "PASS"
    record = only(effects, RecordAttempt).record
    assert (record.order_id, record.attempt, record.box_code) == ("A-1", 1, "BOX-S")
    assert record.verdict.outcome is Outcome.PASS


def test_missing_item_blocks_then_passes_with_detected_and_resolved_events():
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    blocked = session.handle(EvidenceReady(1, (weight_report({"TEA-1": 1}),), WEIGHT))
    assert session.state is SessionState.BLOCKED
    assert only(blocked, SetLight) == SetLight("red", buzzer=True)
    assert [e.kind for e in events(blocked)] == [VERIFICATION_RESULT, MISSING_DETECTED]
    detected = events(blocked, MISSING_DETECTED)[0].data
    assert detected["missing"] == [
        {"sku": "TEA-1", "name": "Green tea", "quantity": 1, "line_id": "2", "epcs": []}
    ]
    assert detected["weights"] == {"measured_g": 740.0, "expected_g": 860.0, "tolerance_g": 25.0}
    assert {k: detected[k] for k in ("picker_id", "tote_id", "wave_id", "packer_badge")} == {
        "picker_id": "PICK-7",
        "tote_id": "T-9",
        "wave_id": "W-3",
        "packer_badge": PACKER,
    }
    assert (detected["manifest_version"], detected["attempt"], detected["mode"]) == (
        1,
        1,
        "enforce",
    )

    session.handle(Scanned(ItemCode("TEA-1", 1)))
    attempt = collect_attempt(session.handle(Scanned(CloseCode())))
    assert attempt == 2
    passed = session.handle(EvidenceReady(2, (weight_report(),)))
    assert session.state is SessionState.IDLE
    assert [e.kind for e in events(passed)] == [VERIFICATION_RESULT, MISSING_RESOLVED]
    resolved = events(passed, MISSING_RESOLVED)[0].data
    assert resolved["missing"] == detected["missing"]
    assert resolved["outcome"] == "PASS" and resolved["attempt"] == 2
    assert only(passed, RecordAttempt).record.scanned_units == {"TEA-1": 1}


def test_the_same_shortage_is_detected_once_a_different_one_again():
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    session.handle(Scanned(CloseCode()))
    again = session.handle(EvidenceReady(2, (weight_report({"TEA-1": 1}),)))
    assert events(again, MISSING_DETECTED) == []
    session.handle(Scanned(CloseCode()))
    changed = session.handle(EvidenceReady(3, (weight_report({"MUG-1": 1}),)))
    assert events(changed, MISSING_DETECTED)[0].data["missing"][0]["sku"] == "MUG-1"


def test_a_channel_down_is_review_and_keeps_the_carton_open():
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    effects = session.handle(EvidenceReady(1, (weight_report(state=ChannelState.DOWN),)))
    assert session.state is SessionState.BLOCKED
    assert events(effects, VERIFICATION_RESULT)[0].data["outcome"] == "REVIEW"
    assert events(effects, MISSING_DETECTED) == []
    assert only(effects, ShowMessage).key == "verdict.review"


@pytest.mark.parametrize("short", [{"TEA-1": 1}, {}])
def test_shadow_mode_never_sets_red_and_ends_the_carton(short):
    session, _ = new_session(mode="shadow")
    drive_to(session, SessionState.VERIFYING)
    reports = (weight_report(short, state=ChannelState.OK),)
    effects = session.handle(EvidenceReady(1, reports))
    assert session.state is SessionState.IDLE
    assert all(e.color != "red" for e in effects if isinstance(e, SetLight))
    (result,) = events(effects)
    assert result.kind == VERIFICATION_RESULT
    assert result.data["mode"] == "shadow"
    assert result.data["outcome"] == ("BLOCK" if short else "PASS")
    assert only(effects, RecordAttempt).record.mode == "shadow"


def test_manifest_refused_publishes_a_fault_and_returns_to_idle():
    session, _ = new_session()
    drive_to(session, SessionState.LOADING)
    effects = session.handle(ManifestRefused("A-1", "1", "not_found", "no such order"))
    assert session.state is SessionState.IDLE
    fault = events(effects, STATION_FAULT)[0].data
    assert (fault["order_id"], fault["code"], fault["fault"]) == (
        "A-1",
        "not_found",
        "manifest_refused",
    )
    assert only(effects, ShowMessage).key == "order.refused"


def test_a_manifest_with_unknown_skus_is_refused():
    session, _ = new_session()
    drive_to(session, SessionState.LOADING)
    bad = manifest().model_copy(
        update={"lines": (manifest().lines[0].model_copy(update={"sku": "NOPE"}),)}
    )
    effects = session.handle(ManifestLoaded(bad))
    assert session.state is SessionState.IDLE
    assert events(effects, STATION_FAULT)[0].data["code"] == "unknown_sku"


def test_a_cancelled_manifest_is_not_packed():
    session, _ = new_session()
    drive_to(session, SessionState.LOADING)
    session.handle(ManifestLoaded(manifest(status="cancelled")))
    assert session.state is SessionState.IDLE


def test_order_cancelled_mid_pack_after_a_detection():
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    effects = session.handle(ManifestChanged("A-1", "1", "cancelled", "customer cancelled"))
    assert session.state is SessionState.IDLE
    (cancelled,) = events(effects)
    assert cancelled.kind == MISSING_CANCELLED
    assert cancelled.data["missing"][0]["sku"] == "TEA-1"
    assert only(effects, RecordAudit).data["reason"] == "order_cancelled"


def test_order_cancelled_before_any_detection_publishes_nothing():
    session, _ = new_session()
    drive_to(session, SessionState.PACKING)
    effects = session.handle(ManifestChanged("A-1", "1", "cancelled"))
    assert events(effects) == []
    assert session.state is SessionState.IDLE


def test_superseded_manifest_voids_the_attempt_and_keeps_the_box():
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    session.handle(ManifestChanged("A-1", "1", "superseded"))
    assert session.state is SessionState.LOADING
    assert session.handle(EvidenceReady(1, (weight_report(),))) == []  # for the old lines
    session.handle(ManifestLoaded(manifest(version=2)))
    assert session.state is SessionState.PACKING
    effects = session.handle(Scanned(CloseCode()))
    assert only(effects, CollectEvidence).manifest.version == 2
    assert collect_attempt(effects) == 2


def test_inactivity_logs_out_and_aborts_the_carton():
    session, clock = new_session(timeout_s=300)
    drive_to(session, SessionState.PACKING)
    clock.advance(200)
    session.handle(Scanned(ItemCode("MUG-1", 1)))  # a scan is activity
    clock.advance(200)
    assert session.handle(Tick(clock.monotonic())) == []
    clock.advance(100)
    effects = session.handle(Tick(clock.monotonic()))
    assert session.state is SessionState.LOGGED_OUT
    audits = {a.kind: a.data for a in effects if isinstance(a, RecordAudit)}
    assert audits["carton.aborted"]["reason"] == "inactivity"
    assert audits["packer.logout"] == {"packer_badge": PACKER, "reason": "inactivity"}


def test_hand_over_keeps_the_carton_and_credits_the_new_packer():
    session, _ = new_session()
    drive_to(session, SessionState.PACKING)
    effects = session.handle(Scanned(BadgeCode("P2")))
    assert session.packer == "P2" and session.state is SessionState.PACKING
    assert only(effects, RecordAudit).data == {"from": PACKER, "to": "P2", "carton": ("A-1", "1")}
    session.handle(Scanned(CloseCode()))
    passed = session.handle(EvidenceReady(1, (weight_report(),)))
    assert events(passed)[0].data["packer_badge"] == "P2"
    assert only(passed, RecordAttempt).record.packer_badge == "P2"


def test_nothing_opens_with_nobody_logged_in():
    session, _ = new_session()
    effects = session.handle(Scanned(OrderCartonCode("A-1", "1")))
    assert session.state is SessionState.LOGGED_OUT and session.open_carton is None
    assert only(effects, ShowMessage).params["next"] == "scan_badge"


@pytest.mark.parametrize(
    ("close_by", "scan", "closes"),
    [
        ("code", CloseCode(), True),
        ("code", ShippingLabelCode("1Z1"), False),
        ("label", CloseCode(), False),
        ("label", ShippingLabelCode("1Z1"), True),
        ("either", ShippingLabelCode("1Z1"), True),
    ],
)
def test_close_by(close_by, scan, closes):
    session, _ = new_session(close_by=close_by)
    drive_to(session, SessionState.PACKING)
    effects = session.handle(Scanned(scan))
    assert (session.state is SessionState.VERIFYING) == closes
    if not closes:
        assert only(effects, ShowMessage).key == f"close.use_{close_by}"


def test_the_suggested_box_is_never_assumed():
    session, _ = new_session()
    drive_to(session, SessionState.AWAITING_BOX)
    effects = session.handle(Scanned(CloseCode()))
    assert session.state is SessionState.AWAITING_BOX
    assert only(effects, ShowMessage).params["next"] == "scan_box"


def test_a_new_order_after_an_attempt_is_refused_with_a_message():
    session, _ = new_session()
    drive_to(session, SessionState.BLOCKED)
    effects = session.handle(Scanned(OrderCartonCode("B-2", "1")))
    assert only(effects, ShowMessage).key == "order.close_open_first"
    assert session.open_carton == ("A-1", "1")


def test_workflow_config_is_strict_and_described():
    assert all(f.description for f in WorkflowConfig.model_fields.values())
    with pytest.raises(ValidationError):
        WorkflowConfig(mode="lenient")
    with pytest.raises(ValidationError):
        WorkflowConfig(surprise=1)


def test_box_scanned_while_the_manifest_loads_is_kept():
    session, _ = new_session()
    drive_to(session, SessionState.LOADING)
    early = session.handle(Scanned(BoxCode("BOX-S")))
    assert session.state is SessionState.LOADING
    assert only(early, ShowMessage).key == "box.accepted"
    loaded = session.handle(ManifestLoaded(manifest()))
    assert session.state is SessionState.PACKING
    assert only(loaded, ShowMessage).key == "order.loaded"
    effects = session.handle(Scanned(CloseCode()))
    assert only(effects, CollectEvidence).box.code == "BOX-S"
