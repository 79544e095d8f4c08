"""A tagged unit RFID cannot find while the scale vouches for every unit: held for a unit scan of
that SKU (a tag that does not answer, or too weakly), not blocked; the scan of every unit settles
it, a look-alike's scan blocks."""

from __future__ import annotations

from station.verification import (
    ChannelReport,
    ChannelState,
    FindingStatus,
    Outcome,
    SkuFinding,
    VerificationPolicy,
)

POLICY = VerificationPolicy(
    required_channels=frozenset({"weight", "rfid"}), corroborate=frozenset({"insertion"})
)
EXPECTED = {"JACKET-M": 2, "MUG": 1}
EPC_BESIDE = "3074257BF7194E4000001A85"


def weight(confidence: float = 0.9995, state: ChannelState = ChannelState.OK) -> ChannelReport:
    findings = tuple(
        SkuFinding(sku, FindingStatus.CONFIRMED, n, n, confidence)
        for sku, n in sorted(EXPECTED.items())
    )
    return ChannelReport("weight", state, findings)


def rfid_one_jacket_unread(near: tuple[str, ...] = ()) -> ChannelReport:
    return ChannelReport(
        "rfid",
        ChannelState.OK,
        (
            SkuFinding("JACKET-M", FindingStatus.MISSING, 2, 1, 0.98, "1 of 2 read", near),
            SkuFinding("MUG", FindingStatus.NOT_APPLICABLE, 1, None, 1.0),
        ),
    )


def scans(counted: dict[str, int]) -> ChannelReport:
    findings = [
        SkuFinding(sku, FindingStatus.CONFIRMED, n, n, 1.0)
        if counted.get(sku) == n
        else SkuFinding(sku, FindingStatus.NOT_APPLICABLE, n, None, 1.0)
        for sku, n in sorted(EXPECTED.items())
    ]
    findings += [
        SkuFinding(sku, FindingStatus.EXTRA, 0, n, 1.0)
        for sku, n in counted.items()
        if sku not in EXPECTED
    ]
    return ChannelReport("scan", ChannelState.OK, tuple(findings))


def test_a_tag_that_may_not_answer_holds_the_carton_for_a_scan_of_its_sku() -> None:
    verdict = POLICY.decide(EXPECTED, [weight(), rfid_one_jacket_unread()])

    assert verdict.outcome is Outcome.REVIEW
    assert not verdict.missing
    (reason,) = [r for r in verdict.reasons if r.code == "tag_unread"]
    assert reason.sku == "JACKET-M" and reason.channel == "rfid"
    assert "Scan each unit of JACKET-M" in reason.message and "0 of 2 scanned" in reason.message


def test_every_unit_scanned_settles_it() -> None:
    verdict = POLICY.decide(EXPECTED, [weight(), rfid_one_jacket_unread(), scans({"JACKET-M": 2})])

    assert verdict.outcome is Outcome.PASS


def test_a_look_alike_scanned_instead_blocks() -> None:
    verdict = POLICY.decide(
        EXPECTED,
        [weight(), rfid_one_jacket_unread(), scans({"JACKET-M": 1, "JACKET-L": 1})],
    )

    assert verdict.outcome is Outcome.BLOCK
    assert [line.sku for line in verdict.extra] == ["JACKET-L"]
    assert [(line.sku, line.quantity) for line in verdict.missing] == [("JACKET-M", 1)]


def test_a_tag_read_too_weakly_to_count_is_held_for_the_scan_too() -> None:
    reports = [weight(), rfid_one_jacket_unread(near=(EPC_BESIDE,))]

    held = POLICY.decide(EXPECTED, reports)
    look_alike = POLICY.decide(EXPECTED, [*reports, scans({"JACKET-M": 1, "JACKET-L": 1})])

    assert held.outcome is Outcome.REVIEW
    assert "1 more read too weakly to count" in held.reasons[0].message
    assert look_alike.outcome is Outcome.BLOCK


def test_a_unit_the_scale_cannot_vouch_for_blocks_with_its_tag_as_evidence() -> None:
    verdict = POLICY.decide(
        EXPECTED,
        [weight(confidence=0.99), rfid_one_jacket_unread(near=(EPC_BESIDE,)), scans({})],
    )

    assert verdict.outcome is Outcome.BLOCK
    assert [(line.sku, line.quantity, line.evidence) for line in verdict.missing] == [
        ("JACKET-M", 1, (EPC_BESIDE,))
    ]


def test_neither_scans_nor_a_channel_that_never_vouches_alone_can_stand_in_for_the_scale() -> None:
    insertion = ChannelReport(
        "insertion",
        ChannelState.OK,
        tuple(
            SkuFinding(sku, FindingStatus.CONFIRMED, n, n, 1.0)
            for sku, n in sorted(EXPECTED.items())
        ),
    )
    unsure_scale = weight(state=ChannelState.UNSURE)
    policy = VerificationPolicy(
        required_channels=frozenset({"rfid"}), corroborate=frozenset({"insertion"})
    )

    for reports in (
        [rfid_one_jacket_unread(), insertion, scans({"JACKET-M": 2})],
        [rfid_one_jacket_unread(), unsure_scale, scans({"JACKET-M": 2})],
    ):
        assert policy.decide(EXPECTED, reports).outcome is Outcome.BLOCK


def test_the_tag_channel_down_fails_closed_whatever_the_scans() -> None:
    down = ChannelReport("rfid", ChannelState.DOWN)

    verdict = POLICY.decide(EXPECTED, [weight(), down, scans({"JACKET-M": 2})])

    assert verdict.outcome is Outcome.REVIEW
    assert [r.code for r in verdict.reasons] == ["channel_down"]
