"""Blocking the carton: the diverter follows the verdict, a faulty output turns a PASS into REVIEW,
and a PASS is withdrawn when an output fails, or the final weight after the label scan drops,
before the carton leaves."""

from __future__ import annotations

import pytest

from station.codes import BoxCode, CloseCode, LogoutCode, OrderCartonCode, ShippingLabelCode
from station.session import (
    CARTON_UNSEALED,
    LABELS_REMEMBERED,
    VERIFICATION_RESULT,
    DeviceFault,
    DeviceRecovered,
    EvidenceReady,
    FinalWeight,
    LabelGranted,
    ManifestLoaded,
    PublishEvent,
    RecordAttempt,
    RecordAudit,
    ReviewerOverride,
    Scanned,
    SessionState,
    SetDiverter,
    SetLight,
    ShowMessage,
    WeighFinal,
    WeightInfo,
)

from .drive import ORDER, drive_to, manifest, new_session, weight_report

LABEL = ShippingLabelCode("1Z999AA10123456784")
WEIGHED = WeightInfo(measured_g=1000.0, expected_g=1005.0, tolerance_g=30.0)
OUTPUT = "actuator plc"


def passed(mode: str = "enforce", **workflow):
    session, _ = new_session(mode, **workflow)
    drive_to(session, SessionState.VERIFYING)
    effects = session.handle(EvidenceReady(1, (weight_report(),), WEIGHED))
    return session, effects


def of(kind, effects):
    return [e for e in effects if isinstance(e, kind)]


def test_the_diverter_diverts_an_open_carton_and_lets_a_passed_one_through() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.IDLE)
    assert SetDiverter("exception") in session.handle(Scanned(ORDER))
    session, effects = passed()
    assert of(SetDiverter, effects) == [SetDiverter("straight")]
    assert session.awaiting_label == ("A-1", "1")


def test_a_station_in_shadow_mode_never_diverts() -> None:
    session, _ = new_session("shadow")
    drive_to(session, SessionState.IDLE)
    assert of(SetDiverter, session.handle(Scanned(ORDER))) == [SetDiverter("straight")]
    session, _ = passed("shadow")
    assert session.awaiting_label is None  # nothing to withdraw on a station on trial


def test_while_an_output_is_down_a_pass_becomes_review_and_after_it_is_back_it_passes() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    session.handle(DeviceFault(OUTPUT, "no answer from 10.0.0.9:502", output=True))
    effects = session.handle(EvidenceReady(1, (weight_report(),), WEIGHED))
    (event,) = [e for e in of(PublishEvent, effects) if e.kind == VERIFICATION_RESULT]
    assert event.data["outcome"] == "REVIEW"
    assert event.data["reasons"][0]["code"] == "output_fault"
    assert "10.0.0.9:502" in event.data["reasons"][0]["message"]
    assert session.state is SessionState.BLOCKED
    assert SetDiverter("straight") not in effects

    session.handle(DeviceRecovered(OUTPUT))
    session.handle(Scanned(CloseCode()))
    effects = session.handle(EvidenceReady(2, (weight_report(),), WEIGHED))
    assert of(RecordAttempt, effects)[0].record.verdict.passed


def test_a_scale_fault_is_not_an_output_fault() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.VERIFYING)
    session.handle(DeviceFault("scanner s1", "unplugged"))
    effects = session.handle(EvidenceReady(1, (weight_report(),), WEIGHED))
    assert of(RecordAttempt, effects)[0].record.verdict.passed


def test_an_output_failing_after_the_pass_withdraws_it_and_holds_the_carton() -> None:
    session, _ = passed()
    effects = session.handle(DeviceFault(OUTPUT, "coil 4 not set", output=True))
    kinds = [type(e).__name__ for e in effects]
    # The fault, then the withdrawal: event before its record, as for every verdict.
    assert kinds == [
        "PublishEvent",
        "ShowMessage",
        "PublishEvent",
        "RecordAttempt",
        "RecordAudit",
        "SetLight",
        "SetDiverter",
        "ShowMessage",
    ]
    withdrawn = effects[2]
    assert withdrawn.kind == VERIFICATION_RESULT and withdrawn.data["outcome"] == "REVIEW"
    assert withdrawn.data["attempt"] == 1
    assert effects[3].record.verdict.outcome.value == "REVIEW"
    assert effects[4].kind == "carton.pass_withdrawn"
    assert effects[5:7] == [SetLight("red", buzzer=True), SetDiverter("exception")]
    assert effects[7].key == "verdict.withdrawn"
    assert session.state is SessionState.BLOCKED and session.open_carton == ("A-1", "1")
    assert session.awaiting_label is None
    # A reviewer may release it like any held carton.
    released = session.handle(ReviewerOverride("LEAD-1", "scale_fault"))
    assert SetDiverter("straight") in released and session.state is SessionState.IDLE


