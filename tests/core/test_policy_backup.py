"""Backup channels (the camera): required unless the scale vouches for the carton on its own."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from station.carton_policy import Fallback, SkuRule, StationPolicy
from station.domain import Catalog, CatalogItem
from station.verification import (
    OVERRULE_CONFIDENCE,
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
from tests.core.test_carton_policy import degraded
from tests.core.test_policy_properties import CHANNELS, expectations, reports
from tests.vision.test_vision_report import CATALOG as VISION_CATALOG
from tests.vision.test_vision_report import code, obs
from vision.report import build_vision_report

BACKUP = VerificationPolicy(required_channels=frozenset({"weight"}), backup=frozenset({"vision"}))
NOT_OK = [s for s in ChannelState if s is not ChannelState.OK]
# Confidences on both sides of the bar, and anywhere.
VOUCHING = st.sampled_from([0.95, 0.99, 0.9989, OVERRULE_CONFIDENCE, 0.9995, 1.0]) | st.floats(0, 1)


def scale(expected: dict[str, int], confidence: dict[str, float]) -> ChannelReport:
    return ChannelReport(
        "weight",
        ChannelState.OK,
        tuple(
            SkuFinding(sku, FindingStatus.CONFIRMED, n, n, confidence[sku])
            for sku, n in sorted(expected.items())
        ),
    )


@given(st.data(), expectations, st.sampled_from(NOT_OK))
def test_a_backup_that_is_not_ok_passes_only_when_the_scale_vouches_for_every_sku(
    data, expected, state
) -> None:
    confidence = {sku: data.draw(VOUCHING) for sku in expected}
    rfid = data.draw(reports(expected, "rfid"))
    silent = data.draw(st.one_of(st.none(), reports(expected, "vision", state)))
    decided = [scale(expected, confidence), rfid, *([silent] if silent else [])]
    verdict = BACKUP.decide(expected, decided)
    if min(confidence.values()) < OVERRULE_CONFIDENCE:
        # Held for review, or blocked for lines the channels that are up name (with the reason).
        assert verdict.outcome is Outcome.REVIEW or (
            verdict.outcome is Outcome.BLOCK and (verdict.missing or verdict.extra)
        ), verdict
        assert any(
            r.channel == "vision" and "the scale alone does not vouch" in r.message
            for r in verdict.reasons
        )
    else:
        # Excused: it decides as a channel the station merely has (not required) would.
        optional = VerificationPolicy(required_channels=frozenset({"weight"}))
        assert verdict.outcome is optional.decide(expected, decided).outcome


@st.composite
def counts(draw, expected: dict[str, int]) -> ChannelReport:
    """What a camera that is up reports about a count: a deficit naming candidates, a surplus,
    or agreement; claims no surer than the scale's bar, no identity, nothing to review."""
    discrepancy = draw(st.sampled_from(Discrepancy))
    claim = draw(st.floats(0, OVERRULE_CONFIDENCE))
    status = (
        FindingStatus.MISSING if discrepancy is Discrepancy.DEFICIT else FindingStatus.UNCERTAIN
    )
    named = draw(st.lists(st.sampled_from(sorted(expected)), min_size=1, unique=True))
    findings = tuple(SkuFinding(sku, status, expected[sku], None, claim) for sku in named)
    explanations = (
        tuple(Explanation({sku: -1}, 0.0, 1 / len(named)) for sku in named)
        if discrepancy is Discrepancy.DEFICIT
        else ()
    )
    return ChannelReport("vision", ChannelState.OK, findings, discrepancy, explanations)


@given(st.data(), expectations, st.sampled_from(NOT_OK))
def test_where_the_scale_vouches_a_silent_camera_decides_as_its_count_would_have(
    data, expected, state
) -> None:
    """The claim behind a backup: with the weight confirming every SKU 0.999 surely and the
    other sensors seeing nothing extra, whatever the camera would have counted gives the verdict
    its silence gives."""
    weight = scale(
        expected, {sku: data.draw(st.floats(OVERRULE_CONFIDENCE, 1)) for sku in expected}
    )
    rfid = ChannelReport(
        "rfid",
        ChannelState.OK,
        tuple(SkuFinding(s, FindingStatus.CONFIRMED, n, n, 0.98) for s, n in expected.items()),
    )
    counted = data.draw(counts(expected))
    silent = ChannelReport("vision", state)
    up = BACKUP.decide(expected, [weight, rfid, counted])
    down = BACKUP.decide(expected, [weight, rfid, silent])
    assert up.outcome is down.outcome is Outcome.PASS


