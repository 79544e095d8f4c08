"""A must-scan SKU's scan count off the order while the sensors agree with the order: held for a
recount of that SKU (a double scan, a unit put in unscanned), not blocked; a shortfall only where
a sensor vouches the units are there; a second mismatch, a SKU not on the order or any sensor
objecting blocks (VerificationPolicy.recount_scan_slips)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from station.verification import (
    SCAN_RECOUNT,
    ChannelReport,
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    Reason,
    SkuFinding,
    VerificationPolicy,
)

POLICY = VerificationPolicy(
    required_channels=frozenset({"weight"}),
    corroborate=frozenset({"insertion"}),
    recount_scan_slips=True,
)
EXPECTED = {"EARRING": 2, "MUG": 1}  # earrings: lighter than the weight's tolerance


def weight(earring: FindingStatus = FindingStatus.UNCERTAIN, power: float = 0.3) -> ChannelReport:
    return ChannelReport(
        "weight",
        ChannelState.OK,
        (
            SkuFinding("EARRING", earring, 2, None, power),
            SkuFinding("MUG", FindingStatus.CONFIRMED, 1, 1, 0.9995),
        ),
    )


def scans(earrings: int, other: dict[str, int] | None = None) -> ChannelReport:
    status = (
        FindingStatus.CONFIRMED
        if earrings == 2
        else FindingStatus.EXTRA
        if earrings > 2
        else FindingStatus.MISSING
    )
    findings = [SkuFinding("EARRING", status, 2, earrings, 1.0, f"{earrings} of 2 scanned")]
    findings += [SkuFinding(s, FindingStatus.EXTRA, 0, n, 1.0) for s, n in (other or {}).items()]
    return ChannelReport("scan", ChannelState.OK, tuple(findings))


def vision(discrepancy: Discrepancy = Discrepancy.NONE) -> ChannelReport:
    uncertain = FindingStatus.UNCERTAIN  # the count agrees but proves no identity
    return ChannelReport(
        "vision",
        ChannelState.OK,
        (SkuFinding("EARRING", uncertain, 2, 2, 0.95), SkuFinding("MUG", uncertain, 1, 1, 0.95)),
        discrepancy=discrepancy,
    )


def codes(verdict) -> list[str]:
    return [r.code for r in verdict.reasons]


def test_a_double_scan_the_sensors_agree_with_is_held_for_a_recount() -> None:
    verdict = POLICY.decide(EXPECTED, [weight(), scans(3)])
    assert verdict.outcome is Outcome.REVIEW and codes(verdict) == [SCAN_RECOUNT]
    assert not verdict.missing and not verdict.extra  # nothing is published as missing
    (reason,) = verdict.reasons
    assert reason.sku == "EARRING" and reason.channel == "scan"
    assert "3 of 2 scanned" in reason.message and "Scan every unit of EARRING" in reason.message


def test_a_recounted_sku_or_a_station_without_recounts_blocks() -> None:
    recounted = VerificationPolicy(
        required_channels=frozenset({"weight"}),
        recount_scan_slips=True,
        recounted=frozenset({"EARRING"}),
    )
    without = VerificationPolicy(required_channels=frozenset({"weight"}))
    for policy in (recounted, without):
        verdict = policy.decide(EXPECTED, [weight(), scans(3)])
        assert verdict.outcome is Outcome.BLOCK
        assert [line.sku for line in verdict.extra] == ["EARRING"]


def test_a_shortfall_only_the_scans_can_see_blocks() -> None:
    """The earrings are must-scan because no sensor notices one missing: their scan count is
    the only catch, so a shortfall stands."""
    verdict = POLICY.decide(EXPECTED, [weight(), scans(1)])
    assert verdict.outcome is Outcome.BLOCK
    assert [(line.sku, line.quantity) for line in verdict.missing] == [("EARRING", 1)]


def test_a_shortfall_is_recounted_only_where_the_scale_vouches_for_every_unit() -> None:
    """A must-scan SKU the scale does weigh (a high-value or look-alike rule), 0.999 surely:
    the unit scanned short is in the carton. RFID (a tag beside the box reads), a count that
    agrees (it proves no identity) or a scale less sure do not vouch: the scans' count stands."""
    sure = weight(FindingStatus.CONFIRMED, 0.9995)
    verdict = POLICY.decide(EXPECTED, [sure, scans(1)])
    assert verdict.outcome is Outcome.REVIEW and codes(verdict) == [SCAN_RECOUNT]
    assert "and the scale weighs them all" in verdict.reasons[0].message
    tags = ChannelReport(
        "rfid",
        ChannelState.OK,
        (
            SkuFinding("EARRING", FindingStatus.CONFIRMED, 2, 2, 0.98),
            SkuFinding("MUG", FindingStatus.CONFIRMED, 1, 1, 0.98),
        ),
    )
    for sensors in (
        [weight(), tags],
        [weight(), vision()],
        [weight(FindingStatus.CONFIRMED, 0.92)],
    ):
        verdict = POLICY.decide(EXPECTED, [*sensors, scans(1)])
        assert verdict.outcome is Outcome.BLOCK, sensors


