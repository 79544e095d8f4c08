from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.verification import (
    ChannelReport,
    ChannelState,
    Discrepancy,
    FindingStatus,
    Outcome,
    SkuFinding,
    VerificationPolicy,
)

SKUS = ["A", "B", "C", "D"]
CHANNELS = ["weight", "rfid", "vision"]

expectations = st.dictionaries(st.sampled_from(SKUS), st.integers(1, 5), min_size=1)


@st.composite
def findings(draw, expected: dict[str, int]):
    sku = draw(st.sampled_from(sorted(expected)))
    observed = draw(st.one_of(st.none(), st.integers(0, 10)))
    return SkuFinding(
        sku, draw(st.sampled_from(FindingStatus)), expected[sku], observed, draw(st.floats(0, 1))
    )


@st.composite
def reports(draw, expected: dict[str, int], channel: str, state=None):
    return ChannelReport(
        channel,
        state or draw(st.sampled_from(ChannelState)),
        tuple(draw(st.lists(findings(expected), max_size=4))),
        draw(st.sampled_from(Discrepancy)),
    )


@given(st.data(), expectations, st.sampled_from(ChannelState), st.sets(st.sampled_from(CHANNELS)))
def test_a_required_channel_that_is_not_ok_never_passes(data, expected, state, required) -> None:
    policy = VerificationPolicy(required_channels=frozenset({"weight", *required}))
    weight = data.draw(reports(expected, "weight", state))
    others = [data.draw(reports(expected, c)) for c in CHANNELS[1:]]
    verdict = policy.decide(expected, [weight, *others])
    if state is not ChannelState.OK:
        assert verdict.outcome is Outcome.REVIEW


@given(st.data(), expectations)
def test_a_confident_missing_finding_always_blocks(data, expected) -> None:
    policy = VerificationPolicy(required_channels=frozenset({"weight"}))
    sku = data.draw(st.sampled_from(sorted(expected)))
    short = data.draw(st.integers(1, expected[sku]))
    missing = SkuFinding(
        sku,
        FindingStatus.MISSING,
        expected[sku],
        expected[sku] - short,
        data.draw(st.floats(policy.min_confidence, 1)),
    )
    weight = data.draw(reports(expected, "weight", ChannelState.OK))
    weight = ChannelReport("weight", ChannelState.OK, (*weight.findings, missing))
    others = [data.draw(reports(expected, c, ChannelState.OK)) for c in CHANNELS[1:]]
    verdict = policy.decide(expected, [weight, *others])
    assert verdict.outcome is Outcome.BLOCK
    assert any(d.sku == sku and d.quantity >= short for d in verdict.missing)


@given(st.data(), expectations)
def test_a_discrepancy_never_passes(data, expected) -> None:
    weight = data.draw(reports(expected, "weight", ChannelState.OK))
    deficit = ChannelReport("weight", ChannelState.OK, weight.findings, Discrepancy.DEFICIT)
    assert VerificationPolicy().decide(expected, [deficit]).outcome is Outcome.BLOCK


@given(st.data(), expectations, st.sampled_from(CHANNELS), st.sets(st.sampled_from(CHANNELS)))
def test_what_a_channel_not_ok_says_is_missing_changes_nothing(
    data, expected, channel, required
) -> None:
    """A sensor that is down, stale or unsure names nothing missing and no deficit or surplus
    (nothing is published as missing from it); required, it holds the carton for review."""
    policy = VerificationPolicy(required_channels=frozenset(required))
    state = data.draw(st.sampled_from([s for s in ChannelState if s is not ChannelState.OK]))
    others = [data.draw(reports(expected, c, ChannelState.OK)) for c in CHANNELS if c != channel]
    loud = data.draw(reports(expected, channel, state))
    quiet = ChannelReport(
        channel,
        state,
        tuple(f for f in loud.findings if f.status is not FindingStatus.MISSING),
        reasons=loud.reasons,
    )
    assert policy.decide(expected, [*others, loud]) == replace(
        policy.decide(expected, [*others, quiet]), reports=(*others, loud)
    )