def test_the_label_scan_ties_the_label_and_a_whole_carton_is_sealed() -> None:
    session, _ = passed()
    effects = session.handle(Scanned(LABEL))
    (audit,) = of(RecordAudit, effects)
    assert audit.kind == "carton.labelled" and audit.data["label"] == LABEL.value
    assert of(WeighFinal, effects) == [WeighFinal("A-1", "1")]
    effects = session.handle(FinalWeight("A-1", "1", 1004.0))  # the label adds a few grams
    (sealed,) = of(RecordAudit, effects)
    assert sealed.kind == "carton.sealed" and sealed.data["final_g"] == 1004.0
    assert sealed.data["label"] == LABEL.value and sealed.data["verdict_g"] == 1000.0
    assert session.awaiting_label is None
    # Sealed is sealed: a later output fault is a fault, not a withdrawal.
    later = session.handle(DeviceFault(OUTPUT, "gone", output=True))
    assert not of(RecordAttempt, later) and session.state is SessionState.IDLE


@pytest.mark.parametrize(
    ("grams", "code"), [(960.0, "final_weight_low"), (None, "final_weight_unknown")]
)
def test_a_lighter_or_unweighable_labelled_carton_loses_its_pass(grams, code) -> None:
    session, _ = passed()
    session.handle(Scanned(LABEL))
    effects = session.handle(FinalWeight("A-1", "1", grams))
    record = of(RecordAttempt, effects)[0].record
    assert record.verdict.outcome.value == "REVIEW" and record.verdict.reasons[0].code == code
    assert record.shipping_label == LABEL.value
    assert SetDiverter("exception") in effects and SetLight("red", buzzer=True) in effects
    assert session.state is SessionState.BLOCKED
    # No reviewer releases it as it is: which unit left is unknown until it is closed again, and
    # a release now would ship it short with no shipped-short event.
    assert session.override_refusal("LEAD-1") == "override.close_again"


def test_without_the_final_weight_check_the_label_scan_seals_at_once() -> None:
    session, _ = new_session(final_weight_check=False)
    drive_to(session, SessionState.VERIFYING)
    session.handle(EvidenceReady(1, (weight_report(),), WEIGHED))
    effects = session.handle(Scanned(LABEL))
    assert [a.kind for a in of(RecordAudit, effects)] == ["carton.labelled", "carton.sealed"]
    assert not of(WeighFinal, effects) and session.awaiting_label is None


def test_within_tolerance_is_not_a_drop() -> None:
    session, _ = passed()
    session.handle(Scanned(LABEL))
    effects = session.handle(FinalWeight("A-1", "1", 1000.0 - 29.0))
    assert [e.kind for e in of(RecordAudit, effects)] == ["carton.sealed"]


def test_the_next_order_ends_the_wait_and_stale_weights_are_dropped() -> None:
    session, _ = passed()
    session.handle(Scanned(OrderCartonCode("B-2", "1")))
    assert session.awaiting_label is None
    assert session.handle(FinalWeight("A-1", "1", 10.0)) == []
    assert not of(RecordAttempt, session.handle(DeviceFault(OUTPUT, "x", output=True)))


def test_a_label_scan_with_nothing_passed_is_still_a_close_attempt_without_an_order() -> None:
    session, _ = new_session()
    drive_to(session, SessionState.IDLE)
    assert session.handle(Scanned(LABEL)) == [ShowMessage("warning", "close.no_order")]


def test_a_label_printed_for_another_carton_withdraws_the_pass() -> None:
    session, _ = passed()
    session.handle(LabelGranted("B-2", "1", "1Z999AA10000000001"))  # someone else's: ignored
    session.handle(LabelGranted("A-1", "1", LABEL.value))
    effects = session.handle(Scanned(ShippingLabelCode("1Z999AA10000000002")))
    record = of(RecordAttempt, effects)[0].record
    assert record.verdict.reasons[0].code == "label_mismatch"
    assert LABEL.value in record.verdict.reasons[0].message
    assert record.shipping_label == "1Z999AA10000000002"
    assert not of(WeighFinal, effects) and session.state is SessionState.BLOCKED


def test_a_label_printed_for_another_carton_that_passed_withdraws_the_pass_naming_it() -> None:
    session, _ = passed()
    session.handle(LabelGranted("B-2", "1", "1Z999AA10000000001"))  # B-2 passed before
    effects = session.handle(Scanned(ShippingLabelCode("1Z999AA10000000001")))
    (reason,) = of(RecordAttempt, effects)[0].record.verdict.reasons
    assert reason.code == "label_mismatch" and "printed for B-2 / 1" in reason.message


def open_next_carton(session) -> None:
    """The packer moves on to carton B-2 / 1 and packs it."""
    order = OrderCartonCode("B-2", "1")
    session.handle(Scanned(order))
    session.handle(ManifestLoaded(manifest(order)))
    session.handle(Scanned(BoxCode("BOX-S")))
    assert session.open_carton == ("B-2", "1") and session.state is SessionState.PACKING


