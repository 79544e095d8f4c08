"""Every state x every input: the next state is written down, nothing is implicit."""

from __future__ import annotations

import pytest

from station.codes import (
    BadgeCode,
    BoxCode,
    CloseCode,
    ItemCode,
    LogoutCode,
    OrderCartonCode,
    ShippingLabelCode,
    UnknownCode,
)
from station.session import (
    DeviceFault,
    DeviceRecovered,
    EvidenceReady,
    FetchManifest,
    ManifestChanged,
    ManifestLoaded,
    ManifestRefused,
    ReviewerOverride,
    Scanned,
    SessionState,
    ShowMessage,
    Tick,
)

from .drive import ORDER, PACKER, drive_to, manifest, new_session, weight_report

LO, ID, LD, AB, PK, VF, BL = (
    SessionState.LOGGED_OUT,
    SessionState.IDLE,
    SessionState.LOADING,
    SessionState.AWAITING_BOX,
    SessionState.PACKING,
    SessionState.VERIFYING,
    SessionState.BLOCKED,
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
}

# fmt: off
#                     LO  ID  LD  AB  PK  VF  BL
NEXT = {
    "badge_same":       (ID, ID, LD, AB, PK, VF, BL),
    "badge_other":      (ID, ID, LD, AB, PK, VF, BL),
    "order_same":       (LO, LD, LD, AB, PK, VF, BL),
    "order_other":      (LO, LD, LD, LD, LD, VF, BL),
    "box":              (LO, ID, LD, PK, PK, VF, BL),
    "item":             (LO, ID, LD, AB, PK, VF, BL),
    "close":            (LO, ID, LD, AB, VF, VF, VF),
    "label":            (LO, ID, LD, AB, VF, VF, VF),
    "logout":           (LO, LO, LO, LO, LO, LO, LO),
    "unknown":          (LO, ID, LD, AB, PK, VF, BL),
    "manifest_loaded":  (LO, ID, AB, AB, PK, VF, BL),
    "manifest_refused": (LO, ID, ID, AB, PK, VF, BL),
    "evidence_current": (LO, ID, LD, AB, PK, ID, BL),
    "evidence_stale":   (LO, ID, LD, AB, PK, VF, BL),
    "cancelled":        (LO, ID, ID, ID, ID, ID, ID),
    "superseded":       (LO, ID, LD, LD, LD, LD, LD),
    "tick_early":       (LO, ID, LD, AB, PK, VF, BL),
    "tick_expired":     (LO, LO, LO, LO, LO, LO, LO),
    "device_fault":     (LO, ID, LD, AB, PK, VF, BL),
    "device_recovered": (LO, ID, LD, AB, PK, VF, BL),
    "override_reviewer":(LO, ID, LD, AB, PK, VF, ID),
    "override_packer":  (LO, ID, LD, AB, PK, VF, BL),
}
# fmt: on
STATES = (LO, ID, LD, AB, PK, VF, BL)
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
}


def test_the_table_covers_every_input_kind():
    assert set(NEXT) == set(INPUTS)


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
