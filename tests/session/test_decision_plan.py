"""The carton plan in the session: detectability at order start, unit scans, degraded mode."""

from __future__ import annotations

from dataclasses import replace

import pytest

from station.carton_policy import Fallback, SkuRule, StationPolicy
from station.clock import ManualClock
from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    ItemCode,
    LogoutCode,
    RemoveUnitCode,
    UnknownCode,
)
from station.domain import Catalog
from station.session import (
    MISSING_DETECTED,
    STATION_FAULT,
    VERIFICATION_RESULT,
    DegradedModeEnded,
    DegradedModeRequested,
    EvidenceReady,
    PublishEvent,
    RecordAttempt,
    RecordAudit,
    Scanned,
    Session,
    SessionState,
    ShowMessage,
    Tick,
    WorkflowConfig,
)
from station.verification import ChannelReport, ChannelState, Outcome

from .drive import CATALOG, drive_to, weigh_everything, weight_report


def session_with(policy: StationPolicy, power=weigh_everything) -> tuple[Session, ManualClock]:
    clock = ManualClock()
    return Session(WorkflowConfig(), CATALOG, policy, clock, power), clock


def messages(effects) -> dict[str, dict]:
    return {e.key: dict(e.params) for e in effects if isinstance(e, ShowMessage)}


def published(effects, kind: str) -> list[dict]:
    return [dict(e.data) for e in effects if isinstance(e, PublishEvent) and e.kind == kind]


def close(session: Session, *reports: ChannelReport):
    session.handle(Scanned(CloseCode()))
    return session.handle(EvidenceReady(session.carton_view().attempts, reports))


MUST_SCAN_TEA = StationPolicy(rules=(SkuRule(("TEA-*",), require=frozenset({"scan"})),))


def test_packing_starts_by_telling_the_packer_what_to_scan_and_recording_the_plan() -> None:
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.AWAITING_BOX)
    effects = session.handle(Scanned(BoxCode("BOX-S")))
    assert messages(effects)["order.scan_units"] == {"skus": ["TEA-1"], "names": "Green tea"}
    (plan,) = [e for e in effects if isinstance(e, RecordAudit) and e.kind == "carton.plan"]
    by_sku = {c["sku"]: c for c in plan.data["coverage"]}
    assert by_sku["TEA-1"]["must_scan"] and by_sku["TEA-1"]["channels"] == ("weight", "scan")
    assert {c.sku for c in session.carton_view().coverage} == {"MUG-1", "TEA-1"}


def test_a_sku_no_sensor_proves_is_named_when_packing_starts() -> None:
    session, _ = session_with(StationPolicy(), power=lambda expected, box: {"MUG-1": 0.99})
    drive_to(session, SessionState.AWAITING_BOX)
    effects = session.handle(Scanned(BoxCode("BOX-S")))
    assert messages(effects)["order.unproven"]["skus"] == ["TEA-1"]


def test_a_look_alike_no_channel_tells_apart_is_named_when_packing_starts() -> None:
    """Green tea has a jasmine look-alike of its weight: the packer is told to check it; with
    `lookalike_action = "scan"` they must scan it instead."""
    jasmine = CATALOG.items["TEA-1"].model_copy(
        update={"sku": "TEA-2", "name": "Jasmine tea", "barcodes": ()}
    )
    catalog = Catalog.from_lists(
        [
            *(i for i in CATALOG.items.values() if i.sku != "TEA-1"),
            CATALOG.items["TEA-1"].model_copy(update={"lookalike_group": "TEA"}),
            jasmine.model_copy(update={"lookalike_group": "TEA"}),
        ],
        list(CATALOG.boxes.values()),
    )
    for action, key in (("warn", "order.check_lookalikes"), ("scan", "order.scan_units")):
        policy = StationPolicy(lookalike_action=action)
        session = Session(WorkflowConfig(), catalog, policy, ManualClock(), weigh_everything)
        drive_to(session, SessionState.AWAITING_BOX)
        effects = session.handle(Scanned(BoxCode("BOX-S")))
        assert messages(effects)[key] == {"skus": ["TEA-1"], "names": "Green tea"}
        (plan,) = [e for e in effects if isinstance(e, RecordAudit) and e.kind == "carton.plan"]
        tea = {c["sku"]: c for c in plan.data["coverage"]}["TEA-1"]
        assert tea["lookalikes_unproven"] is (action == "warn")


