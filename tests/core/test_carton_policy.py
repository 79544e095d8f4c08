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


# Look-alikes: a T-shirt in two sizes 6% apart (the weight tells them apart in a light carton),
# two colours of the same cable (tagged), two colours of socks (untagged, same weight).
LOOKALIKES = Catalog.from_lists(
    [
        CatalogItem(sku="TEE-M", name="T-shirt M", unit_weight_g=250, lookalike_group="TEE"),
        CatalogItem(sku="TEE-L", name="T-shirt L", unit_weight_g=265, lookalike_group="TEE"),
        CatalogItem(
            sku="CABLE-W",
            name="Cable white",
            unit_weight_g=30,
            rfid_tagged=True,
            lookalike_group="CABLE",
        ),
        CatalogItem(
            sku="CABLE-B",
            name="Cable black",
            unit_weight_g=30,
            rfid_tagged=True,
            lookalike_group="CABLE",
        ),
        CatalogItem(sku="SOCK-R", name="Socks red", unit_weight_g=60, lookalike_group="SOCK"),
        CatalogItem(sku="SOCK-B", name="Socks blue", unit_weight_g=60, lookalike_group="SOCK"),
        CatalogItem(sku="MUG", name="Mug", unit_weight_g=350),
    ]
)
ORDER = {"TEE-M": 1, "CABLE-W": 1, "SOCK-R": 1, "MUG": 1}
ORDER_POWER = dict.fromkeys(ORDER, 1.0)
# The weight tells the T-shirt from its other size, not the socks from their other colour.
ORDER_LOOKALIKE_POWER = {"TEE-M": 0.95, "CABLE-W": 0.0, "SOCK-R": 0.0}


def told_by(plan) -> dict[str, tuple[str, ...]]:
    return {c.sku: c.lookalikes_told_by for c in plan.coverage}


def test_the_plan_names_the_channels_that_tell_look_alikes_apart() -> None:
    policy = StationPolicy(channels=frozenset({"weight", "rfid", "vision"}))
    plan = policy.plan(ORDER, LOOKALIKES, ORDER_POWER, lookalike_power=ORDER_LOOKALIKE_POWER)
    assert told_by(plan) == {"TEE-M": ("weight",), "CABLE-W": ("rfid",), "SOCK-R": (), "MUG": ()}
    # The camera counts a look-alike as one item too: it tells nothing apart.
    assert plan.lookalikes_unproven == ("SOCK-R",)
    assert plan.must_scan == frozenset()


def test_without_the_weights_power_over_look_alikes_the_weight_tells_none_apart() -> None:
    plan = StationPolicy().plan(ORDER, LOOKALIKES, ORDER_POWER)
    assert plan.lookalikes_unproven == ("CABLE-W", "SOCK-R", "TEE-M")


def test_look_alikes_no_channel_tells_apart_are_scanned_when_configured() -> None:
    policy = StationPolicy(channels=frozenset({"weight", "rfid"}), lookalike_action="scan")
    plan = policy.plan(ORDER, LOOKALIKES, ORDER_POWER, lookalike_power=ORDER_LOOKALIKE_POWER)
    assert plan.must_scan == {"SOCK-R"} and plan.lookalikes_unproven == ()
    assert told_by(plan)["SOCK-R"] == ("scan",)
    assert plan.policy.sku_required == {"SOCK-R": frozenset({"scan"})}


def test_a_sku_scanned_anyway_has_its_look_alikes_told_apart_by_the_scan() -> None:
    policy = StationPolicy(rules=(SkuRule(("SOCK-*",), require=frozenset({"scan"})),))
    plan = policy.plan(ORDER, LOOKALIKES, ORDER_POWER, lookalike_power=ORDER_LOOKALIKE_POWER)
    assert told_by(plan)["SOCK-R"] == ("scan",) and "SOCK-R" not in plan.lookalikes_unproven


def test_an_ignored_rfid_tells_no_look_alike_apart() -> None:
    policy = StationPolicy(
        channels=frozenset({"weight", "rfid"}),
        rules=(SkuRule(("CABLE-*",), ignore=frozenset({"rfid"})),),
    )
    plan = policy.plan(ORDER, LOOKALIKES, ORDER_POWER, lookalike_power=ORDER_LOOKALIKE_POWER)
    assert "CABLE-W" in plan.lookalikes_unproven


def test_rfid_tells_look_alikes_apart_only_when_they_are_all_tagged() -> None:
    """An untagged look-alike in a tagged SKU's place reads as the SKU's tag not answering,
    which the scale (same weight) and a scan would settle: RFID does not tell them apart."""
    untagged = LOOKALIKES.items["CABLE-B"].model_copy(update={"rfid_tagged": False})
    catalog = Catalog.from_lists([*LOOKALIKES.items.values(), untagged])
    policy = StationPolicy(channels=frozenset({"weight", "rfid"}))
    plan = policy.plan(ORDER, catalog, ORDER_POWER, lookalike_power=ORDER_LOOKALIKE_POWER)
    assert told_by(plan)["CABLE-W"] == () and "CABLE-W" in plan.lookalikes_unproven
