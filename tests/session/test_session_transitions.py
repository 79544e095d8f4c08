"""Every state x every input: the next state is written down, nothing is implicit."""

from __future__ import annotations

from typing import get_args

import pytest

from station.carton_policy import Fallback
from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    ItemCode,
    LogoutCode,
    OrderCartonCode,
    RemoveUnitCode,
    ScannedCode,
    ShippingLabelCode,
    UnknownCode,
    WeighUnitCode,
)
from station.session import (
    DegradedModeEnded,
    DegradedModeRequested,
    DeviceFault,
    DeviceRecovered,
    EvidenceReady,
    FetchManifest,
    FinalWeight,
    LabelGranted,
    ManifestChanged,
    ManifestLoaded,
    ManifestRefused,
    ReviewerOverride,
    Scanned,
    SessionInput,
    SessionState,
    ShowMessage,
    Tick,
    WeightCaptured,
)

from .drive import ORDER, PACKER, drive_to, manifest, new_session, weight_report

LO, ID, LD, AB, PK, VF, BL, WG = (
    SessionState.LOGGED_OUT,
    SessionState.IDLE,
    SessionState.LOADING,
    SessionState.AWAITING_BOX,
    SessionState.PACKING,
    SessionState.VERIFYING,
    SessionState.BLOCKED,
    SessionState.WEIGHING,
)
OTHER = OrderCartonCode("B-2", "1")

INPUTS = {
    "badge_same": lambda now: Scanned(BadgeCode(PACKER)),
    "badge_other": lambda now: Scanned(BadgeCode("P2")),
    "order_same": lambda now: Scanned(ORDER),
    "order_other": lambda now: Scanned(OTHER),
    "box": lambda now: Scanned(BoxCode("BOX-M")),
    "item": lambda now: Scanned(ItemCode("TEA-1", 1)),
    "close": lambda now: Scanned(CloseCode()),
    "label": lambda now: Scanned(ShippingLabelCode("1Z999AA10123456784")),
    "logout": lambda now: Scanned(LogoutCode()),
    "weigh_unit": lambda now: Scanned(WeighUnitCode()),
    "remove_unit": lambda now: Scanned(RemoveUnitCode()),
    "unknown": lambda now: Scanned(UnknownCode("???")),
    "manifest_loaded": lambda now: ManifestLoaded(manifest()),
    "manifest_refused": lambda now: ManifestRefused("A-1", "1", "not_found", "no such order"),
    "evidence_current": lambda now: EvidenceReady(1, (weight_report(),)),
    "evidence_stale": lambda now: EvidenceReady(0, (weight_report(),)),
    "cancelled": lambda now: ManifestChanged("A-1", "1", "cancelled", "customer cancelled"),
    "superseded": lambda now: ManifestChanged("A-1", "1", "superseded", "line added"),
    "tick_early": lambda now: Tick(now + 599),
    "tick_expired": lambda now: Tick(now + 600),
    "device_fault": lambda now: DeviceFault("scale", "no data"),
    "device_recovered": lambda now: DeviceRecovered("scale"),
    "override_reviewer": lambda now: ReviewerOverride("LEAD-1", "reissue_approved"),
    "override_packer": lambda now: ReviewerOverride(PACKER, "reissue_approved"),
    "degraded_requested": lambda now: DegradedModeRequested(
        Fallback.SCAN_FOR_RFID, "LEAD-1", "reader_down", 600
    ),
    "degraded_ended": lambda now: DegradedModeEnded("LEAD-1"),
    # No capture was asked for: a stale answer (the latest one: tests/session/test_weigh_unit.py).
    "weight_captured": lambda now: WeightCaptured(1, 120.0, 0.5),
    # No PASS waits for its label here (that wait: tests/session/test_label_interlock.py).
    "final_weight": lambda now: FinalWeight("A-1", "1", 500.0),
    "label_granted": lambda now: LabelGranted("A-1", "1", "1Z999AA10123456784"),
}