def test_a_must_scan_sku_not_scanned_blocks_and_scanning_it_passes() -> None:
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    effects = close(session, weight_report())
    (result,) = published(effects, VERIFICATION_RESULT)
    assert result["outcome"] == "BLOCK"
    assert result["missing"][0]["sku"] == "TEA-1" and result["missing"][0]["quantity"] == 1
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    effects = close(session, weight_report())
    assert published(effects, VERIFICATION_RESULT)[0]["outcome"] == "PASS"


def test_the_same_serial_scanned_twice_counts_once() -> None:
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(ItemCode("TEA-1", 1, serial="S1")))
    effects = session.handle(Scanned(ItemCode("TEA-1", 1, serial="S1")))
    assert messages(effects)["item.double_scan"]["serial"] == "S1"
    assert session.carton_view().scanned_units == {"TEA-1": 1}
    effects = close(session, weight_report())
    assert published(effects, VERIFICATION_RESULT)[0]["outcome"] == "BLOCK"


def test_a_scanned_unit_of_another_order_blocks_as_extra() -> None:
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.PACKING)
    assert "item.not_on_order" in messages(session.handle(Scanned(ItemCode("SPOON-1", 1))))
    (result,) = published(close(session, weight_report()), VERIFICATION_RESULT)
    assert result["outcome"] == "BLOCK" and result["extra"][0]["sku"] == "SPOON-1"


def authorise(session: Session, reviewer: str = "R9", minutes: float = 30):
    return session.handle(
        DegradedModeRequested(Fallback.SCAN_FOR_WEIGHT, reviewer, "scale_down", minutes * 60)
    )


def test_scan_for_weight_lets_scanned_cartons_pass_with_the_scale_down_and_flags_events() -> None:
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.PACKING)
    scale_down = ChannelReport("weight", ChannelState.DOWN)
    assert published(close(session, scale_down), VERIFICATION_RESULT)[0]["outcome"] == "REVIEW"

    started = authorise(session)
    (fault,) = published(started, STATION_FAULT)
    assert fault["fault"] == "degraded_mode" and not fault["cleared"]
    assert fault["degraded"]["authorised_by"] == "R9"
    # still held: the units were not scanned
    assert published(close(session, scale_down), VERIFICATION_RESULT)[0]["outcome"] == "BLOCK"
    session.handle(Scanned(ItemCode("MUG-1", 1)))
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    effects = close(session, scale_down)
    (result,) = published(effects, VERIFICATION_RESULT)
    assert result["outcome"] == "PASS"
    assert result["degraded"]["fallback"] == "scan_for_weight"
    (attempt,) = [e.record for e in effects if isinstance(e, RecordAttempt)]
    assert attempt.degraded == result["degraded"]


def test_the_packer_cannot_authorise_a_degraded_mode_for_themselves() -> None:
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.PACKING)
    effects = authorise(session, reviewer="P1")
    assert "degraded.own_station" in messages(effects) and session.degraded is None


def test_a_reviewer_who_packed_the_open_carton_cannot_authorise_a_mode_for_it() -> None:
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(BadgeCode("P2")))  # handed over: P1 packed this carton too
    effects = authorise(session, reviewer="P1")
    assert "degraded.own_station" in messages(effects) and session.degraded is None