@given(st.data(), expectations)
def test_a_backup_that_is_ok_decides_as_a_required_channel(data, expected) -> None:
    decided = [data.draw(reports(expected, c, ChannelState.OK)) for c in CHANNELS]
    required = VerificationPolicy(required_channels=frozenset(CHANNELS))
    assert BACKUP.decide(expected, decided) == required.decide(expected, decided)


@given(st.data(), expectations, st.sampled_from(NOT_OK))
def test_the_scale_that_is_not_ok_excuses_no_backup(data, expected, state) -> None:
    """However sure a weight report that is down, stale or unsure claims to be."""
    weight = replace(scale(expected, dict.fromkeys(expected, 1.0)), state=state)
    vision = data.draw(reports(expected, "vision", data.draw(st.sampled_from(NOT_OK))))
    policy = VerificationPolicy(required_channels=frozenset(), backup=frozenset({"vision"}))
    verdict = policy.decide(expected, [weight, vision])
    # Held, or blocked for an extra unit the camera proved (its codes) but never passed, and
    # nothing published missing on the word of a sensor that is not OK.
    assert verdict.outcome is Outcome.REVIEW or (verdict.outcome is Outcome.BLOCK and verdict.extra)
    assert not verdict.missing


def test_tags_and_the_insertion_steps_vouch_for_no_backup() -> None:
    """Only the weight stands in: a tag answers from beside the box, the steps may explain a
    light unit that is not there (even on a policy that forgot to mark them corroborating)."""
    expected = {"MUG": 1}
    sure = (SkuFinding("MUG", FindingStatus.CONFIRMED, 1, 1, 1.0),)
    vision = ChannelReport("vision", ChannelState.UNSURE)
    unsure_weight = ChannelReport(
        "weight", ChannelState.OK, (SkuFinding("MUG", FindingStatus.CONFIRMED, 1, 1, 0.95),)
    )
    policy = BACKUP
    for channel in ("rfid", "insertion"):
        vouching = ChannelReport(channel, ChannelState.OK, sure)
        verdict = policy.decide(expected, [unsure_weight, vouching, vision])
        assert verdict.outcome is Outcome.REVIEW, channel
    assert policy.decide(expected, [scale(expected, {"MUG": 1.0}), vision]).passed


def test_an_excused_camera_still_blocks_on_a_code_it_read() -> None:
    """The close frame was unreadable, but an earlier frame read the tea's code in a mug-only
    order: the report is UNSURE and the extra tea stands."""
    expected = {"MUG": 1}
    vision = build_vision_report(
        [obs(0, None), obs(1, 1, (code("TEA"),))], expected, VISION_CATALOG
    )
    assert vision.state is ChannelState.UNSURE
    verdict = BACKUP.decide(expected, [scale(expected, {"MUG": 1.0}), vision])
    assert verdict.outcome is Outcome.BLOCK and [d.sku for d in verdict.extra] == ["TEA"]


def test_a_required_channel_down_lists_a_backup_down_too() -> None:
    expected = {"MUG": 1}
    weight = replace(scale(expected, {"MUG": 1.0}), state=ChannelState.DOWN)
    vision = ChannelReport("vision", ChannelState.DOWN)
    verdict = BACKUP.decide(expected, [weight, vision])
    assert [r.channel for r in verdict.reasons] == ["weight", "vision"]


def test_only_a_count_can_be_a_backup_and_never_also_required() -> None:
    with pytest.raises(ValueError, match="backup"):
        VerificationPolicy(required_channels=frozenset({"vision"}), backup=frozenset({"vision"}))
    with pytest.raises(ValueError, match="count channel"):
        VerificationPolicy(backup=frozenset({"rfid"}))
    with pytest.raises(ValueError, match="vision"):
        StationPolicy(backup=frozenset({"rfid"}))
    with pytest.raises(ValueError, match="also be required or advisory"):
        StationPolicy(advisory=frozenset({"vision"}), backup=frozenset({"vision"}))