# fmt: off
#                       LO  ID  LD  AB  PK  VF  BL  WG
NEXT = {
    "badge_same":         (ID, ID, LD, AB, PK, VF, BL, WG),
    "badge_other":        (ID, ID, LD, AB, PK, VF, BL, WG),
    "order_same":         (LO, LD, LD, AB, PK, VF, BL, LD),
    "order_other":        (LO, LD, LD, LD, LD, VF, BL, LD),
    "box":                (LO, ID, LD, PK, PK, VF, BL, WG),
    "item":               (LO, ID, LD, AB, PK, VF, BL, WG),
    "close":              (LO, ID, LD, AB, VF, VF, VF, ID),
    "label":              (LO, ID, LD, AB, VF, VF, VF, WG),
    "logout":             (LO, LO, LO, LO, LO, LO, LO, LO),
    "weigh_unit":         (LO, WG, LD, AB, PK, VF, BL, ID),
    "remove_unit":        (LO, ID, LD, AB, PK, VF, BL, WG),
    "unknown":            (LO, ID, LD, AB, PK, VF, BL, WG),
    "manifest_loaded":    (LO, ID, AB, AB, PK, VF, BL, WG),
    "manifest_refused":   (LO, ID, ID, AB, PK, VF, BL, WG),
    "evidence_current":   (LO, ID, LD, AB, PK, ID, BL, WG),
    "evidence_stale":     (LO, ID, LD, AB, PK, VF, BL, WG),
    "cancelled":          (LO, ID, ID, ID, ID, ID, ID, WG),
    "superseded":         (LO, ID, LD, LD, LD, LD, LD, WG),
    "tick_early":         (LO, ID, LD, AB, PK, VF, BL, WG),
    "tick_expired":       (LO, LO, LO, LO, LO, LO, LO, LO),
    "device_fault":       (LO, ID, LD, AB, PK, VF, BL, WG),
    "device_recovered":   (LO, ID, LD, AB, PK, VF, BL, WG),
    "override_reviewer":  (LO, ID, LD, AB, PK, VF, ID, WG),
    "override_packer":    (LO, ID, LD, AB, PK, VF, BL, WG),
    "degraded_requested": (LO, ID, LD, AB, PK, VF, BL, WG),
    "degraded_ended":     (LO, ID, LD, AB, PK, VF, BL, WG),
    "weight_captured":    (LO, ID, LD, AB, PK, VF, BL, WG),
    "final_weight":       (LO, ID, LD, AB, PK, VF, BL, WG),
    "label_granted":      (LO, ID, LD, AB, PK, VF, BL, WG),
}
# fmt: on
STATES = (LO, ID, LD, AB, PK, VF, BL, WG)
# Inputs from the manifest source and the evidence collector that do not fit the state are stale
# and dropped without a word; everything the packer does gets an answer.
SILENT_WHEN_UNCHANGED = {
    "manifest_loaded",
    "manifest_refused",
    "evidence_current",
    "evidence_stale",
    "cancelled",
    "superseded",
    "tick_early",
    "weight_captured",
    "final_weight",
    "label_granted",
}


def test_the_table_covers_every_input_kind():
    assert set(NEXT) == set(INPUTS)
    assert set(STATES) == set(SessionState)
    inputs = [make(0.0) for make in INPUTS.values()]
    assert {type(i) for i in inputs} == set(get_args(SessionInput))
    assert {type(i.code) for i in inputs if isinstance(i, Scanned)} == set(get_args(ScannedCode))


@pytest.mark.parametrize("state", STATES, ids=str)
@pytest.mark.parametrize("name", sorted(INPUTS))
def test_transition(state, name):
    session, clock = new_session(timeout_s=600)
    drive_to(session, state)
    before = session.state
    effects = session.handle(INPUTS[name](clock.monotonic()))
    expected = NEXT[name][STATES.index(state)]
    assert session.state is expected
    if isinstance(INPUTS[name](0), Scanned):
        assert any(isinstance(e, ShowMessage) for e in effects), "the packer is always told"
    elif name in SILENT_WHEN_UNCHANGED and expected is before:
        assert effects == [] or (name == "superseded" and before is LD)
    if expected is LD and before is not LD:
        assert any(isinstance(e, FetchManifest) for e in effects)
    if expected is LO:
        assert session.packer is None and session.open_carton is None
    if expected is ID:
        assert session.open_carton is None