@pytest.mark.parametrize("how", ["login", "handover"])
def test_the_modes_reviewer_taking_the_station_ends_the_mode(how: str) -> None:
    """A lead authorises a fallback, then packs under it: no second person any more."""
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.IDLE)
    authorise(session, reviewer="LEAD1")
    if how == "login":
        session.handle(Scanned(LogoutCode()))
        assert session.degraded is not None  # nobody packs: it stays in force
    effects = session.handle(Scanned(BadgeCode("LEAD1")))
    (ended,) = published(effects, STATION_FAULT)
    assert ended["cleared"] and "its reviewer LEAD1 is packing" in ended["message"]
    assert session.degraded is None
    assert [e.kind for e in effects if isinstance(e, RecordAudit)][-1] == "degraded.ended"


def test_a_verdict_reached_after_the_mode_ended_but_before_the_tick_does_not_use_it() -> None:
    session, clock = session_with(StationPolicy())
    drive_to(session, SessionState.PACKING)
    authorise(session, minutes=10)
    session.handle(Scanned(ItemCode("MUG-1", 1)))
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(CloseCode()))
    clock.advance(10 * 60 + 0.5)  # no tick since the end
    effects = session.handle(
        EvidenceReady(session.carton_view().attempts, (ChannelReport("weight", ChannelState.DOWN),))
    )
    (ended,) = published(effects, STATION_FAULT)
    assert ended["cleared"] and "lapsed" in ended["message"]
    (result,) = published(effects, VERIFICATION_RESULT)
    assert result["outcome"] == "REVIEW" and result["degraded"] is None


def test_degraded_mode_lapses_on_time_and_can_be_ended_early() -> None:
    session, clock = session_with(StationPolicy())
    drive_to(session, SessionState.IDLE)
    authorise(session, minutes=10)
    clock.advance(9 * 60)
    assert session.handle(Tick(clock.monotonic())) == [] and session.degraded is not None
    clock.advance(61)
    (ended,) = published(session.handle(Tick(clock.monotonic())), STATION_FAULT)
    assert ended["cleared"] and session.degraded is None
    authorise(session)
    (ended,) = published(session.handle(DegradedModeEnded("R9")), STATION_FAULT)
    assert ended["cleared"] and "ended by R9" in ended["message"]
    assert session.handle(Scanned(CloseCode()))  # nothing open: a message, no crash


def test_a_mode_authorised_over_one_in_force_ends_that_one_on_the_record() -> None:
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.IDLE)
    authorise(session, minutes=10)
    effects = authorise(session, minutes=30)
    ended, started = published(effects, STATION_FAULT)
    assert ended["cleared"] and "replaced by" in ended["message"] and not started["cleared"]
    kinds = [e.kind for e in effects if isinstance(e, RecordAudit)]
    assert kinds == ["degraded.ended", "degraded.started"]


def test_without_a_degraded_mode_a_down_scale_never_passes_even_when_all_is_scanned() -> None:
    session, _ = session_with(StationPolicy())
    drive_to(session, SessionState.PACKING)
    for sku, n in (("MUG-1", 1), ("TEA-1", 2)):
        for _ in range(n):
            session.handle(Scanned(ItemCode(sku, 1)))
    effects = close(session, ChannelReport("weight", ChannelState.DOWN))
    assert published(effects, VERIFICATION_RESULT)[0]["outcome"] == Outcome.REVIEW.value


def test_a_wrong_unit_scanned_in_and_taken_out_with_remove_no_longer_counts() -> None:
    """The packer scans a tea they then take out again: REMOVE + its barcode takes the scan
    back, so the must-scan count is right and the carton passes once the right unit is in."""
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.PACKING)
    for _ in range(3):
        session.handle(Scanned(ItemCode("TEA-1", 1)))
    assert published(close(session, weight_report()), VERIFICATION_RESULT)[0]["extra"]
    session.handle(Scanned(RemoveUnitCode()))
    effects = session.handle(Scanned(ItemCode("TEA-1", 1)))
    assert messages(effects)["item.removed"] == {
        "sku": "TEA-1",
        "name": "Green tea",
        "total": 2,
        "expected": 2,
    }
    assert published(close(session, weight_report()), VERIFICATION_RESULT)[0]["outcome"] == "PASS"


