"""The per-carton plan: which channel would notice which SKU missing, and what must be scanned."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from station.carton_policy import DegradedMode, Fallback, SkuRule, StationPolicy
from station.domain import Catalog, CatalogItem
from station.scan_check import evaluate_scans
from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Outcome,
    SkuFinding,
)

CATALOG = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Mug", unit_weight_g=350),
        CatalogItem(sku="CARD", name="Gift card", unit_weight_g=4),
        CatalogItem(sku="CABLE", name="USB cable", unit_weight_g=30, rfid_tagged=True),
        CatalogItem(sku="PHONE", name="Phone", unit_weight_g=180, serial_controlled=True),
    ]
)
EXPECTED = {"MUG": 1, "CARD": 1, "CABLE": 1, "PHONE": 1}
# What the weight would reveal in a carton of these: the mug and phone, not the card or cable.
POWER = {"MUG": 1.0, "CARD": 0.0, "CABLE": 0.2, "PHONE": 0.99}
NOW = datetime(2026, 11, 26, 12, 0, tzinfo=UTC)


def coverage(plan) -> dict[str, tuple[str, ...]]:
    return {c.sku: c.channels for c in plan.coverage}


def test_weight_only_station_names_what_the_weight_cannot_prove() -> None:
    plan = StationPolicy().plan(EXPECTED, CATALOG, POWER)
    assert coverage(plan) == {"CABLE": (), "CARD": (), "MUG": ("weight",), "PHONE": ("weight",)}
    assert plan.uncovered == ("CABLE", "CARD")
    assert plan.must_scan == frozenset()
    assert {c.sku: c.detectability for c in plan.coverage}["CARD"] == "none"


def test_rfid_covers_tagged_units_and_the_rest_are_scanned_when_configured() -> None:
    policy = StationPolicy(channels=frozenset({"weight", "rfid"}), uncovered_action="scan")
    plan = policy.plan(EXPECTED, CATALOG, POWER)
    assert coverage(plan)["CABLE"] == ("rfid",)
    assert plan.must_scan == {"CARD"}
    assert plan.policy.sku_required == {"CARD": frozenset({"scan"})}


def test_rfid_that_needs_a_second_channel_leaves_its_units_uncovered() -> None:
    policy = StationPolicy(
        channels=frozenset({"weight", "rfid"}),
        corroborate=frozenset({"rfid"}),
        uncovered_action="scan",
    )
    plan = policy.plan(EXPECTED, CATALOG, POWER)
    assert "CABLE" in plan.uncovered and plan.must_scan == {"CABLE", "CARD"}


def test_rules_and_serial_control_demand_unit_scans() -> None:
    policy = StationPolicy(
        rules=(SkuRule(("MU*",), require=frozenset({"scan"})),), scan_serial_controlled=True
    )
    plan = policy.plan(EXPECTED, CATALOG, POWER)
    assert plan.must_scan == {"MUG", "PHONE"}
    assert coverage(plan)["MUG"] == ("weight", "scan")


def test_an_ignored_channel_covers_nothing() -> None:
    policy = StationPolicy(rules=(SkuRule(("MUG",), ignore=frozenset({"weight"})),))
    plan = policy.plan(EXPECTED, CATALOG, POWER)
    assert coverage(plan)["MUG"] == () and "MUG" in plan.uncovered
    assert plan.policy.sku_ignored == {"MUG": frozenset({"weight"})}


def degraded(fallback: Fallback) -> DegradedMode:
    return DegradedMode(fallback, "R1", "scale_down", NOW, NOW + timedelta(hours=1), 3600.0)


def test_scan_for_weight_drops_the_weight_requirement_and_scans_everything() -> None:
    plan = StationPolicy().plan(EXPECTED, CATALOG, POWER, degraded(Fallback.SCAN_FOR_WEIGHT))
    assert plan.policy.required_channels == frozenset()
    assert plan.must_scan == set(EXPECTED)
    assert plan.degraded is not None and plan.degraded.flag()["authorised_by"] == "R1"


def test_scan_for_rfid_scans_only_what_rfid_covered() -> None:
    policy = StationPolicy(channels=frozenset({"weight", "rfid"}))
    plan = policy.plan(EXPECTED, CATALOG, POWER, degraded(Fallback.SCAN_FOR_RFID))
    assert plan.must_scan == {"CABLE"}


def scan_finding(sku: str, status: FindingStatus) -> SkuFinding:
    return SkuFinding(sku, status, 1, 1 if status is FindingStatus.CONFIRMED else 0, 1.0)


@given(st.sets(st.sampled_from(sorted(EXPECTED))), st.sampled_from(Fallback))
def test_in_degraded_mode_a_unit_not_scanned_never_passes(scanned, fallback) -> None:
    """Whatever was scanned, a SKU the fallback demands a scan for and that was not scanned
    keeps the carton from PASS, even with every other channel confirming everything."""
    policy = StationPolicy(channels=frozenset({"weight", "rfid"}))
    plan = policy.plan(EXPECTED, CATALOG, POWER, degraded(fallback))
    confirm_all = tuple(scan_finding(s, FindingStatus.CONFIRMED) for s in EXPECTED)
    sensors = [ChannelReport(c, ChannelState.OK, confirm_all) for c in ("weight", "rfid")]
    scans = evaluate_scans(EXPECTED, dict.fromkeys(scanned, 1), plan.must_scan)
    sensors += [scans] if scans else []
    verdict = plan.policy.decide(EXPECTED, sensors)
    assert (verdict.outcome is Outcome.PASS) == (plan.must_scan <= scanned)


def test_a_sku_only_the_camera_would_miss_is_still_unproven_and_scanned() -> None:
    """Vision notices a unit missing (the count drops) but proves no SKU: a light untagged SKU
    it covers still gets the uncovered action."""
    policy = StationPolicy(channels=frozenset({"weight", "vision"}), uncovered_action="scan")
    plan = policy.plan(EXPECTED, CATALOG, POWER)
    assert "vision" in {c.sku: c.channels for c in plan.coverage}["CARD"]
    assert "CARD" in plan.uncovered and "CARD" in plan.must_scan