@given(
    st.data(),
    expectations,
    st.sampled_from([s for s in ChannelState if s is not ChannelState.OK]),
    st.sampled_from([*CHANNELS, "scan"]),
)
def test_a_channel_a_sku_requires_never_passes_it_unless_ok_and_confirming(
    data, expected, state, channel
) -> None:
    """Per-SKU requirements fail closed too: the channel a SKU needs is down, stale or unsure,
    or up but silent, unsure or missing on that SKU: never PASS."""
    sku = data.draw(st.sampled_from(sorted(expected)))
    policy = VerificationPolicy(required_channels=frozenset(), sku_required={sku: {channel}})
    others = [data.draw(reports(expected, c)) for c in CHANNELS if c != channel]
    needed = data.draw(st.one_of(st.none(), reports(expected, channel, state)))
    reports_ = [*others, needed] if needed else others
    assert policy.decide(expected, reports_).outcome is not Outcome.PASS

    up = data.draw(reports(expected, channel, ChannelState.OK))
    unconfirmed = tuple(
        f for f in up.findings if f.sku != sku or f.status is not FindingStatus.CONFIRMED
    )
    silent = ChannelReport(channel, ChannelState.OK, unconfirmed, up.discrepancy)
    assert policy.decide(expected, [*others, silent]).outcome is not Outcome.PASS


@given(st.data(), expectations)
def test_findings_of_an_ignored_channel_change_nothing(data, expected) -> None:
    sku = data.draw(st.sampled_from(sorted(expected)))
    weight = data.draw(reports(expected, "weight", ChannelState.OK))
    vision = data.draw(reports(expected, "vision", ChannelState.OK))
    without = ChannelReport(
        "vision",
        ChannelState.OK,
        tuple(f for f in vision.findings if f.sku != sku),
        vision.discrepancy,
    )
    policy = VerificationPolicy(sku_ignored={sku: frozenset({"vision"})})
    assert (
        policy.decide(expected, [weight, vision]).outcome
        is policy.decide(expected, [weight, without]).outcome
    )


@given(st.data(), expectations)
def test_an_advisory_channel_is_kept_but_never_changes_the_verdict(data, expected) -> None:
    required = frozenset({"weight"})
    advisory = VerificationPolicy(required_channels=required, advisory=frozenset({"vision"}))
    weight = data.draw(reports(expected, "weight"))
    rfid = data.draw(reports(expected, "rfid"))
    vision = data.draw(reports(expected, "vision"))
    with_vision = advisory.decide(expected, [weight, rfid, vision])
    without = VerificationPolicy(required_channels=required).decide(expected, [weight, rfid])
    assert (with_vision.outcome, with_vision.reasons) == (without.outcome, without.reasons)
    assert (with_vision.missing, with_vision.extra) == (without.missing, without.extra)
    assert with_vision.reports == (weight, rfid, vision)  # its report stays on the record


def test_a_channel_cannot_be_required_and_advisory() -> None:
    with pytest.raises(ValueError, match="vision"):
        VerificationPolicy(required_channels=frozenset({"vision"}), advisory=frozenset({"vision"}))


@given(st.data(), expectations)
def test_an_rfid_shortfall_passes_only_on_a_sure_scale_and_every_unit_scanned(
    data, expected
) -> None:
    """The tag_unread rule: the scale alone, or the scans alone, never outvote RFID."""
    policy = VerificationPolicy(required_channels=frozenset({"weight", "rfid"}))
    sku = data.draw(st.sampled_from(sorted(expected)))
    short = data.draw(st.integers(1, expected[sku]))
    sure = data.draw(st.floats(policy.min_confidence, 1))
    missing = SkuFinding(sku, FindingStatus.MISSING, expected[sku], expected[sku] - short, sure)
    rfid = ChannelReport("rfid", ChannelState.OK, (missing,))
    vouch = data.draw(st.sampled_from([0.99, 0.999, 0.9995, 1.0]) | st.floats(0, 1))
    weight = ChannelReport(
        "weight",
        ChannelState.OK,
        tuple(
            SkuFinding(s, FindingStatus.CONFIRMED, n, n, vouch if s == sku else 1.0)
            for s, n in sorted(expected.items())
        ),
    )
    scanned = SkuFinding(
        sku,
        data.draw(st.sampled_from(FindingStatus)),
        expected[sku],
        data.draw(st.integers(0, 6)),
        data.draw(st.floats(0, 1)),
    )
    scans = ChannelReport("scan", ChannelState.OK, (scanned,))

    verdict = policy.decide(expected, [weight, rfid, scans])

    scans_confirm = (
        scanned.status is FindingStatus.CONFIRMED and scanned.confidence >= policy.min_confidence
    )
    sure_scale = vouch >= max(policy.overrule_confidence, sure)
    assert (verdict.outcome is Outcome.PASS) == (sure_scale and scans_confirm)
