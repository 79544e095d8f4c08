"""Builders that walk a Session into each state, shared by the session tests."""

from __future__ import annotations

from station.carton_policy import StationPolicy
from station.clock import ManualClock
from station.codes import BadgeCode, BoxCode, CloseCode, OrderCartonCode, WeighUnitCode
from station.domain import Manifest, ManifestLine, expected_units
from station.session import (
    CollectEvidence,
    EvidenceReady,
    ManifestLoaded,
    Scanned,
    Session,
    SessionState,
    WorkflowConfig,
)
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    SkuFinding,
)

from .conftest import make_catalog

PACKER = "P1"
ORDER = OrderCartonCode("A-1", "1")
CATALOG = make_catalog()


def manifest(order: OrderCartonCode = ORDER, version: int = 1, **fields) -> Manifest:
    lines = (
        ManifestLine(line_id="1", sku="MUG-1", quantity=1),
        ManifestLine(line_id="2", sku="TEA-1", quantity=2),
    )
    defaults = dict(picker_id="PICK-7", tote_id="T-9", wave_id="W-3", box_code="BOX-M")
    return Manifest(
        order_id=order.order_id,
        carton_id=order.carton_id,
        version=version,
        lines=lines,
        **(defaults | fields),
    )


def weight_report(short: dict[str, int] | None = None, state=ChannelState.OK) -> ChannelReport:
    """The weight channel's report for `manifest()`: every SKU confirmed unless listed in
    `short` (SKU -> units missing)."""
    short = short or {}
    findings = []
    for sku, expected in expected_units(manifest(), CATALOG).items():
        missing = short.get(sku, 0)
        status = FindingStatus.MISSING if missing else FindingStatus.CONFIRMED
        findings.append(SkuFinding(sku, status, expected, expected - missing, confidence=0.97))
    return ChannelReport("weight", state, tuple(findings))


def new_session(
    mode: str = "enforce", close_by: str = "either", timeout_s: float = 600.0, **workflow
) -> tuple[Session, ManualClock]:
    clock = ManualClock()
    config = WorkflowConfig(
        mode=mode, close_by=close_by, inactivity_timeout_s=timeout_s, **workflow
    )
    return Session(config, CATALOG, StationPolicy(), clock, weigh_everything), clock


def weigh_everything(expected, box) -> dict[str, float]:
    """Every unit of the test catalog is far heavier than the weight tolerance."""
    return dict.fromkeys(expected, 0.99)


# The scripted way into each state, each step building on the previous one.
_PATH = [
    (SessionState.IDLE, Scanned(BadgeCode(PACKER))),
    (SessionState.LOADING, Scanned(ORDER)),
    (SessionState.AWAITING_BOX, ManifestLoaded(manifest())),
    (SessionState.PACKING, Scanned(BoxCode("BOX-S"))),
    (SessionState.VERIFYING, Scanned(CloseCode())),
    (SessionState.BLOCKED, EvidenceReady(1, (weight_report({"TEA-1": 1}),))),
]


def drive_to(session: Session, target: SessionState) -> None:
    if target is SessionState.WEIGHING:  # a branch off IDLE, not a step of the packing path
        drive_to(session, SessionState.IDLE)
        session.handle(Scanned(WeighUnitCode()))
        assert session.state is target
        return
    for state, step in _PATH:
        if session.state is target:
            return
        session.handle(step)
        assert session.state is state, f"expected {state} after {step}, got {session.state}"
    assert session.state is target


def collect_attempt(effects) -> int:
    (collect,) = [e for e in effects if isinstance(e, CollectEvidence)]
    return collect.attempt