def test_the_label_of_a_carton_that_passed_does_not_close_the_next_one() -> None:
    """Close by label: the packer labels the carton that passed only once the next is open. Its
    label must not close that one and tie A-1's tracking number to B-2."""
    session, _ = passed()
    session.handle(LabelGranted("A-1", "1", LABEL.value))
    open_next_carton(session)
    effects = session.handle(Scanned(LABEL))
    assert of(ShowMessage, effects) == [
        ShowMessage(
            "warning",
            "label.other_carton",
            {"label": LABEL.value, "order_id": "A-1", "carton_id": "1"},
        )
    ]
    (seen,) = of(RecordAudit, effects)  # that label is on this carton now: on the record
    assert seen.kind == "label.other_carton" and seen.data["order_id"] == "B-2"
    assert seen.data["printed_for"] == ["A-1", "1"] and seen.data["label"] == LABEL.value
    assert session.state is SessionState.PACKING
    own = ShippingLabelCode("1Z999AA10000000003")
    session.handle(Scanned(own))  # its own label (printed without asking) still closes it
    assert session.state is SessionState.VERIFYING


def test_a_station_in_shadow_mode_closes_with_another_cartons_label_and_records_it() -> None:
    session, _ = new_session("shadow")
    drive_to(session, SessionState.IDLE)
    session.handle(LabelGranted("A-1", "1", LABEL.value))  # shadow: every request is granted
    open_next_carton(session)
    effects = session.handle(Scanned(LABEL))
    assert [a.kind for a in of(RecordAudit, effects)] == ["label.other_carton"]
    assert session.state is SessionState.VERIFYING  # a station on trial stops nothing


def test_a_label_granted_to_the_carton_stays_its_own_when_granted_again_to_another() -> None:
    """A tracking number granted twice (a retry naming the wrong carton, a master number of a
    multi-carton order): the carton it was granted to may still tie it."""
    session, _ = passed()
    session.handle(LabelGranted("A-1", "1", LABEL.value))
    session.handle(LabelGranted("B-2", "1", LABEL.value))
    effects = session.handle(Scanned(LABEL))
    assert of(WeighFinal, effects) == [WeighFinal("A-1", "1")]


def test_the_cartons_labels_were_printed_for_survive_a_restart_and_the_oldest_are_forgotten() -> (
    None
):
    session, _ = passed()
    session.handle(LabelGranted("A-1", "1", LABEL.value))
    open_next_carton(session)
    restarted, _ = new_session()
    restarted.restore(session.snapshot())
    assert of(ShowMessage, restarted.handle(Scanned(LABEL)))[0].key == "label.other_carton"

    for n in range(LABELS_REMEMBERED):  # a long day of labels for other cartons
        restarted.handle(LabelGranted(f"C-{n}", "1", f"1Z999AA1{n:010d}"))
    restarted.handle(Scanned(LABEL))  # A-1's is forgotten: a close attempt as before
    assert restarted.state is SessionState.VERIFYING


def test_the_label_granted_is_the_label_that_ties() -> None:
    session, _ = passed()
    session.handle(LabelGranted("A-1", "1", LABEL.value))
    effects = session.handle(Scanned(LABEL))
    assert of(WeighFinal, effects) == [WeighFinal("A-1", "1")]


@pytest.mark.parametrize(
    ("leave", "why"),
    [
        (Scanned(OrderCartonCode("B-2", "1")), "next_order"),
        (Scanned(LogoutCode()), "logout"),
    ],
)
def test_a_passed_carton_leaving_without_its_label_scan_is_audited_unsealed(leave, why) -> None:
    """No label scan, no final weight: the interlock wants a reviewer for its labels now."""
    session, _ = passed()
    [unsealed] = [e for e in of(RecordAudit, session.handle(leave)) if e.kind == CARTON_UNSEALED]
    assert unsealed.data == {"order_id": "A-1", "carton_id": "1", "why": why}
    assert session.awaiting_label is None


def test_a_sealed_carton_leaves_without_an_unsealed_audit() -> None:
    session, _ = passed()
    session.handle(Scanned(LABEL))
    session.handle(FinalWeight("A-1", "1", 1000.0))
    effects = session.handle(Scanned(OrderCartonCode("B-2", "1")))
    assert CARTON_UNSEALED not in [e.kind for e in of(RecordAudit, effects)]


def test_no_unsealed_audit_where_the_station_checks_no_final_weight() -> None:
    """Labels go on elsewhere (`final_weight_check = false`): moving on skips nothing."""
    session, _ = passed(final_weight_check=False)
    effects = session.handle(Scanned(OrderCartonCode("B-2", "1")))
    assert CARTON_UNSEALED not in [e.kind for e in of(RecordAudit, effects)]


def test_no_unsealed_audit_for_a_carton_closed_by_its_label() -> None:
    """The label was on (and scanned) before the verdict: moving on skips nothing."""
    session, _ = new_session()
    drive_to(session, SessionState.PACKING)
    session.handle(Scanned(LABEL))
    assert session.state is SessionState.VERIFYING
    session.handle(EvidenceReady(1, (weight_report(),), WEIGHED))
    effects = session.handle(Scanned(OrderCartonCode("B-2", "1")))
    assert CARTON_UNSEALED not in [e.kind for e in of(RecordAudit, effects)]