def test_remove_takes_back_only_what_was_scanned_and_any_other_scan_disarms_it() -> None:
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(RemoveUnitCode()))
    effects = session.handle(Scanned(ItemCode("MUG-1", 1)))
    assert "item.remove_unscanned" in messages(effects)
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(RemoveUnitCode()))
    session.handle(Scanned(BoxCode("BOX-M")))  # disarms
    effects = session.handle(Scanned(ItemCode("TEA-1", 1)))
    assert messages(effects)["item.recorded"]["total"] == 2
    assert session.carton_view().scanned_units["TEA-1"] == 2


def test_remove_with_a_pack_code_takes_back_as_many_units_from_the_latest_scans() -> None:
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.PACKING)
    for _ in range(7):
        session.handle(Scanned(ItemCode("TEA-1", 1)))
    session.handle(Scanned(RemoveUnitCode()))
    effects = session.handle(Scanned(ItemCode("TEA-1", 6)))
    assert messages(effects)["item.removed"]["total"] == 1
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    effects = close(session, weight_report())
    assert published(effects, VERIFICATION_RESULT)[0]["outcome"] == "PASS"
    (record,) = [e.record for e in effects if isinstance(e, RecordAttempt)]
    assert record.scanned_units == {"TEA-1": 2}


def test_a_serial_scanned_unit_is_taken_back_by_its_serial_and_a_misread_disarms_remove() -> None:
    session, _ = session_with(MUST_SCAN_TEA)
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(ItemCode("TEA-1", 1, serial="S1")))
    session.handle(Scanned(RemoveUnitCode()))
    effects = session.handle(Scanned(ItemCode("TEA-1", 1)))
    assert "item.remove_serial" in messages(effects)
    session.handle(Scanned(RemoveUnitCode()))
    session.handle(Scanned(UnknownCode("???")))  # disarms
    effects = session.handle(Scanned(ItemCode("TEA-1", 1, serial="S2")))
    assert messages(effects)["item.recorded"]["total"] == 2
    session.handle(Scanned(RemoveUnitCode()))
    effects = session.handle(Scanned(ItemCode("TEA-1", 1, serial="S1")))
    assert messages(effects)["item.removed"]["total"] == 1
    effects = session.handle(Scanned(ItemCode("TEA-1", 1, serial="S1")))  # back in: no double
    assert messages(effects)["item.recorded"]["total"] == 2


RECOUNT_TEA = StationPolicy(
    rules=(SkuRule(("TEA-*",), require=frozenset({"scan"})),), recount_scan_slips=True
)


def sure_weight() -> ChannelReport:
    """The scale vouches for every unit 0.999 surely (the recount of a shortfall needs it)."""
    report = weight_report()
    return replace(report, findings=tuple(replace(f, confidence=0.9995) for f in report.findings))


def test_a_double_scan_the_sensors_agree_with_is_recounted_not_blocked() -> None:
    """Tea scanned three times for two ordered while the scale confirms the order: a REVIEW
    asking for a recount (no missing or extra line, so no missing-item event); the first tea
    scanned then sets the earlier scans aside (audited) and two scans PASS."""
    session, _ = session_with(RECOUNT_TEA)
    drive_to(session, SessionState.PACKING)
    for _ in range(3):
        session.handle(Scanned(ItemCode("TEA-1", 1)))
    effects = close(session, weight_report())
    (result,) = published(effects, VERIFICATION_RESULT)
    assert result["outcome"] == "REVIEW" and not result["missing"] and not result["extra"]
    assert [r["code"] for r in result["reasons"]] == ["scan_recount"]
    assert "Scan every unit of TEA-1 in the carton again" in result["reasons"][0]["message"]
    assert not published(effects, MISSING_DETECTED)
    assert session.carton_view().scanned_units["TEA-1"] == 3  # until the recount starts
    effects = session.handle(Scanned(ItemCode("TEA-1", 1)))
    (audit,) = [e for e in effects if isinstance(e, RecordAudit) and e.kind == "carton.recount"]
    assert audit.data["sku"] == "TEA-1" and audit.data["scans_set_aside"] == 3
    assert session.carton_view().scanned_units["TEA-1"] == 1
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    assert published(close(session, weight_report()), VERIFICATION_RESULT)[0]["outcome"] == "PASS"


