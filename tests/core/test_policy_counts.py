"""A class-agnostic count's deficit (vision) is set aside only when other channels vouch, more
surely than the count, for every SKU the count could have lost; its surplus only when they vouch
so for the whole carton and see nothing extra."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from station.verification import (
    ChannelReport,
    ChannelState,
    Discrepancy,
    Explanation,
    FindingStatus,
    Outcome,
    Reason,
    SkuFinding,
    VerificationPolicy,
)

POLICY = VerificationPolicy(required_channels=frozenset({"weight", "vision"}))
EXPECTED = {"MUG": 2, "SOCKS": 1}


def weight(confirmed: dict[str, float]) -> ChannelReport:
    findings = tuple(
        SkuFinding(sku, FindingStatus.CONFIRMED, EXPECTED[sku], EXPECTED[sku], confirmed[sku])
        if sku in confirmed
        else SkuFinding(sku, FindingStatus.UNCERTAIN, EXPECTED[sku], None, 0.01)
        for sku in sorted(EXPECTED)
    )
    return ChannelReport("weight", ChannelState.OK, findings)


def vision_deficit(candidates: list[str], confidence: float = 0.95) -> ChannelReport:
    """Vision counted one item fewer; any of `candidates` could be it."""
    reason = Reason("vision_count_deficit", "Vision counted 2 items, 3 expected.", "vision")
    if len(candidates) == 1:
        (sku,) = candidates
        findings = (
            SkuFinding(sku, FindingStatus.MISSING, EXPECTED[sku], EXPECTED[sku] - 1, confidence),
        )
        explanations: tuple[Explanation, ...] = ()
    else:
        findings = tuple(
            SkuFinding(sku, FindingStatus.UNCERTAIN, EXPECTED[sku], None, confidence)
            for sku in candidates
        )
        share = 1 / len(candidates)
        explanations = tuple(Explanation({sku: -1}, 0.0, share) for sku in candidates)
    return ChannelReport(
        "vision",
        ChannelState.OK,
        findings,
        Discrepancy.DEFICIT,
        explanations,
        (reason,),
    )


def rfid_confirms(sku: str, confidence: float = 0.98) -> ChannelReport:
    finding = SkuFinding(sku, FindingStatus.CONFIRMED, EXPECTED[sku], EXPECTED[sku], confidence)
    return ChannelReport("rfid", ChannelState.OK, (finding,))


def test_the_scale_vouching_for_the_only_candidate_overrules_the_count() -> None:
    # Vision lost a mug; the scale would have seen a missing 412 g mug (power ~1).
    reports = [weight({"MUG": 1.0, "SOCKS": 1.0}), vision_deficit(["MUG"])]
    verdict = POLICY.decide(EXPECTED, reports)
    assert verdict.outcome is Outcome.PASS
    assert verdict.reports[1].discrepancy is Discrepancy.DEFICIT  # the evidence keeps the claim


def test_a_candidate_no_other_channel_vouches_for_keeps_the_block() -> None:
    # Socks hide inside the weight tolerance: the count is the only channel that could see them.
    verdict = POLICY.decide(EXPECTED, [weight({"MUG": 1.0}), vision_deficit(["MUG", "SOCKS"])])
    assert verdict.outcome is Outcome.BLOCK


def test_an_rfid_read_does_not_overrule_the_count() -> None:
    # The socks' tag was read, but a unit left beside the box reads too: the count stands.
    reports = [weight({"MUG": 1.0}), vision_deficit(["MUG", "SOCKS"]), rfid_confirms("SOCKS")]
    assert POLICY.decide(EXPECTED, reports).outcome is Outcome.BLOCK


def test_every_candidate_vouched_for_surely_overrules_the_count() -> None:
    reports = [weight({"MUG": 1.0}), vision_deficit(["MUG", "SOCKS"]), rfid_confirms("SOCKS", 1.0)]
    assert POLICY.decide(EXPECTED, reports).outcome is Outcome.PASS


def test_a_unit_scan_never_overrules_the_count() -> None:
    """The packer scanned the socks, then set them down beside the box: the scan confirms them
    fully, yet it is the packer's word, not a sensor's, and the count stands."""
    scanned = SkuFinding("SOCKS", FindingStatus.CONFIRMED, 1, 1, 1.0)
    reports = [
        weight({"MUG": 1.0}),
        vision_deficit(["MUG", "SOCKS"]),
        ChannelReport("scan", ChannelState.OK, (scanned,)),
    ]
    verdict = POLICY.decide(EXPECTED, reports)
    assert verdict.outcome is Outcome.BLOCK
    assert "vision_count_deficit" in {r.code for r in verdict.reasons}


def test_a_weak_weight_confirmation_does_not_overrule_the_count() -> None:
    # A 62 g unit just outside a 50 g tolerance: the scale would catch its absence 90% of times.
    reports = [weight({"MUG": 0.9, "SOCKS": 1.0}), vision_deficit(["MUG"], confidence=0.6)]
    assert POLICY.decide(EXPECTED, reports).outcome is Outcome.BLOCK


def test_a_weight_deficit_is_never_overruled() -> None:
    deficit = ChannelReport(
        "weight",
        ChannelState.OK,
        (SkuFinding("MUG", FindingStatus.MISSING, 2, 1, 0.99),),
        Discrepancy.DEFICIT,
    )
    vision = ChannelReport(
        "vision",
        ChannelState.OK,
        tuple(SkuFinding(s, FindingStatus.CONFIRMED, n, n, 1.0) for s, n in EXPECTED.items()),
    )
    assert POLICY.decide(EXPECTED, [deficit, vision]).outcome is Outcome.BLOCK


def vision_surplus() -> ChannelReport:
    """Vision counted one item more than ordered (a count names no SKU)."""
    reason = Reason("vision_count_surplus", "Vision counted 4 items, 3 expected.", "vision")
    unproven = tuple(
        SkuFinding(sku, FindingStatus.UNCERTAIN, n, None, 0.95) for sku, n in EXPECTED.items()
    )
    return ChannelReport("vision", ChannelState.OK, unproven, Discrepancy.SURPLUS, (), (reason,))


def test_a_surplus_count_is_set_aside_when_the_scale_vouches_for_the_whole_carton() -> None:
    # A split peak or an item moved between insertions: the scale saw nothing extra and would
    # have seen any unit of this carton missing.
    verdict = POLICY.decide(EXPECTED, [weight({"MUG": 1.0, "SOCKS": 1.0}), vision_surplus()])
    assert verdict.outcome is Outcome.PASS
    assert verdict.reports[1].discrepancy is Discrepancy.SURPLUS  # the evidence keeps the claim


def test_a_surplus_count_stands_when_a_unit_is_not_vouched_for_or_something_extra_is_seen() -> None:
    # The socks hide in the tolerance: "one more" may be "one other in place of the socks".
    unsure = [weight({"MUG": 1.0}), vision_surplus()]
    assert POLICY.decide(EXPECTED, unsure).outcome is Outcome.BLOCK
    heavy = ChannelReport(
        "weight",
        ChannelState.OK,
        tuple(SkuFinding(s, FindingStatus.CONFIRMED, n, n, 1.0) for s, n in EXPECTED.items()),
        Discrepancy.SURPLUS,
    )
    assert "vision_count_surplus" in codes(POLICY.decide(EXPECTED, [heavy, vision_surplus()]))
    tag = ChannelReport(
        "rfid", ChannelState.OK, (SkuFinding("EAR", FindingStatus.EXTRA, 0, 1, 0.98),)
    )
    reports = [weight({"MUG": 1.0, "SOCKS": 1.0}), vision_surplus(), tag]
    assert "vision_count_surplus" in codes(POLICY.decide(EXPECTED, reports))


def test_a_surplus_needs_the_scale_as_sure_as_a_tag_read_not_as_sure_as_for_a_deficit() -> None:
    # A surplus claims nothing missing: the scale's 0.98 that every unit is in sets it aside,
    # where a deficit needs 0.999 (a unit missing behind "one more" needs the scale wrong about
    # it and the count two too high).
    sure = weight({"MUG": 0.985, "SOCKS": 0.99})
    assert POLICY.decide(EXPECTED, [sure, vision_surplus()]).outcome is Outcome.PASS
    assert POLICY.decide(EXPECTED, [sure, vision_deficit(["MUG"])]).outcome is Outcome.BLOCK
    unsure = weight({"MUG": 0.97, "SOCKS": 0.99})
    assert "vision_count_surplus" in codes(POLICY.decide(EXPECTED, [unsure, vision_surplus()]))


def test_a_channel_that_only_corroborates_sets_a_surplus_aside_but_never_passes_alone() -> None:
    # The insertion steps vouch for the socks the total cannot see: "one more" is set aside,
    # but the socks still want a channel that may vouch alone.
    policy = VerificationPolicy(
        required_channels=frozenset({"weight", "vision"}), corroborate=frozenset({"insertion"})
    )
    steps = ChannelReport(
        "insertion",
        ChannelState.OK,
        tuple(SkuFinding(s, FindingStatus.CONFIRMED, n, n, 1.0) for s, n in EXPECTED.items()),
    )
    verdict = policy.decide(EXPECTED, [weight({"MUG": 1.0}), steps, vision_surplus()])
    assert verdict.outcome is Outcome.REVIEW
    assert [(r.code, r.sku) for r in verdict.reasons] == [("sku_single_channel", "SOCKS")]


def test_tags_never_set_a_surplus_aside() -> None:
    # A unit set down beside the box still answers: its tag cannot vouch that it is in.
    policy = VerificationPolicy(required_channels=frozenset({"rfid", "vision"}))
    tags = ChannelReport(
        "rfid",
        ChannelState.OK,
        tuple(SkuFinding(s, FindingStatus.CONFIRMED, n, n, 1.0) for s, n in EXPECTED.items()),
    )
    verdict = policy.decide(EXPECTED, [tags, vision_surplus()])
    assert verdict.outcome is Outcome.BLOCK
    assert "vision_count_surplus" in {reason.code for reason in verdict.reasons}


def codes(verdict) -> set[str]:
    assert verdict.outcome is Outcome.BLOCK
    return {reason.code for reason in verdict.reasons}


@given(
    st.sampled_from([ChannelState.DOWN, ChannelState.STALE, ChannelState.UNSURE]),
    st.sampled_from(["weight", "vision"]),
)
def test_overruling_never_outranks_a_faulty_required_channel(state, faulty) -> None:
    reports = {"weight": weight({"MUG": 1.0, "SOCKS": 1.0}), "vision": vision_deficit(["MUG"])}
    reports[faulty] = ChannelReport(faulty, state)
    assert POLICY.decide(EXPECTED, reports.values()).outcome is Outcome.REVIEW