# The plan: whether this carton needs the camera as a required channel.
CATALOG = Catalog.from_lists(
    [
        CatalogItem(sku="MUG", name="Mug", unit_weight_g=350),
        CatalogItem(sku="CARD", name="Gift card", unit_weight_g=4),
    ]
)
STATION = StationPolicy(
    channels=frozenset({"weight", "rfid", "vision"}),
    required_channels=frozenset({"weight", "rfid"}),
    backup=frozenset({"vision"}),
)


def planned(plan) -> tuple[frozenset[str], frozenset[str]]:
    return plan.policy.required_channels, plan.policy.backup


def test_a_carton_the_scale_covers_leaves_the_camera_to_the_close() -> None:
    plan = STATION.plan({"MUG": 2}, CATALOG, {"MUG": 1.0})
    assert planned(plan) == ({"weight", "rfid"}, {"vision"})


def test_a_sku_the_scale_may_miss_makes_the_camera_required() -> None:
    plan = STATION.plan({"MUG": 1, "CARD": 1}, CATALOG, {"MUG": 1.0, "CARD": 0.2})
    assert planned(plan) == ({"weight", "rfid", "vision"}, frozenset())
    bare = STATION.plan({"MUG": 1}, CATALOG, {"MUG": 0.998})
    assert planned(bare) == ({"weight", "rfid", "vision"}, frozenset())


def test_a_rule_ignoring_the_weight_for_a_sku_makes_the_camera_required() -> None:
    ignoring = replace(STATION, rules=(SkuRule(("MUG",), ignore=frozenset({"weight"})),))
    plan = ignoring.plan({"MUG": 1}, CATALOG, {"MUG": 1.0})
    assert planned(plan) == ({"weight", "rfid", "vision"}, frozenset())


def test_with_the_scale_replaced_the_camera_is_required() -> None:
    plan = STATION.plan({"MUG": 1}, CATALOG, {"MUG": 1.0}, degraded(Fallback.SCAN_FOR_WEIGHT))
    assert planned(plan) == ({"rfid", "vision"}, frozenset())


def test_scanning_for_a_camera_the_carton_does_not_need_asks_for_no_scans() -> None:
    """A degraded mode never asks more than the outage: a heavy carton would pass on the scale
    with the camera down, so scanning in its place scans nothing; a light unit is scanned."""
    heavy = STATION.plan({"MUG": 1}, CATALOG, {"MUG": 1.0}, degraded(Fallback.SCAN_FOR_VISION))
    assert heavy.must_scan == frozenset()
    # ... and the close still asks the weight to vouch, as with the camera down and no mode.
    assert planned(heavy) == ({"weight", "rfid"}, {"vision"})
    unsure_weight = scale({"MUG": 1}, {"MUG": 0.95})
    rfid = ChannelReport("rfid", ChannelState.OK, unsure_weight.findings)
    down = ChannelReport("vision", ChannelState.DOWN)
    assert heavy.policy.decide({"MUG": 1}, [unsure_weight, rfid, down]).outcome is Outcome.REVIEW
    light = STATION.plan(
        {"MUG": 1, "CARD": 1},
        CATALOG,
        {"MUG": 1.0, "CARD": 0.2},
        degraded(Fallback.SCAN_FOR_VISION),
    )
    assert light.must_scan == {"MUG", "CARD"}


CANDLES = {"BOOK": 1, "CANDLE": 2}


def short_of_a_candle(confidence: float, named: bool = True) -> ChannelReport:
    """The scale's report of a carton a candle short: sure of it (named) or not."""
    candle = (
        SkuFinding("CANDLE", FindingStatus.MISSING, 2, 1, confidence)
        if named
        else SkuFinding("CANDLE", FindingStatus.UNCERTAIN, 2, None, 0.0)
    )
    book = SkuFinding("BOOK", FindingStatus.UNCERTAIN, 1, None, 0.0)
    explanations = (Explanation({"CANDLE": -1}, 2.0, confidence),)
    return ChannelReport(
        "weight", ChannelState.OK, (book, candle), Discrepancy.DEFICIT, explanations
    )