def test_closing_again_before_recounting_asks_again_and_publishes_nothing_missing() -> None:
    session, _ = session_with(RECOUNT_TEA)
    drive_to(session, SessionState.PACKING)
    for _ in range(3):
        session.handle(Scanned(ItemCode("TEA-1", 1)))
    close(session, weight_report())
    effects = close(session, weight_report())
    (result,) = published(effects, VERIFICATION_RESULT)
    assert result["outcome"] == "REVIEW" and result["reasons"][0]["code"] == "scan_recount"
    assert not published(effects, MISSING_DETECTED)


def test_a_second_mismatch_after_a_recount_blocks_even_after_a_restart() -> None:
    session, clock = session_with(RECOUNT_TEA)
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(ItemCode("TEA-1", 1)))  # one of two: the scale says both are in
    (first,) = published(close(session, sure_weight()), VERIFICATION_RESULT)
    assert first["outcome"] == "REVIEW" and first["reasons"][0]["code"] == "scan_recount"
    restarted = Session(WorkflowConfig(), CATALOG, RECOUNT_TEA, clock, weigh_everything)
    restarted.restore(session.snapshot())
    restarted.handle(Scanned(ItemCode("TEA-1", 1)))  # the recount: one again
    (second,) = published(close(restarted, sure_weight()), VERIFICATION_RESULT)
    assert second["outcome"] == "BLOCK"
    assert second["missing"][0]["sku"] == "TEA-1" and second["missing"][0]["quantity"] == 1


def test_a_scan_shortfall_blocks_at_once_unless_the_scale_vouches_surely() -> None:
    for weight in (weight_report({"TEA-1": 1}), weight_report()):  # short; vouching at 0.97
        session, _ = session_with(RECOUNT_TEA)
        drive_to(session, SessionState.PACKING)
        session.handle(Scanned(ItemCode("TEA-1", 1)))
        (result,) = published(close(session, weight), VERIFICATION_RESULT)
        assert result["outcome"] == "BLOCK" and result["missing"][0]["sku"] == "TEA-1"


def test_a_recount_hold_cannot_be_released_until_the_packer_recounts_and_closes() -> None:
    """The hold names no missing line: released, a real shortfall would ship with no
    shipped-short event."""
    session, _ = session_with(RECOUNT_TEA)
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(ItemCode("TEA-1", 1)))
    close(session, sure_weight())
    assert session.override_refusal("LEAD-1") == "override.recount_pending"
    session.handle(Scanned(ItemCode("TEA-1", 1)))  # the recount: still one
    (result,) = published(close(session, sure_weight()), VERIFICATION_RESULT)
    assert result["outcome"] == "BLOCK"
    assert session.override_refusal("LEAD-1") is None  # now a release ships it short, said so


def test_a_recount_of_serials_starts_the_serials_afresh() -> None:
    session, _ = session_with(RECOUNT_TEA)
    drive_to(session, SessionState.PACKING)
    for serial in ("S1", "S2", "S3"):  # three distinct serials for two teas: a misread one
        session.handle(Scanned(ItemCode("TEA-1", 1, serial=serial)))
    close(session, weight_report())
    for serial in ("S1", "S2"):  # the same units again: not refused as repeats
        effects = session.handle(Scanned(ItemCode("TEA-1", 1, serial=serial)))
        assert "item.double_scan" not in messages(effects)
    assert published(close(session, weight_report()), VERIFICATION_RESULT)[0]["outcome"] == "PASS"