def test_a_channel_holding_the_carton_for_a_look_stops_a_recount() -> None:
    """A tag of a unit already shipped (RFID's review list): the carton is blocked on the scans
    as before, so the reviewer sees every reason."""
    shipped = ChannelReport(
        "rfid",
        ChannelState.OK,
        review=(Reason("rfid_already_shipped", "a tag of a unit already shipped", "rfid"),),
    )
    assert POLICY.decide(EXPECTED, [weight(), shipped, scans(3)]).outcome is Outcome.BLOCK


def test_a_unit_not_on_the_order_or_a_sensor_objecting_blocks() -> None:
    objections = [
        [weight(), scans(3, {"EARRING-GOLD": 1})],  # a look-alike scanned in too
        [weight(), vision(Discrepancy.SURPLUS), scans(3)],
        [weight(), vision(Discrepancy.DEFICIT), scans(1)],
    ]
    for reports in objections:
        assert POLICY.decide(EXPECTED, reports).outcome is Outcome.BLOCK


findings = st.builds(
    SkuFinding,
    st.sampled_from(["EARRING", "MUG", "OTHER"]),
    st.sampled_from(list(FindingStatus)),
    st.integers(0, 3),
    st.none() | st.integers(0, 4),
    st.floats(0, 1),
)
reports = st.builds(
    ChannelReport,
    st.sampled_from(["weight", "rfid", "vision", "insertion", "scan"]),
    st.sampled_from(list(ChannelState)),
    st.lists(findings, max_size=4).map(tuple),
    st.sampled_from(list(Discrepancy)),
)


@given(st.lists(reports, max_size=5), st.frozensets(st.sampled_from(["EARRING", "MUG"])))
def test_a_recount_is_asked_only_when_the_scans_alone_stand_in_the_way(
    generated: list[ChannelReport], recounted: frozenset[str]
) -> None:
    """Whatever the evidence: a recount hold names no missing or extra line, only SKUs on the
    order and not yet recounted, and never comes when the carton would otherwise PASS, or when
    any channel but the scans sees something missing, extra or off."""
    policy = VerificationPolicy(
        required_channels=frozenset(),
        corroborate=frozenset({"insertion"}),  # as at every station
        recount_scan_slips=True,
        recounted=recounted,
    )
    verdict = policy.decide(EXPECTED, generated)
    if SCAN_RECOUNT not in codes(verdict):
        return
    assert verdict.outcome is Outcome.REVIEW and not verdict.missing and not verdict.extra
    assert all(r.code == SCAN_RECOUNT for r in verdict.reasons)
    assert {r.sku for r in verdict.reasons} <= set(EXPECTED) - recounted
    without = replace(policy, recount_scan_slips=False)
    assert without.decide(EXPECTED, generated).outcome is Outcome.BLOCK
    for report in generated:  # (a count another sensor refutes is set aside first)
        if report.channel not in ("scan", "vision"):
            assert report.discrepancy is Discrepancy.NONE