@given(st.data(), expectations, st.sampled_from(NOT_OK))
def test_a_block_while_the_backup_is_silent_stands_whatever_it_would_have_counted(
    data, expected, state
) -> None:
    """The lines the other channels name are no count's to set aside: with the camera up and
    reporting anything at all, the carton is blocked for those lines, or more. (The camera's
    own proved extras, which it keeps while not OK, are its lines, not the others': left out.)"""
    others = [data.draw(reports(expected, c, ChannelState.OK)) for c in ("weight", "rfid")]
    backup = data.draw(reports(expected, "vision", state))
    backup = replace(
        backup, findings=tuple(f for f in backup.findings if f.status is not FindingStatus.EXTRA)
    )
    silent = BACKUP.decide(expected, [*others, backup])
    if silent.outcome is not Outcome.BLOCK:
        return
    if any("the scale alone does not vouch" in r.message for r in silent.reasons):
        assert silent.missing or silent.extra  # needed and silent: blocked only for lines
    up = BACKUP.decide(expected, [*others, data.draw(reports(expected, "vision", ChannelState.OK))])
    assert up.outcome is Outcome.BLOCK, up
    assert {d.sku for d in silent.missing} <= {d.sku for d in up.missing}
    assert {d.sku for d in silent.extra} <= {d.sku for d in up.extra}


def test_a_backup_unsure_keeps_the_extra_unit_its_codes_read() -> None:
    unsure = ChannelReport(
        "vision",
        ChannelState.UNSURE,
        (SkuFinding("EARRINGS", FindingStatus.EXTRA, 0, 1, 0.99, "read by its code"),),
    )
    verdict = BACKUP.decide(CANDLES, [short_of_a_candle(0.98), unsure])
    assert verdict.outcome is Outcome.BLOCK
    assert [(d.sku, d.quantity) for d in verdict.missing] == [("CANDLE", 1)]
    assert [(d.sku, d.quantity) for d in verdict.extra] == [("EARRINGS", 1)]


@pytest.mark.parametrize("state", NOT_OK)
def test_a_backup_down_blocks_the_lines_the_scale_surely_names_missing(state) -> None:
    """The count could not have set the scale's named deficit aside: the packer is told at once
    what is missing, with the backup's state among the reasons; it is published as missing."""
    down = ChannelReport("vision", state)
    verdict = BACKUP.decide(CANDLES, [short_of_a_candle(0.98), down])
    assert verdict.outcome is Outcome.BLOCK
    assert [(d.sku, d.quantity) for d in verdict.missing] == [("CANDLE", 1)]
    assert any(r.channel == "vision" for r in verdict.reasons), verdict.reasons
    up = ChannelReport("vision", ChannelState.OK)
    assert BACKUP.decide(CANDLES, [short_of_a_candle(0.98), up]).missing == verdict.missing


def test_a_backup_down_with_a_deficit_nobody_names_is_held_for_review_with_the_grams() -> None:
    down = ChannelReport("vision", ChannelState.DOWN)
    scale = replace(
        short_of_a_candle(0.5, named=False),
        reasons=(Reason("weight_deficit", "Carton is 321 g light", "weight"),),
    )
    verdict = BACKUP.decide(CANDLES, [scale, down])
    assert verdict.outcome is Outcome.REVIEW and not verdict.missing
    # The backup's state first; what the scale found goes with it, for the reviewer.
    assert [r.code for r in verdict.reasons][:1] == ["channel_down"]
    assert "Carton is 321 g light" in [r.message for r in verdict.reasons]


def test_a_required_channel_down_holds_even_a_named_deficit_for_review() -> None:
    policy = replace(BACKUP, required_channels=frozenset({"weight", "rfid"}))
    down = [ChannelReport("vision", ChannelState.DOWN), ChannelReport("rfid", ChannelState.DOWN)]
    verdict = policy.decide(CANDLES, [short_of_a_candle(0.98), *down])
    assert verdict.outcome is Outcome.REVIEW and not verdict.missing
